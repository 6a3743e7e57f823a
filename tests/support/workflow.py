"""Real Snakemake runs in a private copy of the workflow, as a user would start them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.common import REPO, run_offline


def workflow_copy(dst: Path) -> Path:
    """A checkout-like copy of the workflow (no results, no data), as a user would run it."""
    dst.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "config", "envs", "profiles", "src"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst / name)
    return dst


def snakemake_cmd(*args: str, extra_config: Path | None = None) -> list[str]:
    """Targets and flags first: --configfile takes several values."""
    cmd = [sys.executable, "-m", "snakemake", "-c2", *args, "--configfile", "config/test.yaml"]
    return cmd + ([str(extra_config)] if extra_config else [])


def snakemake(cwd: Path, *args: str, extra_config: Path | None = None) -> subprocess.CompletedProcess:
    proc = run_offline(snakemake_cmd(*args, extra_config=extra_config), cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()}" for p in sorted((cwd / "logs").glob("*.log")))
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}\n{logs}")
    return proc
