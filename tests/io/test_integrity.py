"""Damaged compressed inputs (anapart.io.integrity): copies of a real LGG FLAIR volume and lesion mask
cut short, stripped of the gzip trailer or with one flipped bit are preflight problems naming the
file, and ingest writes nothing. SimpleITK reads each of them without a word (checked here too), which
is why the gzip stream is verified first."""

import gzip
import os
import shutil

import pandas as pd
import pytest
import SimpleITK as sitk

from anapart.cohort.preflight import check_cohort, ingest
from anapart.io.errors import IngestError
from anapart.io.integrity import gzip_problem
from anapart.io.nifti import Layout
from support.common import REPO, percentiles, series_rule, store_paths

LGG = (REPO.parent / "shared" / "data" / "lgg-nifti").resolve()
PATIENTS = ("TCGA_CS_4941", "TCGA_CS_4942")
CLASSES = ["astrocytoma", "oligoastrocytoma", "oligodendroglioma", "normal"]
LAYOUT = Layout("folders", "flair.nii.gz")
MASKS = {"region": "brain.nii.gz", "lesion": "lesion.nii.gz"}


def _damage(data: bytes, how: str) -> bytes:
    """A copy of a gzip file's bytes as an interrupted copy or a bad disk leaves it."""
    if how == "truncated":
        return data[:len(data) // 2]
    if how == "trailerless":  # the deflate stream whole, the 8-byte CRC-32 and length gone
        return data[:-8]
    if how == "bitflip":  # one bit in the middle of the deflate data
        k = len(data) // 2
        return data[:k] + bytes([data[k] ^ 0x10]) + data[k + 1:]
    raise ValueError(how)


WORDS = {"truncated": "truncated gzip stream", "trailerless": "truncated gzip stream", "bitflip": "CRC mismatch"}


@pytest.fixture
def cohort(tmp_path):
    """Two real patients copied (never the shared data itself), with their label rows."""
    if not (LGG / "labels.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{LGG} is missing: CI has shared/ beside the clone")
        pytest.skip(f"{LGG} is not here")
    root = tmp_path / "lgg"
    for pid in PATIENTS:
        shutil.copytree(LGG / pid, root / pid)
        for f in (root / pid).iterdir():
            f.chmod(0o644)
    labels = pd.read_csv(LGG / "labels.csv")
    labels[labels["patient_id"].isin(PATIENTS)].to_csv(tmp_path / "labels.csv", index=False)
    return root, tmp_path / "labels.csv"


def _check(root, labels):
    return check_cohort(root, labels, None, classes=CLASSES, salt="s", series=series_rule(), mask_names=MASKS,
                        nifti_layout=LAYOUT)


@pytest.mark.parametrize("how", sorted(WORDS))
def test_gzip_problem_names_each_kind_of_damage(cohort, how):
    root, _ = cohort
    for name in ("flair.nii.gz", "lesion.nii.gz"):
        path = root / PATIENTS[0] / name
        assert gzip_problem(path) is None
        path.write_bytes(_damage(path.read_bytes(), how))
        problem = gzip_problem(path)
        assert problem is not None and problem.startswith(f"{path}: {WORDS[how]}"), problem


def test_a_bit_flip_in_the_trailer_is_a_crc_mismatch(cohort):
    path = cohort[0] / PATIENTS[0] / "flair.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[:-6] + bytes([data[-6] ^ 1]) + data[-5:])  # a bit of the stored CRC-32
    assert "CRC mismatch" in gzip_problem(path)


def test_an_intact_multi_member_gzip_passes(tmp_path):
    path = tmp_path / "two.nii.gz"
    path.write_bytes(gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000))
    assert gzip_problem(path) is None
    plain = tmp_path / "plain.nii"
    plain.write_bytes(b"not compressed")
    assert gzip_problem(plain) is None


@pytest.mark.parametrize("how", sorted(WORDS))
def test_a_damaged_volume_and_mask_stop_the_preflight_naming_each_file(cohort, how, tmp_path):
    root, labels = cohort
    assert _check(root, labels).problems == []  # the intact copies pass
    image = root / PATIENTS[0] / "flair.nii.gz"
    mask = root / PATIENTS[1] / "lesion.nii.gz"
    for path in (image, mask):
        path.write_bytes(_damage(path.read_bytes(), how))
    if how != "bitflip":  # the silent reader this guards against: SimpleITK decodes what is left
        sitk.ReadImage(str(image))
    check = _check(root, labels)
    text = "\n".join(str(p) for p in check.problems)
    assert f"{image}: {WORDS[how]}" in text, text
    assert f"{mask}: {WORDS[how]}" in text, text
    assert check.plans == []  # neither patient is ingested
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=WORDS[how]):
        ingest(root, labels, None, store_paths(out), classes=CLASSES, field=32, salt="s", series=series_rule(),
               percentiles=percentiles(), mask_names=MASKS, nifti_layout=LAYOUT)
    assert not out.exists() or not any(out.iterdir())


def test_an_rgb_volume_and_mask_are_preflight_problems_naming_the_file(cohort):
    """A vector (RGB) NIfTI used to pass the preflight and fail ingest with 'too many values to unpack'."""
    root, labels = cohort
    image = root / PATIENTS[0] / "flair.nii.gz"
    mask = root / PATIENTS[1] / "lesion.nii.gz"
    for path in (image, mask):
        grey = sitk.ReadImage(str(path))
        rgb = sitk.Compose(grey, grey, grey)
        rgb.CopyInformation(grey)
        sitk.WriteImage(rgb, str(path))
        assert sitk.ReadImage(str(path)).GetNumberOfComponentsPerPixel() == 3
    check = _check(root, labels)
    text = "\n".join(str(p) for p in check.problems)
    assert f"{image}: 3 components per voxel" in text, text
    assert f"{mask}: 3 components per voxel" in text, text
    assert check.plans == []
