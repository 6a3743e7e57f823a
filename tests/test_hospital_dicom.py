"""DICOM as hospitals hand it over: every transfer syntax ingests to its uncompressed twin's store,
enhanced (multi-frame) MR, export folders with junk, series selection, and a preflight that lists
every problem of a cohort at once."""

import gzip
import itertools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

from anapart import CLASSES, dicom_io
from anapart.cohort import (IngestError, SeriesRule, check_cohort, ingest, ingest_plan, problems_message,
                             select_series, write_check)
from anapart.dicom_io import FrameRule
from conftest import series_rule, store_paths
from dicom_export import LOSSLESS, copy_series, enhanced_from_classic, non_image, write_8bit
from test_ingest import assert_no_phi, phi_values

ANY = SeriesRule(None, "any", 1)
_UIDS = itertools.count(1)


def short_uid() -> str:
    """A UID short enough for suffixes (study = series + ".9", slices = series + ".k")."""
    return f"1.2.826.0.1.3680043.10.{next(_UIDS)}"


def smooth_slice(k: int, rows: int = 40, cols: int = 56) -> np.ndarray:
    """A smooth 12-bit MR-like slice (blobs on a gradient), different for each k."""
    y, x = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    img = 600 + 900 * x + 400 * y
    for cy, cx, r, v in ((0.35, 0.4, 0.18, 1800), (0.5 + 0.03 * k, 0.75, 0.12, -500), (0.2, 0.2, 0.08, 900)):
        img += v * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_series(folder: Path, n: int = 5, *, pid: str = "PAT-1", uid: str | None = None, desc: str = "AX T2",
                 iop=(1, 0, 0, 0, 1, 0), slopes=None, z0: float = 0.0, step: float = 4.0, offset: int = 0,
                 rows: int = 40, cols: int = 56, name: str = "Doe^Jane", echo: float = 90.0,
                 prefix: str = "") -> list[Path]:
    """A classic series (one file per slice), slices along the normal of ``iop``; files named against the order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or short_uid()
    normal = dicom_io.slice_normal(iop)
    paths = []
    for k in range(n):
        ipp = [float(v) for v in np.array([-10.0, -20.0, 5.0]) + (z0 + k * step) * normal]
        meta = dict(PatientID=pid, PatientName=name, PatientBirthDate="19700101", StudyInstanceUID=uid + ".9",
                    SeriesInstanceUID=uid, SOPInstanceUID=f"{uid}.{k + 1}", InstanceNumber=k + 1,
                    SeriesDescription=desc, ImagePositionPatient=ipp, ImageOrientationPatient=list(iop),
                    PixelSpacing=[0.8, 0.8], SliceThickness=3.0, StudyDate="20200101",
                    RescaleSlope=float(slopes[k]) if slopes is not None else 1.5, RescaleIntercept=-20.0, EchoTime=echo)
        paths.append(folder / f"{prefix}{n - k:03d}.dcm")
        dicom_io.write_slice(paths[-1], smooth_slice(k + offset, rows, cols), meta)
    return paths


def every_slice_labels(path: Path, patients) -> Path:
    pd.DataFrame({"patient_id": list(patients), "instance": "", "label": "NPC"}).to_csv(path, index=False)
    return path


def ingest_dir(dicom: Path, out: Path, *, patients=("PAT-1",), rule=ANY, frames=None, field: int = 56,
               mask_dir=None) -> tuple[dict, np.ndarray]:
    out.parent.mkdir(parents=True, exist_ok=True)
    labels = every_slice_labels(out.parent / f"{out.name}_labels.csv", patients)
    report = ingest(dicom, labels, mask_dir, store_paths(out), classes=CLASSES, field=field, salt="s",
                           series=rule, frames=frames)
    return report, np.load(out / "images.npy")


# ---------------------------------------------------------------- transfer syntaxes

@pytest.fixture
def twin(tmp_path):
    """An uncompressed classic series and its store: what every other encoding must reproduce."""
    files = write_series(tmp_path / "twin" / "dicom" / "s", slopes=[1.5, 2.0, 0.5, 1.0, 3.0])
    _, store = ingest_dir(tmp_path / "twin" / "dicom", tmp_path / "twin_store")
    return files, store


@pytest.mark.parametrize("syntax", sorted(LOSSLESS))
def test_lossless_syntax_ingests_like_its_uncompressed_twin(syntax, twin, tmp_path):
    files, ref = twin
    dicom = tmp_path / syntax / "dicom"
    copies = copy_series(files, dicom / "s", syntax)
    assert pydicom.dcmread(copies[0], stop_before_pixels=True).file_meta.TransferSyntaxUID != \
        pydicom.dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID or syntax == "explicit_little"
    for a, b in zip(files, copies):
        np.testing.assert_array_equal(dicom_io.read_pixels(b), dicom_io.read_pixels(a))
    _, store = ingest_dir(dicom, tmp_path / f"{syntax}_store")
    np.testing.assert_array_equal(store, ref)


def test_gzip_wrapped_dicom_is_read(twin, tmp_path):
    files, ref = twin
    dicom = tmp_path / "gz" / "dicom" / "s"
    dicom.mkdir(parents=True)
    for f in files:
        (dicom / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
    _, store = ingest_dir(dicom.parent, tmp_path / "gz_store")
    np.testing.assert_array_equal(store, ref)


@pytest.mark.parametrize("syntax, uid", [("jpeg_baseline", "1.2.840.10008.1.2.4.50"),
                                         ("jpeg2000_lossy", "1.2.840.10008.1.2.4.91")])
def test_lossy_syntax_is_close_to_its_twin(syntax, uid, tmp_path):
    """Lossy encodings: the store stays within 0.03 of the uncompressed twin's (a [0, 1] store; a
    smooth slice at JPEG quality 95 / JPEG 2000 at 80 dB), mean error under 0.005. Baseline JPEG
    holds 8-bit samples, so its twin is an 8-bit copy of the slice."""
    src = write_series(tmp_path / "src" / "dicom" / "s")
    twin = src[0].parent
    if syntax == "jpeg_baseline":
        twin = tmp_path / "eight" / "dicom" / "s"
        twin.mkdir(parents=True)
        for f in src:
            write_8bit(f, twin / f.name, 0, 4095)
    lossy = tmp_path / "lossy" / "dicom" / "s"
    copy_series(sorted(twin.iterdir()), lossy, syntax)
    assert pydicom.dcmread(next(lossy.iterdir())).file_meta.TransferSyntaxUID == uid
    _, ref = ingest_dir(twin.parent, tmp_path / "twin_store")
    _, got = ingest_dir(lossy.parent, tmp_path / "lossy_store")
    diff = np.abs(got.astype(np.float32) - ref.astype(np.float32))
    assert 0 < diff.max() < 0.03 and diff.mean() < 0.005, (diff.max(), diff.mean())


BUNDLED_TWINS = ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_RLE.dcm",
                 "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]


@pytest.mark.parametrize("name", BUNDLED_TWINS)
def test_pydicoms_bundled_encodings_ingest_like_mr_small(name, tmp_path):
    """pydicom's own test files (signed 16-bit MR): JPEG-LS has no encoder here, so its bundled file."""
    stores = {}
    for n in ("MR_small.dcm", name):
        d = tmp_path / n / "dicom" / "s"
        d.mkdir(parents=True)
        shutil.copy(get_testdata_file(n), d / "1.dcm")
        _, stores[n] = ingest_dir(d.parent, tmp_path / f"{n}_store", patients=("4MR1",), field=64)
    np.testing.assert_array_equal(stores[name], stores["MR_small.dcm"])
    assert np.ptp(stores[name]) > 0.5


# ---------------------------------------------------------------- enhanced (multi-frame) MR

def test_enhanced_mr_frames_are_slices_with_their_own_position_and_rescale(twin, tmp_path):
    files, ref = twin
    order = [3, 0, 4, 1, 2]  # frames stored out of anatomical order
    for compress in (None, JPEG2000Lossless):
        d = tmp_path / f"enh{compress is not None}" / "dicom"
        d.mkdir(parents=True)
        enhanced_from_classic([{"path": files[i]} for i in order], d / "enhanced.dcm", compress=compress)
        (s,) = dicom_io.scan_series(d).values()
        assert s.enhanced and s.orientation_label == "axial" and len(s.slices) == 5
        assert [h.instance for h in s.slices] == [order.index(i) + 1 for i in range(5)]  # frame numbers
        assert sorted(h.rescale[0] for h in s.slices) == [0.5, 1.0, 1.5, 2.0, 3.0]  # each frame its own slope
        _, store = ingest_dir(d, tmp_path / f"enh{compress is not None}_store")
        np.testing.assert_array_equal(store, ref)


def _two_echo_file(tmp_path, key: str):
    first = write_series(tmp_path / "e1", slopes=[1.0] * 5)
    second = write_series(tmp_path / "e2", slopes=[1.0] * 5, offset=7)
    d = tmp_path / "echo" / "dicom"
    d.mkdir(parents=True)
    frames = [{"path": f, key: v} for a, b in zip(first, second) for f, v in ((a, 1 if key == "temporal" else 12.0),
                                                                            (b, 2 if key == "temporal" else 80.0))]
    enhanced_from_classic(frames, d / "multi.dcm")
    refs = {}
    for name, src in (("first", first), ("second", second)):
        dd = tmp_path / f"ref_{name}" / "dicom" / "s"
        dd.mkdir(parents=True)
        for f in src:
            shutil.copy(f, dd / f.name)
        refs[name] = ingest_dir(dd.parent, tmp_path / f"ref_{name}_store")[1]
    return d, refs


def test_frames_sharing_a_position_are_an_error_unless_the_config_picks_an_echo(tmp_path):
    d, refs = _two_echo_file(tmp_path, "echo")
    with pytest.raises(IngestError, match=r"multi\.dcm frame \d+: same slice position as frame \d+ .*cohort\.frames"):
        ingest_dir(d, tmp_path / "default")
    for echo, want in (("first", "first"), (1, "first"), ("last", "second"), (2, "second")):
        _, store = ingest_dir(d, tmp_path / f"echo_{echo}", frames=FrameRule(echo=echo))
        np.testing.assert_array_equal(store, refs[want])
    with pytest.raises(IngestError, match=r"multi\.dcm: cohort\.frames\.echo 3 but the series has 2 echo times"):
        ingest_dir(d, tmp_path / "echo_3", frames=FrameRule(echo=3))


def test_classic_multi_echo_series_picks_an_echo_too(tmp_path):
    """Dual-echo classic files (one SeriesInstanceUID, EchoTime per file) follow the same rule."""
    d = tmp_path / "classic" / "dicom" / "s"
    write_series(d, uid="1.2.826.0.1.3680043.10.77", echo=12.0, slopes=[1.0] * 5, prefix="a")
    write_series(d, uid="1.2.826.0.1.3680043.10.77", echo=80.0, slopes=[1.0] * 5, offset=7, prefix="b")
    for f in d.glob("b*.dcm"):  # distinct SOP instances of the second echo
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ds.SOPInstanceUID + "0"
        ds.save_as(f, enforce_file_format=True)
    ref = tmp_path / "ref" / "dicom" / "s"
    write_series(ref, echo=80.0, slopes=[1.0] * 5, offset=7)
    with pytest.raises(IngestError, match=r"b\d+\.dcm: same slice position as .*a\d+\.dcm|a\d+\.dcm: same slice"):
        ingest_dir(d.parent, tmp_path / "default")
    _, store = ingest_dir(d.parent, tmp_path / "last", frames=FrameRule(echo="last"))
    np.testing.assert_array_equal(store, ingest_dir(ref.parent, tmp_path / "ref_store")[1])


def test_temporal_position_picks_one_time_point(tmp_path):
    d, refs = _two_echo_file(tmp_path, "temporal")
    with pytest.raises(IngestError, match="duplicate slice"):
        ingest_dir(d, tmp_path / "default")
    _, store = ingest_dir(d, tmp_path / "t2", frames=FrameRule(temporal_position=2))
    np.testing.assert_array_equal(store, refs["second"])
    with pytest.raises(IngestError, match="temporal_position 5 but the series has temporal positions 1..2"):
        ingest_dir(d, tmp_path / "t5", frames=FrameRule(temporal_position=5))


def test_classic_and_enhanced_copies_of_one_series_are_not_mixed(twin, tmp_path):
    files, ref = twin
    d = tmp_path / "both" / "dicom"
    shutil.copytree(files[0].parent, d / "classic")
    (d / "enh").mkdir()
    enhanced_from_classic([{"path": f} for f in files], d / "enh" / "enhanced.dcm")
    scan = dicom_io.scan(d)
    (s,) = scan.series.values()
    assert s.enhanced and s.n_files == 1 and len(s.slices) == 5
    assert scan.skipped_counts() == {"classic_copy": 5}
    report, store = ingest_dir(d, tmp_path / "both_store")
    np.testing.assert_array_equal(store, ref)
    assert report["files_skipped"] == {"classic_copy": 5}


def test_enhanced_frame_without_position_names_file_and_frame(twin, tmp_path):
    files, _ = twin
    d = tmp_path / "broken" / "dicom"
    d.mkdir(parents=True)
    enhanced_from_classic([{"path": f} for f in files], d / "nopos.dcm", drop="PlanePositionSequence")
    with pytest.raises(IngestError, match=r"nopos\.dcm: frame 1 has no PlanePositionSequence"):
        ingest_dir(d, tmp_path / "out")


# ---------------------------------------------------------------- export folders

def test_export_folder_junk_is_skipped_counted_and_listed_only_in_the_log(twin, tmp_path, caplog):
    files, ref = twin
    d = tmp_path / "export" / "dicom"
    shutil.copytree(files[0].parent, d / "Doe^Jane" / "series1")
    junk = d / "Doe^Jane"
    (junk / "README.txt").write_text("Viewer on this CD\n")
    (junk / "report.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n")
    (junk / "meta.json").write_text("{}")
    (d / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    sitk.WriteImage(sitk.Image(4, 4, 2, sitk.sitkUInt8), str(junk / "seg.nii.gz"))
    non_image("sr", "PAT-1", junk / "report_sr.dcm")
    non_image("pr", "PAT-1", junk / "PS000001")
    non_image("raw", "PAT-1", junk / "RAW0001")
    non_image("screen", "PAT-1", junk / "screen.dcm")
    from pydicom.fileset import FileSet

    fs = FileSet()
    sr = non_image("sr", "PAT-1")
    sr.PatientName, sr.StudyInstanceUID, sr.StudyDate, sr.StudyTime, sr.StudyID, sr.AccessionNumber = \
        "Doe^Jane", generate_uid(), "20200101", "1200", "1", ""
    sr.SeriesNumber, sr.InstanceNumber, sr.ContentDate, sr.ContentTime = 9, 1, "20200101", "1200"
    sr.CompletionFlag, sr.VerificationFlag = "COMPLETE", "UNVERIFIED"
    sr.ConceptNameCodeSequence = [pydicom.Dataset()]
    sr.ConceptNameCodeSequence[0].CodeValue, sr.ConceptNameCodeSequence[0].CodingSchemeDesignator = "1", "99X"
    sr.ConceptNameCodeSequence[0].CodeMeaning = "Report"
    fs.add(sr)
    (d / "cd").mkdir()
    fs.write(d / "cd")
    caplog.set_level(logging.INFO, logger="anapart")
    out = tmp_path / "results" / "cohort"
    report, store = ingest_dir(d, out)
    np.testing.assert_array_equal(store, ref)
    assert report["files_skipped"] == {"dicomdir": 1, "no_geometry": 1, "not_dicom": 5, "presentation_state": 1,
                                       "raw_data": 1, "structured_report": 2}
    assert "skipped 11 file(s)" in caplog.text and "Doe^Jane/README.txt" in caplog.text  # paths: log only
    assert "skipped (dicomdir): cd/DICOMDIR" in caplog.text
    assert_no_phi(out, phi_values(d) | {"Doe^Jane", "README", "Jane"})


def test_a_file_named_dicom_that_is_not_is_a_problem(twin, tmp_path):
    files, _ = twin
    d = tmp_path / "x" / "dicom"
    shutil.copytree(files[0].parent, d / "s")
    (d / "s" / "empty.dcm").write_bytes(b"")
    with pytest.raises(IngestError, match=r"empty\.dcm: not a readable DICOM file"):
        ingest_dir(d, tmp_path / "out")


def test_an_image_that_cannot_be_decoded_is_an_error_naming_it(twin, tmp_path):
    files, _ = twin
    d = tmp_path / "bad" / "dicom"
    shutil.copytree(files[0].parent, d / "s")
    victim = sorted((d / "s").iterdir())[2]
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])  # a J2K start, then nothing sensible
    ds["PixelData"].VR = "OB"
    ds.save_as(victim, enforce_file_format=True)
    check = check_cohort(d, every_slice_labels(tmp_path / "l.csv", ["PAT-1"]), None, classes=CLASSES, salt="s",
                         series=ANY)
    assert check.problems == []  # the header is fine: only decoding finds it
    out = tmp_path / "results" / "cohort"
    with pytest.raises(IngestError, match=rf"{victim.name}: could not decode pixel data"):
        ingest_dir(d, out)
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


# ---------------------------------------------------------------- series selection

@pytest.fixture
def three_series(tmp_path):
    """One patient: a 3-slice localizer (axial, sagittal, coronal), an axial T1 and an axial T2."""
    d = tmp_path / "sel" / "dicom"
    t2 = write_series(d / "Doe^Jane" / "T2", desc="AX T2 FSE")
    write_series(d / "Doe^Jane" / "T1", desc="AX T1 SE", offset=3)
    loc = short_uid()
    for k, iop in enumerate(([1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1])):
        write_series(d / "Doe^Jane" / "LOC", n=1, uid=loc, desc="localizer", iop=iop, z0=0)
        (d / "Doe^Jane" / "LOC" / "001.dcm").rename(d / "Doe^Jane" / "LOC" / f"loc{k}.dcm")
        ds = pydicom.dcmread(d / "Doe^Jane" / "LOC" / f"loc{k}.dcm")
        ds.SOPInstanceUID, ds.InstanceNumber = f"{loc}.{k + 7}", k + 1
        ds.save_as(d / "Doe^Jane" / "LOC" / f"loc{k}.dcm", enforce_file_format=True)
    plain = tmp_path / "plain" / "dicom" / "T2"
    plain.mkdir(parents=True)
    for f in t2:
        shutil.copy(f, plain / f.name)
    return d, ingest_dir(plain.parent, tmp_path / "plain_store")[1]


def test_the_series_rule_picks_t2_from_localizer_t1_and_t2(three_series, tmp_path):
    d, ref = three_series
    rule = SeriesRule.from_config({**series_rule().__dict__, "description": "T2"})
    _, store = ingest_dir(d, tmp_path / "t2", rule=rule)
    np.testing.assert_array_equal(store, ref)


def test_two_matching_series_are_an_error_listing_the_candidates(three_series, tmp_path):
    d, _ = three_series
    with pytest.raises(IngestError) as err:
        ingest_dir(d, tmp_path / "default", rule=series_rule())  # the demo's default: axial, >= 5 slices
    msg = str(err.value)
    assert msg.startswith("1 problem:") and "Doe^Jane: 2 series match the series rule" in msg
    for cand in ("'Doe^Jane/LOC' ('localizer', mixed, 3 slices)", "'Doe^Jane/T1' ('AX T1 SE', axial, 5 slices)",
                 "'Doe^Jane/T2' ('AX T2 FSE', axial, 5 slices)"):
        assert cand in msg
    # the localizer matches nothing, whatever the description says, unless the rule allows it
    with pytest.raises(IngestError, match="no series matches the series rule"):
        ingest_dir(d, tmp_path / "loc", rule=SeriesRule("localizer", "axial", 1))
    with pytest.raises(IngestError, match="LOC/loc1.dcm: ImageOrientationPatient differs"):
        ingest_dir(d, tmp_path / "loc_any", rule=SeriesRule("localizer", "any", 1))


def test_orientation_selects_a_sagittal_series(tmp_path):
    d = tmp_path / "o" / "dicom"
    write_series(d / "ax", desc="T2")
    write_series(d / "sag", desc="T2", iop=(0, 1, 0, 0, 0, -1), offset=5)
    write_series(d / "scout", n=3, desc="T2 scout", offset=2)  # a single-plane axial scout: too few slices
    series = {(s.orientation_label, len(s.slices)): s for s in dicom_io.scan_series(d).values()}
    assert set(series) == {("axial", 5), ("sagittal", 5), ("axial", 3)}
    assert select_series(list(series.values()), SeriesRule("t2", "sagittal", 5)) == [series["sagittal", 5]]
    assert select_series(list(series.values()), series_rule()) == [series["axial", 5]]  # the demo default
    assert select_series(list(series.values()), SeriesRule(None, "any", 6)) == []
    tilted = (1, 0, 0, 0, np.cos(0.4), np.sin(0.4))  # 23 degrees off axial is still axial
    assert dicom_io.orientation_label(tilted) == "axial"
    for bad in (dict(orientation="oblique"), dict(description="T2(")):
        with pytest.raises(ValueError):
            SeriesRule(**{"description": None, "orientation": "any", "min_slices": 1, **bad})


# ---------------------------------------------------------------- the preflight

@pytest.fixture
def troubled(cohort, tmp_path):
    """The tiny cohort with eight problems of different kinds."""
    labels = pd.read_csv(cohort / "labels.csv")
    pids = sorted(labels["patient_id"].unique())
    folders = {p: cohort / "dicom" / p for p in pids}
    expect = {}
    # 1, 2: labels rows (an unknown class, a patient without DICOM)
    labels.loc[3, "label"] = "lymphona"
    labels = labels[labels["patient_id"] != pids[7]]  # 3: pids[7] unlabelled
    labels = pd.concat([labels, pd.DataFrame({"patient_id": ["GHOST-1"], "instance": [1], "label": ["NPC"]})])
    labels.to_csv(cohort / "labels.csv", index=False)
    expect["lymphona"] = "labels.csv line 5: unknown class 'lymphona'"
    expect["ghost"] = f"labels.csv line {len(labels) + 1}: no DICOM series for this patient"
    expect["unlabelled"] = f"{pids[7]}: series has no label in"
    # 4: a second axial series for pids[0]
    second = cohort / "dicom" / f"{pids[0]}_copy"
    uid = generate_uid()
    for f in sorted(folders[pids[0]].iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        second.mkdir(exist_ok=True)
        ds.save_as(second / f.name, enforce_file_format=True)
    expect["two"] = "2 series match the series rule"
    # 5: truncated pixel data of pids[1]
    victim = sorted(folders[pids[1]].iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-500])
    expect["truncated"] = f"{victim.name}: pixel data are truncated"
    # 6: a duplicate slice in pids[2]
    f = sorted(folders[pids[2]].iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.SOPInstanceUID, ds.InstanceNumber = generate_uid(), 99
    ds.save_as(folders[pids[2]] / "dup.dcm", enforce_file_format=True)
    expect["dup"] = "(duplicate slice in series"
    # 7: a mask off the grid of pids[3]
    ref = dicom_io.reference_image((6, 48, 40), (5.0, 5.0), 5.5, (1, 0, 0, 0, 1, 0), (0, 0, 0))
    dicom_io.write_mask(cohort / "masks" / pids[3] / "region.nii.gz", np.zeros((6, 48, 40), np.uint8), ref)
    expect["mask"] = f"{pids[3]}/region.nii.gz: mask size"
    phi = phi_values(cohort / "dicom")
    # 8: a text file named .dcm
    (folders[pids[4]] / "notes.dcm").write_text("not dicom")
    expect["notdicom"] = "notes.dcm: not a readable DICOM file"
    return cohort, expect, phi


def test_the_preflight_lists_every_problem_in_one_go(troubled, tmp_path):
    c, expect, phi = troubled
    check = check_cohort(c / "dicom", c / "labels.csv", c / "masks", classes=CLASSES, salt="s", series=series_rule())
    texts = [str(p) for p in check.problems]
    assert len(texts) == len(expect) == 8, "\n".join(texts)
    for key, fragment in expect.items():
        assert sum(fragment in t for t in texts) == 1, (key, fragment, texts)
    message = problems_message(check.problems)
    assert message.startswith("8 problems:\n  ")
    assert check.summary["problems"] == 8 and check.summary["problems_by_kind"] == {
        "labels": 1, "mask": 1, "no_label": 1, "no_series": 1, "several_matching_series": 1, "series": 2,
        "unreadable_file": 1}
    table = check.table
    assert len(table) == 9 and table["patient"].str.fullmatch(r"P[0-9a-f]{10}").all()  # 8 + ghost + unlabelled
    assert int(table["problems"].sum()) == 7  # all but the unreadable file, which names no patient
    assert table["problem_kinds"].str.contains("labels").sum() == 1
    ok = table[table["problems"] == 0]
    assert (ok["orientation"] == "axial").all() and (ok["slices"] == 6).all() and (ok["region_mask"] == "ok").all()
    # ingest lists the same problems and writes nothing
    out = tmp_path / "results" / "cohort"
    with pytest.raises(IngestError) as err:
        ingest(c / "dicom", c / "labels.csv", c / "masks", store_paths(out), classes=CLASSES, field=32, salt="s",
               series=series_rule())
    assert str(err.value) == message
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    # what goes to results/ names no patient and no file
    plan = tmp_path / "private" / "plan.json"
    write_check(check, out / "check.csv", out / "check.json", plan)
    assert_no_phi(out, phi | {"notes.dcm", "region.nii.gz", "GHOST-1"})
    assert "SYN" in plan.read_text()  # the plan (outside results/) names PatientIDs and files


def test_more_than_20_problems_quote_the_first_20(cohort, tmp_path):
    labels = pd.read_csv(cohort / "labels.csv")
    labels.loc[:24, "label"] = "bogus"
    labels.to_csv(cohort / "labels.csv", index=False)
    check = check_cohort(cohort / "dicom", cohort / "labels.csv", None, classes=CLASSES, salt="s",
                         series=series_rule())
    msg = problems_message(check.problems)
    assert msg.startswith("25 problems, first 20:") and msg.count("unknown class 'bogus'") == 20
    assert "line 21:" in msg and "line 22:" not in msg


def test_the_preflight_decodes_nothing_and_ingest_reads_its_plan(cohort, tmp_path, monkeypatch):
    rule = series_rule()
    paths = store_paths(tmp_path / "direct")
    ref = ingest(cohort / "dicom", cohort / "labels.csv", cohort / "masks", paths, classes=CLASSES, field=32,
                 salt="test-salt", series=rule)
    decoded = []
    real = dicom_io.read_slices
    monkeypatch.setattr(dicom_io, "read_slices", lambda s: decoded.append(len(s)) or real(s))
    check = check_cohort(cohort / "dicom", cohort / "labels.csv", cohort / "masks", classes=CLASSES, salt="test-salt",
                         series=rule)
    assert decoded == [] and check.problems == []
    plan = tmp_path / "private" / "plan.json"
    write_check(check, tmp_path / "check.csv", tmp_path / "check.json", plan)
    via_plan = store_paths(tmp_path / "via_plan")
    report = ingest_plan(plan, via_plan, classes=CLASSES, field=32)
    assert sum(decoded) == report["n_slices"] == ref["n_slices"]
    for k in ("images", "masks", "manifest"):
        assert via_plan[k].read_bytes() == paths[k].read_bytes(), k
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["labelled_slices"] == ref["n_slices"] and summary["problems"] == 0


