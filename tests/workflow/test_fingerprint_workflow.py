"""Content, not timestamps, decides what reruns (a user's DICOM cohort, the tiny config): after a
complete run, a DICOM file whose pixels are rewritten in place and a cohort link repointed to a copy
with older files each replan the preflight, ingest and what is built from the store; an untouched
rerun plans nothing. Rerun triggers stated: mtime, input, params."""

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml

from support.workflow import snakemake, workflow_copy

pytestmark = pytest.mark.workflow
TARGET = "results/split/patients.csv"


def _planned(wd: Path, cfg: Path) -> dict[str, int]:
    proc = snakemake(wd, "-n", TARGET, "--rerun-triggers", "mtime", "input", "params", extra_config=cfg)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("total")[0]
    return {p[0]: int(p[1]) for p in (line.split() for line in table.splitlines()[3:]) if len(p) == 2 and p[1].isdigit()}


def _rewrite_pixels(path: Path) -> None:
    """New pixels in the same file, same name, same size (a corrected export)."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.copy()
    arr[: arr.shape[0] // 2] = arr.max()
    ds.PixelData = arr.astype(arr.dtype).tobytes()
    size = path.stat().st_size
    ds.save_as(path)
    assert path.stat().st_size == size


def test_a_rewritten_file_and_a_repointed_link_replan_ingest_and_an_untouched_rerun_nothing(tmp_path):
    wd = workflow_copy(tmp_path / "wf")
    snakemake(wd, "data/synthetic")  # a DICOM cohort to play the user's
    a, b, link = tmp_path / "cohort_a", tmp_path / "cohort_b", tmp_path / "cohort"
    shutil.copytree(wd / "data" / "synthetic", a, copy_function=shutil.copy2)
    link.symlink_to(a)
    cfg = tmp_path / "user.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": {
        "source": "dicom", "dicom_dir": str(link / "dicom"), "labels": str(link / "labels.csv"),
        "mask_dir": str(link / "masks"), "pseudonym_salt": "s"}}))
    snakemake(wd, TARGET, extra_config=cfg)
    assert _planned(wd, cfg) == {}  # untouched: nothing
    store = (wd / "results/cohort/images.npy").read_bytes()

    shutil.copytree(a, b, copy_function=shutil.copy2)  # b: the cohort as it was (older files), for later
    dicom = sorted((a / "dicom").rglob("*.dcm"))[3]
    _rewrite_pixels(dicom)
    planned = _planned(wd, cfg)
    assert {"cohort_check", "ingest", "split"} <= set(planned), planned
    snakemake(wd, TARGET, extra_config=cfg)
    assert (wd / "results/cohort/images.npy").read_bytes() != store  # the new pixels reached the store
    assert _planned(wd, cfg) == {}

    link.unlink()
    link.symlink_to(b)  # repointed to the older copy
    planned = _planned(wd, cfg)
    assert {"cohort_check", "ingest", "split"} <= set(planned), planned
    snakemake(wd, TARGET, extra_config=cfg)
    assert (wd / "results/cohort/images.npy").read_bytes() == store  # the old pixels again
    assert _planned(wd, cfg) == {}
