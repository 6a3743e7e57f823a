"""Write the locked environment: ``requirements.lock`` (pip) and the pins of ``envs/anapart.yaml`` (conda).

Why a lock: pyproject.toml says what anapart *works with* (ranges); the lock says what a study
was *run with* (exact versions of every installed package), so a rerun next year, or on another
machine, gets the same libraries. The README command and ``.ci/run`` install through it as pip
constraints (``-c requirements.lock``), so platform-specific packages (CUDA wheels) are pinned
where they are needed and ignored where they are not.

Upgrading is one command; it builds a fresh venv with the newest versions pyproject allows, runs
nothing else, and rewrites both files (then run the tests and commit):

    python3 envs/lock.py

``--from-venv .venv`` freezes an existing, tested environment instead of building one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
ENV = REPO / "envs" / "anapart.yaml"
# Built from source without build isolation (its sdist does not declare numpy/versioneer): the
# conda env takes conda-forge's build instead.
CONDA_PACKAGES = {"pyradiomics"}
# Installer tooling: pinned for the build step, not part of the conda env's pip list.
TOOLING = {"setuptools", "wheel"}
# Not locked: pip is whatever `python3 -m venv` bundles with the interpreter (it differs between
# Python patch releases and distributions), and nothing installs it.
UNLOCKED = {"pip"}
BUILD_FIRST = ["setuptools", "wheel", "numpy", "versioneer"]

HEADER = """\
# Exact versions of every package of the tested environment (pip freeze), used as constraints:
#   pip install -c requirements.lock ...     (README, .ci/run)
# Regenerate (newest versions pyproject.toml allows) with: python3 envs/lock.py
"""

ENV_HEADER = """\
# Conda environment of every rule (`snakemake --sdm conda`). Written by envs/lock.py from
# requirements.lock: the same exact versions as the README install. Rules import the package
# through workflow/scripts/anapart (a link to src/anapart), so it needs no install here.
channels:
  - conda-forge
  - nodefaults
dependencies:
"""


def run(cmd: list[str], **kw) -> str:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, capture_output=kw.pop("capture", False), **kw).stdout


def build_venv(where: Path) -> Path:
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
    run([sys.executable, "-m", "venv", str(where)])
    pip = str(where / "bin" / "pip")
    run([pip, "install", *BUILD_FIRST], env=env)
    run([pip, "install", "--no-build-isolation", "-e", f"{REPO}[test]"], env=env)
    return where


def freeze(venv: Path) -> list[str]:
    out = run([str(venv / "bin" / "pip"), "freeze", "--all", "--exclude-editable"], capture=True)
    pins = (line.strip() for line in out.splitlines() if "==" in line)
    return sorted((p for p in pins if p.split("==")[0].lower() not in UNLOCKED), key=str.lower)


def python_version(venv: Path) -> str:
    return run([str(venv / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
               capture=True).strip()


def write(pins: list[str], py: str) -> None:
    LOCK.write_text(HEADER + "\n".join(pins) + "\n")
    conda = [p for p in pins if p.split("==")[0].lower() in CONDA_PACKAGES]
    pip = [p for p in pins if p.split("==")[0].lower() not in CONDA_PACKAGES | TOOLING]
    lines = [f"  - python={py}", *(f"  - {p.replace('==', '=')}" for p in conda), "  - pip", "  - pip:",
             *(f"      - {p}" for p in pip)]
    ENV.write_text(ENV_HEADER + "\n".join(lines) + "\n")
    print(f"wrote {LOCK} ({len(pins)} packages) and {ENV}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-venv", type=Path, help="freeze this tested venv instead of building a fresh one")
    args = ap.parse_args(argv)
    if args.from_venv:
        venv = args.from_venv
        write(freeze(venv), python_version(venv))
        return 0
    with tempfile.TemporaryDirectory(prefix="anapart-lock-") as tmp:
        venv = build_venv(Path(tmp) / "venv")
        write(freeze(venv), python_version(venv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
