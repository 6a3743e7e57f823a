"""Snakemake's own linter and snakefmt: the workflow stays clean as it grows."""

import sys

import pytest

from support.common import REPO, run_offline

pytestmark = pytest.mark.workflow


def test_snakemake_lint_is_clean():
    proc = run_offline([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition!" in out, out


def test_snakefmt_check():
    proc = run_offline([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_of_default_config():
    proc = run_offline([sys.executable, "-m", "snakemake", "-n", "-q"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
