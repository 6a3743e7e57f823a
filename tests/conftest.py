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

from anapart import CLASSES
from anapart.synthetic import SyntheticConfig, generate

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


def series_rule():
    """Study A's series rule of the demo configuration (the defaults a user gets)."""
    from anapart.cohort import SeriesRule

    return SeriesRule.from_config(demo_config()["cohort"]["series"])


def store_paths(out: Path) -> dict:
    return {k: out / f for k, f in
            (("images", "images.npy"), ("masks", "masks.npy"), ("manifest", "manifest.csv"), ("report", "ingest.json"))}


@pytest.fixture
def run_ingest(tmp_path):
    """Call anapart.cohort.ingest on a cohort folder with test defaults; returns (report, out dir)."""
    from anapart.cohort import ingest

    def _run(cohort_dir: Path, field: int = 32, mask_dir="default", **kw):
        out = tmp_path / "results" / "cohort"
        masks = cohort_dir / "masks" if mask_dir == "default" else mask_dir
        kw.setdefault("series", series_rule())
        report = ingest(cohort_dir / "dicom", cohort_dir / "labels.csv", masks, store_paths(out),
                        classes=CLASSES, field=field, salt="test-salt", **kw)
        return report, out

    return _run
