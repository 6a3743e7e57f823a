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

from anapart import CLASSES
from anapart.cohort.preflight import check_cohort, ingest, ingest_plan, log_check, write_check
from anapart.cohort.problems import problems_message
from anapart.cohort.series import SeriesRule, select_series
from anapart.io import dicom as dicom_io
from anapart.io import dicom_header, dicom_scan
from anapart.io.dicom_scan import FrameRule
from anapart.io.errors import IngestError
from support.common import percentiles, series_rule, store_paths
from support.dicom_export import LOSSLESS, copy_series, enhanced_from_classic, non_image, write_8bit
from support.phi import assert_no_phi, phi_values

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
                 prefix: str = "", positions=None, meta_of=None) -> list[Path]:
    """A classic series (one file per slice), slices along the normal of ``iop`` (at ``z0 + k * step``,
    or ``positions``); files named against the order. ``meta_of(k)`` adds or overrides keywords of slice k."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or short_uid()
    normal = dicom_io.slice_normal(iop)
    paths = []
    for k in range(n):
        z = positions[k] if positions is not None else z0 + k * step
        ipp = [float(v) for v in np.array([-10.0, -20.0, 5.0]) + z * normal]
        meta = dict(PatientID=pid, PatientName=name, PatientBirthDate="19700101", StudyInstanceUID=uid + ".9",
                    SeriesInstanceUID=uid, SOPInstanceUID=f"{uid}.{k + 1}", InstanceNumber=k + 1,
                    SeriesDescription=desc, ImagePositionPatient=ipp, ImageOrientationPatient=list(iop),
                    PixelSpacing=[0.8, 0.8], SliceThickness=3.0, StudyDate="20200101",
                    RescaleSlope=float(slopes[k]) if slopes is not None else 1.5, RescaleIntercept=-20.0, EchoTime=echo)
        meta.update(meta_of(k) if meta_of is not None else {})
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
                    series=rule, frames=frames, percentiles=percentiles())
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


def test_a_damaged_gzip_wrapped_dicom_is_a_problem_naming_the_file(twin, tmp_path):
    """A .dcm.gz cut short or with a flipped bit: the gzip CRC-32 and length are checked, never a
    silent skip or other pixels."""
    files, _ = twin
    dicom = tmp_path / "gzbad" / "dicom" / "s"
    dicom.mkdir(parents=True)
    for f in files:
        (dicom / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
    cut, flipped = sorted(dicom.iterdir())[:2]
    data = cut.read_bytes()
    cut.write_bytes(data[:len(data) * 3 // 4])
    data = flipped.read_bytes()
    flipped.write_bytes(data[:-6] + bytes([data[-6] ^ 1]) + data[-5:])  # a bit of the stored CRC-32
    text = "\n".join(dicom_scan.scan(dicom.parent).problems)
    assert f"{cut}: truncated gzip stream" in text, text
    assert f"{flipped}: CRC mismatch" in text, text


@pytest.mark.parametrize("syntax, uid", [("jpeg_baseline", "1.2.840.10008.1.2.4.50"),
                                         ("jpeg2000_lossy", "1.2.840.10008.1.2.4.91")])
def test_lossy_syntax_is_close_to_its_twin(syntax, uid, tmp_path, monkeypatch):
    """Lossy encodings: the store stays within 0.03 of the uncompressed twin's (a [0, 1] store; a
    smooth slice at JPEG quality 95 / JPEG 2000 at 80 dB), mean error under 0.005. Baseline JPEG
    holds 8-bit samples, so its twin is an 8-bit copy of the slice; Pillow encodes it and pylibjpeg
    (libjpeg) decodes it, so that two JPEG libraries are involved, not one with itself."""
    decoder = pydicom.pixels.get_decoder(uid)
    monkeypatch.setattr(decoder, "_available", {"pylibjpeg": decoder._available["pylibjpeg"]})
    assert decoder.available_plugins == ("pylibjpeg",)
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
        (s,) = dicom_scan.scan_series(d).values()
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
    with pytest.raises(IngestError, match=r"temporal_position 5 but the series has 2 temporal positions \[1, 2\]"):
        ingest_dir(d, tmp_path / "t5", frames=FrameRule(temporal_position=5))


def test_classic_and_enhanced_copies_of_one_series_are_not_mixed(twin, tmp_path):
    files, ref = twin
    d = tmp_path / "both" / "dicom"
    shutil.copytree(files[0].parent, d / "classic")
    (d / "enh").mkdir()
    enhanced_from_classic([{"path": f} for f in files], d / "enh" / "enhanced.dcm")
    scan = dicom_scan.scan(d)
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
    t2 = write_series(d / "Doe^Jane" / "T2", desc="AX T2 FSE", meta_of=lambda k: {"SeriesNumber": 3})
    write_series(d / "Doe^Jane" / "T1", desc="AX T1 SE", offset=3, meta_of=lambda k: {"SeriesNumber": 2})
    loc = short_uid()
    for k, iop in enumerate(([1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1])):
        write_series(d / "Doe^Jane" / "LOC", n=1, uid=loc, desc="localizer", iop=iop, z0=0,
                     meta_of=lambda k: {"SeriesNumber": 1})
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
    for cand in ("'Doe^Jane/LOC' (series 1 of 20200101, 'localizer', mixed, 3 slices)",
                 "'Doe^Jane/T1' (series 2 of 20200101, 'AX T1 SE', axial, 5 slices)",
                 "'Doe^Jane/T2' (series 3 of 20200101, 'AX T2 FSE', axial, 5 slices)"):
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
    series = {(s.orientation_label, len(s.slices)): s for s in dicom_scan.scan_series(d).values()}
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
               series=series_rule(), percentiles=percentiles())
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
                 salt="test-salt", series=rule, percentiles=percentiles())
    decoded = []
    real = dicom_io.read_slices
    monkeypatch.setattr(dicom_io, "read_slices", lambda s: decoded.append(len(s)) or real(s))
    check = check_cohort(cohort / "dicom", cohort / "labels.csv", cohort / "masks", classes=CLASSES, salt="test-salt",
                         series=rule)
    assert decoded == [] and check.problems == []
    plan = tmp_path / "private" / "plan.json"
    write_check(check, tmp_path / "check.csv", tmp_path / "check.json", plan)
    via_plan = store_paths(tmp_path / "via_plan")
    report = ingest_plan(plan, via_plan, classes=CLASSES, field=32, percentiles=percentiles())
    assert sum(decoded) == report["n_slices"] == ref["n_slices"]
    for k in ("images", "masks", "manifest"):
        assert via_plan[k].read_bytes() == paths[k].read_bytes(), k
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["labelled_slices"] == ref["n_slices"] and summary["problems"] == 0




# ---------------------------------------------------------------- more syntaxes: pydicom's bundled files

def placed(name: str, dst: Path, pid: str = "PAT-1") -> Path:
    """A copy of one of pydicom's bundled test files (secondary captures without patient geometry)
    with MR geometry and identifiers added; pixel data and transfer syntax untouched."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = dicom_io.MR_IMAGE_STORAGE
    ds.PatientID, ds.SeriesInstanceUID, ds.InstanceNumber = pid, short_uid(), 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1]
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


# Reference decodes from pydicom's own pixel tests (tests/pixels/pixels_reference.py of pydicom 3.0):
# (file, transfer syntax, {(row, col): stored value}).
BUNDLED_REFERENCE = [
    ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51", {(420, 140): 244, (230, 120): 95}),
    ("JPEGLSNearLossless_16.dcm", "1.2.840.10008.1.2.4.81",
     {(0, 0): 65535, (5, 0): 32765, (10, 0): 16385, (15, 0): 4095, (20, 0): 1025, (25, 0): 255, (30, 0): 65,
      (35, 0): 15, (40, 0): 5}),
    ("JPEGLSNearLossless_08.dcm", "1.2.840.10008.1.2.4.81",
     {(0, 0): 255, (5, 0): 125, (10, 0): 65, (15, 0): 30, (20, 0): 15, (25, 0): 5, (30, 0): 5, (35, 0): 0}),
]


@pytest.mark.parametrize("name, uid, reference", BUNDLED_REFERENCE, ids=[r[0] for r in BUNDLED_REFERENCE])
def test_jpeg_extended_and_jpeg_ls_near_lossless_decode_to_the_reference(name, uid, reference, tmp_path):
    """JPEG extended (12-bit, 4.51) and JPEG-LS near-lossless (4.81): no encoder here, so pydicom's
    bundled files, read by our scan and decode path and compared with pydicom's reference values."""
    f = placed(name, tmp_path / "dicom" / "s" / "1.dcm")
    (s,) = dicom_scan.scan_series(tmp_path / "dicom").values()
    assert pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID == uid
    (arr,) = dicom_io.read_slices(s.slices)
    assert {rc: arr[rc] for rc in reference} == reference  # no rescale in these files: modality = stored
    _, store = ingest_dir(tmp_path / "dicom", tmp_path / "store", field=64)
    assert store.shape == (1, 64, 64) and np.ptp(store) > 0.5


def test_a_bundled_jpeg_that_no_decoder_reads_is_an_error_naming_it(tmp_path):
    """pydicom's JPEG-lossy.dcm (4.51, a scan stop value libjpeg rejects; Pillow has no 12-bit JPEG):
    its header passes the preflight, ingest stops with the file named."""
    f = placed("JPEG-lossy.dcm", tmp_path / "dicom" / "s" / "lossy.dcm")
    labels = every_slice_labels(tmp_path / "l.csv", ["PAT-1"])
    assert check_cohort(tmp_path / "dicom", labels, None, classes=CLASSES, salt="s", series=ANY).problems == []
    with pytest.raises(IngestError, match=rf"{f}: could not decode pixel data"):
        ingest_dir(tmp_path / "dicom", tmp_path / "store")


def test_files_without_preamble_are_read_like_their_twin(twin, tmp_path):
    """Extension-less IM0001... files: Part 10 files without preamble and "DICM" (starting with the file
    meta), and bare data sets without file meta (implicit VR, as old exports write them). A text file
    named alike stays junk."""
    files, ref = twin
    for kind in ("no_preamble", "bare"):
        d = tmp_path / kind / "dicom" / "s"
        d.mkdir(parents=True)
        for k, f in enumerate(files):
            out = d / f"IM{k + 1:04d}"
            if kind == "no_preamble":
                out.write_bytes(f.read_bytes()[132:])  # starts with the file meta group (0002)
            else:
                ds = pydicom.dcmread(f)
                del ds.file_meta
                ds.preamble = None
                pydicom.dcmwrite(out, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
            assert out.read_bytes()[128:132] != b"DICM"
        (d / "IM0099").write_text("operator notes\n")
        scan = dicom_scan.scan(d.parent)
        assert scan.skipped_counts() == {"not_dicom": 1} and scan.problems == []
        report, store = ingest_dir(d.parent, tmp_path / f"{kind}_store")
        np.testing.assert_array_equal(store, ref)


# ---------------------------------------------------------------- bad header values

def test_bad_header_values_are_problems_that_name_the_file(twin, tmp_path, monkeypatch):
    """Header values that cannot place a slice never crash the preflight: each is a problem naming
    its file, listed with the cohort's other problems."""
    files, _ = twin
    d = tmp_path / "bad" / "dicom"
    expect = {}
    for pid, (edit, fragment) in {
        "P-IOP": (lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 1]),
                  "ImageOrientationPatient has 5 values (1, 0, 0, 0, 1), expected 6"),
        "P-PS": (lambda ds: setattr(ds, "PixelSpacing", 0.8), "PixelSpacing has 1 value (0.8), expected 2"),
        "P-IPP": (lambda ds: ds.add_new(0x00200032, "LO", "a\\b\\c"), "ImagePositionPatient is not numeric"),
        "P-ROWS": (lambda ds: setattr(ds, "Rows", 0), "Rows is missing or not a positive whole number"),
        "P-NORM": (lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 1, 0, 0]),
                   "ImageOrientationPatient [1.0, 0.0, 0.0, 1.0, 0.0, 0.0] is not two orthogonal unit vectors"),
    }.items():
        write_series(d / pid, pid=pid)
        victim = sorted((d / pid).iterdir())[1]
        ds = pydicom.dcmread(victim)
        monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.IGNORE)
        edit(ds)
        ds.save_as(victim, enforce_file_format=True)
        expect[pid] = f"{victim}: {fragment}"
    enh = d / "P-ENH"
    enh.mkdir()
    enhanced_from_classic([{"path": f} for f in files], enh / "enhanced.dcm")
    ds = pydicom.dcmread(enh / "enhanced.dcm")
    del ds.Rows
    ds.PatientID = "P-ENH"
    ds.save_as(enh / "enhanced.dcm", enforce_file_format=True)
    expect["P-ENH"] = f"{enh / 'enhanced.dcm'}: Rows is missing"
    write_series(d / "P-OK", pid="P-OK")
    labels = every_slice_labels(tmp_path / "l.csv", [*expect, "P-OK"])
    check = check_cohort(d, labels, None, classes=CLASSES, salt="s", series=ANY)
    texts = [str(p) for p in check.problems]
    assert len(texts) == len(expect), texts
    for pid, fragment in expect.items():
        assert sum(t.startswith(fragment) for t in texts) == 1, (pid, fragment, texts)
    assert [p.patient_id for p in check.plans] == ["P-OK"]


def test_an_unforeseen_header_error_is_still_a_problem_naming_the_file(twin, tmp_path, monkeypatch):
    files, _ = twin

    def boom(path, *args):
        raise KeyError("something new")

    monkeypatch.setattr(dicom_header, "_classify", boom)
    scan = dicom_scan.scan(files[0].parent)
    assert sorted(scan.problems) == sorted(f"{f}: unusable header (KeyError: 'something new')" for f in files)


# ---------------------------------------------------------------- rescale per frame

def test_enhanced_frames_are_in_modality_units_with_their_own_intercept(tmp_path):
    """read_slices in modality units (no percentile window to hide an offset): each frame's slope
    AND intercept, as the classic twin's files and a hand computation give them."""
    slopes, intercepts = [1.5, 2.0, 0.5, 1.0, 3.0], [-20.0, 100.0, 0.0, -1000.0, 7.5]
    files = write_series(tmp_path / "classic" / "s", slopes=slopes,
                         meta_of=lambda k: {"RescaleIntercept": intercepts[k]})
    (tmp_path / "enh").mkdir()
    enhanced_from_classic([{"path": f} for f in files[::-1]], tmp_path / "enh" / "e.dcm")
    (classic,) = dicom_scan.scan_series(tmp_path / "classic").values()
    (enh,) = dicom_scan.scan_series(tmp_path / "enh").values()
    got, want = dicom_io.read_slices(enh.slices), dicom_io.read_slices(classic.slices)
    for k, (a, b) in enumerate(zip(got, want)):
        by_hand = smooth_slice(k).astype(np.float64) * slopes[k] + intercepts[k]
        np.testing.assert_array_equal(b, by_hand.astype(np.float32))
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- frame selection

def test_temporal_position_and_b_value_leave_a_series_without_that_dimension_alone(twin, tmp_path):
    """A static series whose files all say TemporalPositionIdentifier 1 (and b-value 0) keeps every
    slice whatever cohort.frames asks for: the rule applies only where the dimension varies."""
    files, ref = twin
    d = tmp_path / "static" / "dicom" / "s"
    d.mkdir(parents=True)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.TemporalPositionIdentifier, ds.DiffusionBValue = 1, 0
        ds.save_as(d / f.name, enforce_file_format=True)
    _, store = ingest_dir(d.parent, tmp_path / "t2", frames=FrameRule(temporal_position=2, b_value=1000))
    np.testing.assert_array_equal(store, ref)


def test_b_value_picks_diffusion_frames(tmp_path):
    """Two b-values at each position, as enhanced frames (MRDiffusionSequence) and as classic files
    (DiffusionBValue): an error naming the selectable dimensions unless cohort.frames.b_value picks one."""
    b0 = write_series(tmp_path / "b0" / "dicom" / "s", slopes=[1.0] * 5)
    b1000 = write_series(tmp_path / "b1000" / "dicom" / "s", slopes=[1.0] * 5, offset=7)
    refs = {b: ingest_dir(src[0].parent.parent, tmp_path / f"ref{b}")[1] for b, src in ((0, b0), (1000, b1000))}
    enh = tmp_path / "enh" / "dicom"
    enh.mkdir(parents=True)
    enhanced_from_classic([{"path": f, "b_value": b} for pair in zip(b0, b1000) for f, b in zip(pair, (0, 1000))],
                          enh / "dwi.dcm")
    classic = tmp_path / "classic" / "dicom" / "s"
    uid = short_uid()
    write_series(classic, uid=uid, slopes=[1.0] * 5, prefix="a", meta_of=lambda k: {"DiffusionBValue": 0})
    write_series(classic, uid=uid, slopes=[1.0] * 5, offset=7, prefix="b",
                 meta_of=lambda k: {"DiffusionBValue": 1000, "SOPInstanceUID": f"{uid}.{k + 50}"})
    for d in (enh, classic.parent):
        with pytest.raises(IngestError, match=r"duplicate slice.*cohort\.frames keeps one by echo, temporal_position, "
                                              r"b_value"):
            ingest_dir(d, tmp_path / "default")
        for b in (0, 1000):
            _, store = ingest_dir(d, tmp_path / f"{d.parent.name}_b{b}", frames=FrameRule(b_value=b))
            np.testing.assert_array_equal(store, refs[b])
        with pytest.raises(IngestError, match=r"cohort\.frames\.b_value 500 but the series has 2 b-values \[0, 1000\]"):
            ingest_dir(d, tmp_path / "b500", frames=FrameRule(b_value=500))


# ---------------------------------------------------------------- spacing within a series

def test_a_slice_with_another_pixel_spacing_is_a_problem_naming_it(tmp_path):
    files = write_series(tmp_path / "dicom" / "s", meta_of=lambda k: {"PixelSpacing": [0.9, 0.9]} if k == 3 else {})
    scan = dicom_scan.scan(tmp_path / "dicom")
    (s,) = scan.series.values()
    first = sorted(files)[0]  # the first slice the scan read
    assert s.problems == [f"{files[3]}: PixelSpacing [0.9, 0.9] differs from [0.8, 0.8] of {first} in the same series"]


def test_a_gap_in_the_slice_positions_is_a_warning_naming_the_slice_after_it(tmp_path, caplog):
    """Positions 5, 9, 17, 21: the slice at 17 follows a gap (13 is missing). Reported, not fatal."""
    files = write_series(tmp_path / "dicom" / "s", n=4, positions=[5, 9, 17, 21])
    caplog.set_level(logging.WARNING, logger="anapart")
    labels = every_slice_labels(tmp_path / "l.csv", ["PAT-1"])
    check = check_cohort(tmp_path / "dicom", labels, None, classes=CLASSES, salt="s", series=ANY)
    log_check(check)
    assert check.problems == [] and len(check.plans) == 1
    assert [str(w) for w in check.warnings] == [f"{files[2]}: 8 mm from the previous slice, 2.0 times the slice "
                                                "spacing of 4 mm (a missing slice?)"]
    assert check.summary["warnings"] == 1 and check.summary["warnings_by_kind"] == {"slice_gap": 1}
    assert check.table["warnings"].tolist() == [1]
    assert f"{files[2]}: 8 mm from the previous slice" in caplog.text


def test_duplicate_positions_are_found_through_rounding_and_thin_slices_are_not(tmp_path):
    """Two echoes whose positions differ by DS rounding (2e-4 mm) share a position; 0.5-mm slices do not."""
    uid = short_uid()
    d = tmp_path / "dicom" / "s"
    write_series(d, uid=uid, prefix="a", echo=12.0)
    write_series(d, uid=uid, prefix="b", echo=80.0, z0=2e-4, meta_of=lambda k: {"SOPInstanceUID": f"{uid}.{k + 50}"})
    (s,) = dicom_scan.scan(tmp_path / "dicom").series.values()
    assert len(s.problems) == 1 and "same slice position" in s.problems[0] and "5 in all" in s.problems[0]
    thin = tmp_path / "thin" / "s"
    write_series(thin, n=8, step=0.5)
    (s,) = dicom_scan.scan(thin.parent).series.values()
    assert s.problems == [] and s.warnings == [] and s.slice_spacing() == pytest.approx(0.5)


# ---------------------------------------------------------------- unused series, localizers, split enhanced series

def test_problems_of_series_that_are_not_used_are_warnings(three_series, tmp_path, caplog):
    """A truncated file in the T1 series does not stop a cohort that uses T2, but is counted and logged."""
    d, ref = three_series
    victim = sorted((d / "Doe^Jane" / "T1").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-300])
    rule = SeriesRule("T2", "axial", 5)
    caplog.set_level(logging.WARNING, logger="anapart")
    labels = every_slice_labels(tmp_path / "l.csv", ["PAT-1"])
    check = check_cohort(d, labels, None, classes=CLASSES, salt="s", series=rule)
    log_check(check)
    assert check.problems == []
    assert [str(w) for w in check.warnings] == [f"{victim}: pixel data are truncated (4180 of 4480 bytes) "
                                                "(in series 'AX T1 SE', which is not used)"]
    assert check.summary["warnings_by_kind"] == {"unused_series_problem": 1} and check.table["warnings"].tolist() == [1]
    out = tmp_path / "results" / "cohort"
    write_check(check, out / "check.csv", out / "check.json")
    assert json.loads((out / "check.json").read_text())["warnings"] == 1
    assert "which is not used" in caplog.text and "1 warning" in caplog.text
    _, store = ingest_dir(d, tmp_path / "t2", rule=rule)
    np.testing.assert_array_equal(store, ref)
    # the T1 is the one chosen: now the same file is a problem
    with pytest.raises(IngestError, match=rf"{victim.name}: pixel data are truncated"):
        ingest_dir(d, tmp_path / "t1", rule=SeriesRule("T1", "axial", 5))


def test_a_series_marked_localizer_never_matches(tmp_path):
    d = tmp_path / "dicom"
    write_series(d / "loc", desc="AX T2 scout", meta_of=lambda k: {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]})
    write_series(d / "t2", desc="AX T2")
    series = {s.folder.name: s for s in dicom_scan.scan_series(d).values()}
    assert series["loc"].localizer and not series["t2"].localizer
    assert select_series(list(series.values()), SeriesRule("T2", "axial", 5)) == [series["t2"]]
    with pytest.raises(IngestError, match=r"no series matches .*'loc' \(series \? of 20200101, 'AX T2 scout', "
                                          r"axial, 5 slices, localizer\)"):
        ingest_dir(d, tmp_path / "out", rule=SeriesRule("scout", "any", 1))


def test_frame_numbers_of_a_series_split_over_enhanced_files_are_a_clear_problem(twin, tmp_path):
    files, _ = twin
    d = tmp_path / "split" / "dicom"
    d.mkdir(parents=True)
    enhanced_from_classic([{"path": f} for f in files[:3]], d / "part1.dcm")
    enhanced_from_classic([{"path": f} for f in files[3:]], d / "part2.dcm")
    labels = tmp_path / "l.csv"
    pd.DataFrame({"patient_id": ["PAT-1"], "instance": [2], "label": ["NPC"]}).to_csv(labels, index=False)
    check = check_cohort(d, labels, None, classes=CLASSES, salt="s", series=ANY)
    assert len(check.problems) == 2 and all("split over several enhanced files" in str(p) for p in check.problems)
    # labelling every slice (blank instance) works
    _, store = ingest_dir(d, tmp_path / "all")
    assert store.shape[0] == 5


# ---------------------------------------------------------------- cost of the header scan

def test_the_header_scan_skips_large_elements_without_reading_them(twin, tmp_path):
    """A raw-data object with a 48 MB private element beside the slices: scanning the folder
    allocates a small fraction of that (only HEADER_TAGS are read; the rest is skipped by seeking)."""
    import tracemalloc

    files, _ = twin
    d = tmp_path / "big" / "dicom"
    shutil.copytree(files[0].parent, d / "s")
    raw = non_image("raw", "PAT-1")
    raw.add_new(0x00190010, "LO", "ACME RAW")
    raw.add_new(0x00191001, "OB", bytes(48 * 2**20))
    raw.save_as(d / "s" / "RAW0001", enforce_file_format=True)
    tracemalloc.start()
    scan = dicom_scan.scan(d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert scan.skipped_counts() == {"raw_data": 1} and len(scan.series) == 1
    assert peak < 8 * 2**20, peak
