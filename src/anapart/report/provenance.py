"""What a published number was computed with: anapart's version and commit, the lock file's hash,
the key packages' versions, and the citations of the papers and data set it rests on.

Why: a reader of the report (or of a paper's methods section) must be able to say which code and
libraries produced it, and whose work it rebuilds. Shown on the report's front page and answered in
the checklist's software item; nothing here is typed in per run.
"""

from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

# The packages whose versions change numbers (training, network definitions, DICOM decoding, DAG).
KEY_PACKAGES = ["torch", "timm", "segmentation-models-pytorch", "snakemake", "pydicom"]

STUDY_A = ("Li S, Hua HL, Li F, Kong YG, Zhu ZL, Li SL, Chen XX, Deng YQ, Tao ZZ. Anatomical "
           "partition-based deep learning: an automatic nasopharyngeal MRI recognition scheme. "
           "J Magn Reson Imaging 2022;56:1220-1229. doi:10.1002/jmri.28112")
STUDY_B = ("Huang J, He R, Chen J, Li S, Deng Y, Wu X. Boosting advanced nasopharyngeal carcinoma stage "
           "prediction using a two-stage classification framework based on deep learning. "
           "Int J Comput Intell Syst 2021. doi:10.1007/s44196-021-00026-9")


def git_commit(repo: Path) -> str:
    """The checkout's commit (with "+ uncommitted changes" when tracked files differ), or
    "not a git checkout" (an unpacked release, a copied workflow)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, or "missing" (a run without the lock file is said to be one)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


def package_versions(names=KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` ("not installed" where absent)."""
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def collect(repo: Path) -> dict:
    """Everything the front page and the checklist print about the software of this run."""
    repo = Path(repo)
    try:
        version = metadata.version("anapart")
    except metadata.PackageNotFoundError:
        version = "not installed"
    return {"anapart": version, "commit": git_commit(repo),
            "lock_sha256": file_sha256(repo / "requirements.lock"), "packages": package_versions()}


def software_line(p: dict) -> str:
    """One sentence: anapart version and commit, the lock hash, key package versions."""
    pk = ", ".join(f"{k} {v}" for k, v in p["packages"].items())
    return (f"anapart {p['anapart']} (commit {p['commit']}); requirements.lock SHA-256 "
            f"{p['lock_sha256'][:16]}; {pk}.")
