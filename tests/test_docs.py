"""The documentation site builds strictly (mkdocs): no broken link, no page missing from the nav."""

import sys

import pytest

from support.common import REPO, run_offline


def test_mkdocs_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is a test extra: pip install -c requirements.lock -e '.[test]'")
    proc = run_offline([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "report" / "index.html").exists()


def test_mkdocs_strict_build_fails_on_a_broken_link(tmp_path):
    """The check can say no: a copy of the docs with one dead link does not build."""
    pytest.importorskip("mkdocs")
    import shutil

    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "report.md", "a") as f:
        f.write("\nSee [a page that does not exist](no-such-page.md).\n")
    proc = run_offline([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no-such-page.md" in proc.stdout + proc.stderr
