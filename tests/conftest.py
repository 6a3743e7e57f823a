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
_NO_PROXY_HERE = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_NO_PROXY_HERE.bind(("127.0.0.1", 0))  # held for the session: the port stays ours and closed
BLOCKED_PROXY = f"http://127.0.0.1:{_NO_PROXY_HERE.getsockname()[1]}"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           **{k: BLOCKED_PROXY for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                         "all_proxy")},
           "NO_PROXY": "", "no_proxy": ""}


def offline_env(extra: dict | None = None) -> dict:
    """This process's environment with :data:`OFFLINE` over it (and ``extra`` over that)."""
    return {**os.environ, **OFFLINE, **(extra or {})}


def run_offline(cmd, **kw):
    """``subprocess.run`` with :func:`offline_env` (``env=`` adds to it): every Snakemake run of the tests."""
    import subprocess

    return subprocess.run(cmd, env=offline_env(kw.pop("env", None)), **kw)


def popen_offline(cmd, **kw):
    """``subprocess.Popen`` with :func:`offline_env`, for processes a test must signal or watch."""
    import subprocess

    return subprocess.Popen(cmd, env=offline_env(kw.pop("env", None)), **kw)

from anapart import CLASSES
from anapart.synthetic.partition import SyntheticConfig, generate

REPO = Path(__file__).resolve().parents[1]

TINY = dict(
    seed=11,
    patients={"NPC": 2, "LH": 1, "lymphoma": 1, "chordoma": 1, "craniopharyngioma": 1, "normal": 2},
    slices_per_patient=6,
    matrix=48,
    region_annotated_fraction=1.0,
)


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


def demo_config() -> dict:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def percentiles() -> tuple[float, float]:
    """The demo configuration's intensity window percentiles (cohort.intensity_percentiles)."""
    return tuple(demo_config()["cohort"]["intensity_percentiles"])


def series_rule():
    """Study A's series rule of the demo configuration (the defaults a user gets)."""
    from anapart.cohort import SeriesRule

    return SeriesRule.from_config(demo_config()["cohort"]["series"])


def store_paths(out: Path) -> dict:
    return {k: out / f for k, f in
            (("images", "images.npy"), ("masks", "masks.npy"), ("manifest", "manifest.csv"), ("report", "ingest.json"))}


@pytest.fixture
def run_ingest(tmp_path):
    """Call anapart.preflight.ingest on a cohort folder with test defaults; returns (report, out dir)."""
    from anapart.preflight import ingest

    def _run(cohort_dir: Path, field: int = 32, mask_dir="default", **kw):
        out = tmp_path / "results" / "cohort"
        masks = cohort_dir / "masks" if mask_dir == "default" else mask_dir
        kw.setdefault("series", series_rule())
        kw.setdefault("percentiles", percentiles())
        report = ingest(cohort_dir / "dicom", cohort_dir / "labels.csv", masks, store_paths(out),
                        classes=CLASSES, field=field, salt="test-salt", **kw)
        return report, out

    return _run
