"""Helpers the tests share: the repository root, the offline environment for subprocesses, the
tiny cohort's settings, the demo configuration's defaults."""

import os
import socket
import subprocess
import time
from pathlib import Path

import yaml

from anapart.cohort.series import SeriesRule

_NO_PROXY_HERE = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_NO_PROXY_HERE.bind(("127.0.0.1", 0))  # held for the session: the port stays ours and closed
BLOCKED_PROXY = f"http://127.0.0.1:{_NO_PROXY_HERE.getsockname()[1]}"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           **{k: BLOCKED_PROXY for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                         "all_proxy")},
           "NO_PROXY": "", "no_proxy": ""}


def offline_env(extra: dict | None = None) -> dict:
    """This process's environment with :data:`OFFLINE` over it (and ``extra`` over that; None removes a name)."""
    env = {**os.environ, **OFFLINE, **(extra or {})}
    return {k: v for k, v in env.items() if v is not None}


def run_offline(cmd, **kw):
    """``subprocess.run`` with :func:`offline_env` (``env=`` adds to it): every Snakemake run of the tests."""
    return subprocess.run(cmd, env=offline_env(kw.pop("env", None)), **kw)


def popen_offline(cmd, **kw):
    """``subprocess.Popen`` with :func:`offline_env`, for processes a test must signal or watch."""
    return subprocess.Popen(cmd, env=offline_env(kw.pop("env", None)), **kw)


REPO = Path(__file__).resolve().parents[2]

TINY = dict(
    seed=11,
    patients={"NPC": 2, "LH": 1, "lymphoma": 1, "chordoma": 1, "craniopharyngioma": 1, "normal": 2},
    slices_per_patient=6,
    matrix=48,
    region_annotated_fraction=1.0,
)


def demo_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def percentiles() -> tuple[float, float]:
    """The demo configuration's intensity window percentiles (cohort.intensity_percentiles)."""
    return tuple(demo_config()["cohort"]["intensity_percentiles"])


def series_rule():
    """Study A's series rule of the demo configuration (the defaults a user gets)."""
    return SeriesRule.from_config(demo_config()["cohort"]["series"])


def store_paths(out: Path) -> dict:
    return {k: out / f for k, f in
            (("images", "images.npy"), ("masks", "masks.npy"), ("manifest", "manifest.csv"), ("report", "ingest.json"))}


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False
