"""Provenance (anapart.report.provenance): the commit as git itself names it, "not a git checkout"
outside one, the lock file's SHA-256 as sha256sum computes it."""

import shutil

import pytest

from anapart.report import provenance as P
from support.common import run_offline


def test_outside_a_checkout(tmp_path):
    assert P.git_commit(tmp_path) == "not a git checkout"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_commit_and_uncommitted_changes(tmp_path):
    def git(*a):
        return run_offline(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    sha = git("rev-parse", "HEAD")
    assert P.git_commit(tmp_path) == sha
    (tmp_path / "a.txt").write_text("two")
    assert P.git_commit(tmp_path) == sha + " + uncommitted changes"


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="sha256sum is not installed")
def test_lock_hash_and_line(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("torch==2.0\n")
    expected = run_offline(["sha256sum", str(lock)], capture_output=True, text=True).stdout.split()[0]
    info = P.collect(tmp_path)
    assert info["lock_sha256"] == expected and info["commit"] == "not a git checkout"
    assert set(info["packages"]) == set(P.KEY_PACKAGES)
    line = P.software_line(info)
    assert expected[:16] in line and "not a git checkout" in line and "snakemake " in line
    assert P.file_sha256(tmp_path / "nope") == "missing"
