import json
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from anapart.cohort import pseudonyms as cohort
from anapart.io import dicom as dicom_io
from anapart.io.errors import IngestError
from anapart.io.store import LESION_BIT, REGION_BIT, load_store
from support.phi import assert_no_phi, phi_values


def _first_series_folder(c):
    return sorted((c / "dicom").iterdir())[0]


def _assert_nothing_written(out):
    left = list(out.parent.rglob("*")) if out.parent.exists() else []
    assert not [p for p in left if p.is_file()], f"partial output left behind: {left}"


def test_ingest_builds_store_and_manifest(cohort, run_ingest):
    report, out = run_ingest(cohort, field=32)
    labels = pd.read_csv(cohort / "labels.csv")
    man = pd.read_csv(out / "manifest.csv")
    assert report["n_slices"] == len(labels) == len(man)
    assert list(man.columns[:5]) == ["slice_id", "patient", "label", "has_region_mask", "has_lesion_mask"]
    assert man["patient"].str.fullmatch(r"P[0-9a-f]{10}").all()
    assert man["slice_id"].is_unique and (man["row"] == np.arange(len(man))).all()
    _, images, masks = load_store(out)
    assert images.shape == masks.shape == (len(man), 32, 32)
    assert np.load(out / "masks.npy", mmap_mode="r").shape == (len(man), 2, 32, 4)  # packed bit planes
    assert images.dtype == np.float16 and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    # the class counts come from the labels table, per class
    assert man["label"].value_counts().to_dict() == labels["label"].value_counts().to_dict()
    # lesion masks exist exactly on (and only on) lesion-labelled slices in the synthetic cohort
    lesion_rows = man["has_lesion_mask"]
    assert (man.loc[lesion_rows, "label"] != "normal").all()
    assert ((masks[man.index[lesion_rows]] & LESION_BIT) > 0).any(axis=(1, 2)).all()
    assert ((masks[man.index[~man["has_region_mask"]]] & REGION_BIT) == 0).all()
    # lesions lie inside the region where both exist
    both = man.index[man["has_region_mask"] & man["has_lesion_mask"]]
    les = (masks[both] & LESION_BIT) > 0
    reg = (masks[both] & REGION_BIT) > 0
    assert (les & ~reg).sum() <= 0.1 * les.sum()
    assert json.loads((out / "ingest.json").read_text())["n_patients"] == 8


def test_ingest_field_resampling_keeps_mask_alignment(cohort, run_ingest):
    _, out32 = run_ingest(cohort, field=32)
    man = pd.read_csv(out32 / "manifest.csv")
    m32 = load_store(out32)[2][:]
    shutil.rmtree(out32)
    _, out64 = run_ingest(cohort, field=64)
    m64 = load_store(out64)[2][:]
    i = int(man.index[man["has_region_mask"]][0])
    c32 = np.argwhere(m32[i] & REGION_BIT).mean(0) / 32
    c64 = np.argwhere(m64[i] & REGION_BIT).mean(0) / 64
    np.testing.assert_allclose(c32, c64, atol=0.03)
    assert pd.read_csv(out64 / "manifest.csv")["pixel_spacing_mm"].iloc[0] == pytest.approx(240 / 64)


def test_blank_instance_labels_every_slice(cohort, run_ingest):
    labels = pd.read_csv(cohort / "labels.csv")
    first = labels["patient_id"].iloc[0]
    rest = labels[labels["patient_id"] != first]
    blanket = pd.DataFrame({"patient_id": [first], "instance": [""], "label": ["normal"]})
    pd.concat([rest, blanket]).to_csv(cohort / "labels.csv", index=False)
    report, out = run_ingest(cohort)
    assert report["n_slices"] == len(rest) + 6  # every slice of that series


def test_pseudonyms_depend_on_salt_only():
    assert cohort.pseudonym("SYN-1", "a") == cohort.pseudonym("SYN-1", "a")
    assert cohort.pseudonym("SYN-1", "a") != cohort.pseudonym("SYN-1", "b")
    assert "SYN" not in cohort.pseudonym("SYN-1", "a")


def test_env_salt(monkeypatch):
    monkeypatch.setenv("MY_SALT", "s3cret")
    assert cohort.resolve_salt("env:MY_SALT") == "s3cret"
    monkeypatch.delenv("MY_SALT")
    with pytest.raises(IngestError, match="MY_SALT"):
        cohort.resolve_salt("env:MY_SALT")


def test_file_salt_and_where_each_cohort_reads_its_salt(tmp_path):
    (tmp_path / "salt").write_text("from-a-file\nsecond line ignored\n")
    assert cohort.resolve_salt(f"file:{tmp_path / 'salt'}") == "from-a-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(IngestError, match="empty"):
        cohort.resolve_salt(f"file:{tmp_path / 'empty'}")
    with pytest.raises(IngestError, match="cannot read"):
        cohort.resolve_salt(f"file:{tmp_path / 'absent'}")
    cfg = {"cohort": {"pseudonym_salt": "main", "external": {"source": "dicom"}},
           "staging": {"cohort": {"pseudonym_salt": "env:B"}}}
    assert cohort.salt_of(cfg, "cohort") == "main"
    assert cohort.salt_of(cfg, "cohort.external") == "main"  # defaults to the main cohort's
    cfg["cohort"]["external"]["pseudonym_salt"] = "ext"
    assert cohort.salt_of(cfg, "cohort.external") == "ext"
    assert cohort.salt_of(cfg, "staging.cohort") == "env:B"


def test_the_salt_fingerprint_changes_with_the_salt_and_does_not_contain_it(monkeypatch):
    a, b = cohort.salt_fingerprint("a-long-salt"), cohort.salt_fingerprint("another-salt")
    assert a != b and "a-long-salt" not in a and a == cohort.salt_fingerprint("a-long-salt")
    # the fingerprint is a pseudonym under the salt (published pseudonyms are values of the same kind)
    assert a == cohort.pseudonym("anapart salt fingerprint", "a-long-salt", prefix="S")
    monkeypatch.delenv("UNSET_SALT", raising=False)
    assert cohort.salt_fingerprint("env:UNSET_SALT") == "unresolved (env)"


# ---------------------------------------------------------------- bad input: clear error, nothing left

def test_a_semicolon_labels_file_is_one_problem_that_names_the_separator(cohort, run_ingest, tmp_path):
    """A European-locale spreadsheet saves ';'-separated values: one message, not one per patient."""
    labels = pd.read_csv(cohort / "labels.csv")
    labels["volume_ml"] = "1,5"  # a decimal comma: a comma parser then meets rows of uneven length
    labels.to_csv(cohort / "labels.csv", index=False, sep=";")
    with pytest.raises(IngestError) as e:
        run_ingest(cohort)
    msg = str(e.value)
    assert msg.startswith("1 problem:") and "separated by ';', not commas" in msg, msg
    assert "no label" not in msg
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_unreadable_dicom(cohort, run_ingest, tmp_path):
    bad = _first_series_folder(cohort) / "broken.dcm"
    bad.write_bytes(b"this is not a DICOM file at all" * 10)
    with pytest.raises(IngestError, match=r"broken\.dcm: not a readable DICOM file"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_truncated_dicom(cohort, run_ingest, tmp_path):
    victim = sorted(_first_series_folder(cohort).glob("*.dcm"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match=str(victim.name)):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_non_image_dicom_is_skipped_but_an_mr_image_without_geometry_is_an_error(cohort, run_ingest, tmp_path):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    fm.MediaStorageSOPInstanceUID = "1.2.3.999"
    fm.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.SeriesInstanceUID = "1.2.3.998"
    path = _first_series_folder(cohort) / "report.dcm"
    ds.save_as(path, enforce_file_format=True)
    report, _ = run_ingest(cohort)
    assert report["files_skipped"] == {"structured_report": 1}
    shutil.rmtree(tmp_path / "results")
    victim = sorted(_first_series_folder(cohort).glob("*.dcm"))[1]
    mr = pydicom.dcmread(victim)
    del mr.ImagePositionPatient
    mr.save_as(victim, enforce_file_format=True)
    with pytest.raises(IngestError, match=rf"{victim.name}: not an image slice \(SOP class MR Image Storage; "
                                          r"missing ImagePositionPatient\)"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def _undecodable_syntax():
    """A compressed syntax pydicom cannot decode here (JPEG 2000 Part 2 has no decoder at all)."""
    for uid in (pydicom.uid.JPEG2000MCLossless, pydicom.uid.JPEGLSLossless, pydicom.uid.HTJ2KLossless):
        try:
            if not pydicom.pixels.get_decoder(uid).is_available:
                return uid
        except NotImplementedError:
            return uid
    pytest.fail("every candidate compressed transfer syntax has a decoder installed")


def test_compressed_without_decoder(cohort, run_ingest, tmp_path):
    uid = _undecodable_syntax()
    victim = sorted(_first_series_folder(cohort).glob("*.dcm"))[0]
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = uid
    ds.PixelData = encapsulate([b"\xff\x4f" + b"\x00" * 62])
    ds["PixelData"].VR = "OB"
    ds.save_as(victim, enforce_file_format=True)
    with pytest.raises(IngestError, match=rf"{victim.name}: pixel data is compressed .*no decoder"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_labels_row_for_missing_patient(cohort, run_ingest, tmp_path):
    with open(cohort / "labels.csv", "a") as fh:
        fh.write("GHOST-0001,3,NPC\n")
    n = len(pd.read_csv(cohort / "labels.csv"))
    with pytest.raises(IngestError, match=rf"labels\.csv line {n + 1}: no DICOM series for this patient"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_series_without_label(cohort, run_ingest, tmp_path):
    labels = pd.read_csv(cohort / "labels.csv")
    victim = labels["patient_id"].iloc[-1]
    labels[labels["patient_id"] != victim].to_csv(cohort / "labels.csv", index=False)
    with pytest.raises(IngestError, match=rf"dicom/{victim}: series has no label in .*labels\.csv"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_unknown_class_name(cohort, run_ingest, tmp_path):
    labels = pd.read_csv(cohort / "labels.csv")
    labels.loc[2, "label"] = "lymphona"
    labels.to_csv(cohort / "labels.csv", index=False)
    with pytest.raises(IngestError, match=r"labels\.csv line 4: unknown class 'lymphona'"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_instance_not_in_series(cohort, run_ingest):
    labels = pd.read_csv(cohort / "labels.csv")
    labels.loc[0, "instance"] = 99
    labels.to_csv(cohort / "labels.csv", index=False)
    with pytest.raises(IngestError, match=r"labels\.csv line 2: instance 99 is not in the series"):
        run_ingest(cohort)


def test_inconsistent_slice_sizes(cohort, run_ingest, tmp_path):
    victim = sorted(_first_series_folder(cohort).glob("*.dcm"))[1]
    ds = pydicom.dcmread(victim)
    meta = {k: ds.data_element(k).value for k in (
        "PatientID", "PatientName", "SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID", "InstanceNumber",
        "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")}
    dicom_io.write_slice(victim, np.zeros((40, 48), np.uint16), meta)
    with pytest.raises(IngestError, match=rf"{victim.name}: slice size 40x48 differs from 48x48"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_misaligned_mask(cohort, run_ingest, tmp_path):
    folder = sorted((cohort / "masks").iterdir())[0]
    ref = dicom_io.reference_image((6, 48, 40), (5.0, 5.0), 5.5, (1, 0, 0, 0, 1, 0), (0, 0, 0))
    dicom_io.write_mask(folder / "region.nii.gz", np.zeros((6, 48, 40), np.uint8), ref)
    with pytest.raises(IngestError, match=r"region\.nii\.gz: mask size"):
        run_ingest(cohort)
    _assert_nothing_written(tmp_path / "results" / "cohort")


def test_missing_dicom_folder(tmp_path, run_ingest):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "labels.csv").write_text("patient_id,label\nA,NPC\n")
    with pytest.raises(IngestError, match=r"dicom: DICOM folder does not exist"):
        run_ingest(tmp_path / "empty", mask_dir=None)


# ---------------------------------------------------------------- PHI





def test_no_phi_in_ingest_outputs(cohort, run_ingest, tmp_path):
    _, out = run_ingest(cohort)
    values = phi_values(cohort / "dicom")
    assert len(values) >= 3 * 8  # names, IDs, birth dates of 8 patients
    assert_no_phi(out, values)
