"""Shared fixtures: a tiny synthetic DICOM cohort generated once per session, copied per test."""

import ipaddress
import os
import shutil
import socket
from pathlib import Path

import pytest

# No test may reach a model hub (or anything off this machine): hubs are told to stay offline and
# any non-loopback connection fails loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = host == "localhost"
        if not ok:
            raise RuntimeError(f"test tried to connect to {host}: tests never use the network")
    return _connect(self, address)


socket.socket.connect = _loopback_only

# Subprocesses (Snakemake and every job it starts) do not inherit the patch above, so they get an
# environment that keeps them off the network instead (:func:`offline_env`): hubs told to stay
# offline, and every HTTP(S) client pointed at a proxy on a local port that is bound but never
# listens, so a request is refused at once. No host is exempt (NO_PROXY empty), loopback included.
from anapart import CLASSES  # noqa: E402
from anapart.synthetic.partition import SyntheticConfig, generate  # noqa: E402
from support.common import TINY, percentiles, series_rule, store_paths  # noqa: E402


@pytest.fixture(scope="session")
def tiny_cohort_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate(root, SyntheticConfig.from_dict(TINY))
    return root


@pytest.fixture
def cohort(tiny_cohort_master, tmp_path) -> Path:
    """A private, mutable copy of the tiny cohort (dicom/, masks/, labels.csv)."""
    dst = tmp_path / "synthetic"
    shutil.copytree(tiny_cohort_master, dst)
    return dst


@pytest.fixture
def run_ingest(tmp_path):
    """Call anapart.cohort.preflight.ingest on a cohort folder with test defaults; returns (report, out dir)."""
    from anapart.cohort.preflight import ingest

    def _run(cohort_dir: Path, field: int = 32, mask_dir="default", **kw):
        out = tmp_path / "results" / "cohort"
        masks = cohort_dir / "masks" if mask_dir == "default" else mask_dir
        kw.setdefault("series", series_rule())
        kw.setdefault("percentiles", percentiles())
        report = ingest(cohort_dir / "dicom", cohort_dir / "labels.csv", masks, store_paths(out),
                        classes=CLASSES, field=field, salt="test-salt", **kw)
        return report, out

    return _run
