"""DICOM as hospitals hand it over, built for tests from our own classic slices: one slice in many
transfer syntaxes (pydicom's encoders, SimpleITK/GDCM's JPEG lossless, Pillow's baseline JPEG, and
a process-14 lossless JPEG writer here for the predictors other encoders at hand do not offer),
enhanced (multi-frame) MR with functional groups, and a PACS-style export folder (DICOMDIR written
by pydicom.fileset, several series per patient, a structured report, a README)."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import (JPEG2000, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLossless, RLELossless,
                         generate_uid)

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"  # grayscale softcopy presentation state
RAW_DATA = "1.2.840.10008.5.1.4.1.1.66"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _as(ds: Dataset, path: Path, ts) -> None:
    ds.file_meta.TransferSyntaxUID = ts
    ds.save_as(path, enforce_file_format=True)


def _big_endian(ds: Dataset, path: Path) -> None:
    """pydicom does not byte-swap pixel data itself: swap, then write big endian."""
    arr = ds.pixel_array
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    dcmwrite(path, ds, implicit_vr=False, little_endian=False, enforce_file_format=True)


def _pydicom_encoder(ts):
    def write(ds: Dataset, path: Path) -> None:
        ds.compress(ts)
        ds.save_as(path, enforce_file_format=True)

    return write


def _jpeg_lossless_gdcm(ds: Dataset, path: Path) -> None:
    """JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) from GDCM's encoder (SimpleITK), put in our header."""
    arr = ds.pixel_array
    tmp = path.with_name(path.name + ".gdcm.dcm")
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(tmp))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(sitk.GetImageFromArray(arr[None]))
    enc = pydicom.dcmread(tmp)
    tmp.unlink()
    assert enc.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70", enc.file_meta.TransferSyntaxUID
    ds.file_meta.TransferSyntaxUID = enc.file_meta.TransferSyntaxUID
    ds.PixelData = enc.PixelData
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def _jpeg_baseline_pillow(ds: Dataset, path: Path, quality: int = 95) -> None:
    """Lossy baseline JPEG (8-bit) by Pillow's libjpeg; the source must be 8-bit."""
    from PIL import Image

    assert ds.BitsAllocated == 8, "baseline JPEG holds 8-bit samples: write an 8-bit twin first"
    buf = io.BytesIO()
    Image.fromarray(ds.pixel_array.astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def lossless_jpeg(arr: np.ndarray, predictor: int) -> bytes:
    """A JPEG lossless (process 14, ITU T.81 annex H) codestream of a 16-bit greyscale slice with
    selection value ``predictor`` (1-7), point transform 0, one Huffman table in which all 17
    difference categories have 5-bit codes. Slow (a Python loop) but small slices only."""
    x = arr.astype(np.int64)
    rows, cols = x.shape
    bits: list[int] = []

    def put(value: int, n: int) -> None:
        bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    for r in range(rows):
        for c in range(cols):
            ra = x[r, c - 1] if c else 0
            rb = x[r - 1, c] if r else 0
            rc = x[r - 1, c - 1] if r and c else 0
            if r == 0:
                pred = ra if c else 1 << 15
            elif c == 0:
                pred = rb
            else:
                pred = (ra, rb, rc, ra + rb - rc, ra + ((rb - rc) >> 1), rb + ((ra - rc) >> 1),
                        (ra + rb) >> 1)[predictor - 1]
            diff = int(x[r, c] - pred) % 65536
            diff = diff - 65536 if diff > 32768 else diff
            ssss = 16 if diff == 32768 else abs(diff).bit_length()
            put(ssss, 5)  # canonical codes: category k has the 5-bit code k
            if 0 < ssss < 16:
                put(diff if diff > 0 else diff + (1 << ssss) - 1, ssss)
    bits.extend([1] * (-len(bits) % 8))
    data = bytearray()
    for byte in np.packbits(np.array(bits, np.uint8)).tolist():
        data += b"\xff\x00" if byte == 0xFF else bytes([byte])
    u16 = lambda v: int(v).to_bytes(2, "big")  # noqa: E731
    sof = b"\xff\xc3" + u16(11) + bytes([16]) + u16(rows) + u16(cols) + bytes([1, 1, 0x11, 0])
    dht = b"\xff\xc4" + u16(3 + 16 + 17) + bytes([0x00]) + bytes([0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    sos = b"\xff\xda" + u16(8) + bytes([1, 1, 0x00, predictor, 0, 0x00])
    return b"\xff\xd8" + sof + dht + sos + bytes(data) + b"\xff\xd9"


def _jpeg_lossless_p14(predictor: int):
    """JPEG Lossless process 14 (1.2.840.10008.1.2.4.57), any selection value: :func:`lossless_jpeg`."""

    def write(ds: Dataset, path: Path) -> None:
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
        ds.PixelData = encapsulate([lossless_jpeg(ds.pixel_array, predictor)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLossless
        ds.save_as(path, enforce_file_format=True)

    return write


LOSSLESS = {
    "explicit_little": lambda ds, p: _as(ds, p, ExplicitVRLittleEndian),
    "implicit_little": lambda ds, p: _as(ds, p, ImplicitVRLittleEndian),
    "deflated": lambda ds, p: _as(ds, p, DeflatedExplicitVRLittleEndian),
    "explicit_big": _big_endian,
    "rle": _pydicom_encoder(RLELossless),
    "jpeg2000_lossless": _pydicom_encoder(JPEG2000Lossless),
    "jpeg_lossless_sv1": _jpeg_lossless_gdcm,
    "jpeg_lossless_p14_sv4": _jpeg_lossless_p14(4),
    "jpeg_lossless_p14_sv7": _jpeg_lossless_p14(7),
}


def _jpeg2000_lossy(ds: Dataset, path: Path) -> None:
    """Lossy JPEG 2000 (1.2.840.10008.1.2.4.91) by pydicom's OpenJPEG encoder, 80 dB PSNR (of the 16-bit range)."""
    ds.compress(JPEG2000, j2k_psnr=[80])
    ds.save_as(path, enforce_file_format=True)


LOSSY = {"jpeg_baseline": _jpeg_baseline_pillow, "jpeg2000_lossy": _jpeg2000_lossy}


def write_variant(src: Path, dst: Path, syntax: str) -> None:
    """``src`` (a classic slice) re-encoded in ``syntax`` (a key of LOSSLESS or LOSSY)."""
    ds = pydicom.dcmread(src)
    (LOSSLESS | LOSSY)[syntax](ds, Path(dst))


def write_8bit(src: Path, dst: Path, lo: int, hi: int) -> None:
    """An uncompressed 8-bit copy of a slice (stored values mapped from [lo, hi]): baseline JPEG's twin."""
    ds = pydicom.dcmread(src)
    arr = np.clip(np.round((ds.pixel_array.astype(np.float64) - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB"
    ds.save_as(dst, enforce_file_format=True)


def copy_series(files: list[Path], dst_dir: Path, syntax: str, suffix: str = ".dcm") -> list[Path]:
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        out.append(dst_dir / (f.stem + suffix))
        write_variant(f, out[-1], syntax)
    return out


# --------------------------------------------------------------------------- enhanced MR

def new_object(sop_class: str) -> Dataset:
    """An empty DICOM object of ``sop_class`` with file meta (explicit VR little endian) and a fresh UID."""
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = generate_uid()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, fm.MediaStorageSOPInstanceUID
    return ds


def _item(**kw) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def enhanced_from_classic(frames: list[dict], dst: Path, *, series_uid: str | None = None, compress=None,
                          drop: str | None = None) -> Path:
    """One Enhanced MR Image Storage file whose frames are classic slices.

    ``frames``: one dict per frame, in file order: ``path`` (a classic slice whose pixels, position
    and rescale the frame takes) and optionally ``echo`` (EffectiveEchoTime), ``temporal``
    (TemporalPositionIndex) and ``b_value`` (DiffusionBValue). Orientation and pixel spacing go to
    the shared functional groups, position, rescale, echo, time point and b-value to each frame's.
    ``drop`` removes one functional group from the first frame (a broken file).
    """
    srcs = [pydicom.dcmread(f["path"]) for f in frames]
    first = srcs[0]
    ds = new_object(ENHANCED_MR)
    for k in ("PatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "SeriesDescription",
              "SeriesNumber"):
        if k in first:
            setattr(ds, k, first.data_element(k).value)
    ds.SeriesInstanceUID = series_uid or first.SeriesInstanceUID
    ds.Modality, ds.InstanceNumber, ds.ImageType = "MR", 1, ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = first.Rows, first.Columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.NumberOfFrames = len(frames)
    ds.SharedFunctionalGroupsSequence = Sequence([_item(
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=list(first.ImageOrientationPatient))]),
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=list(first.PixelSpacing),
                                              SliceThickness=first.get("SliceThickness", 1.0))]),
    )])
    per = []
    for k, (f, src) in enumerate(zip(frames, srcs)):
        item = _item(
            PlanePositionSequence=Sequence([_item(ImagePositionPatient=list(src.ImagePositionPatient))]),
            PixelValueTransformationSequence=Sequence([_item(RescaleSlope=src.get("RescaleSlope", 1),
                                                             RescaleIntercept=src.get("RescaleIntercept", 0),
                                                             RescaleType="US")]),
            FrameContentSequence=Sequence([_item(InStackPositionNumber=k + 1,
                                                 **({"TemporalPositionIndex": f["temporal"]}
                                                    if f.get("temporal") is not None else {}))]),
        )
        if f.get("echo") is not None:
            item.MREchoSequence = Sequence([_item(EffectiveEchoTime=float(f["echo"]))])
        if f.get("b_value") is not None:
            item.MRDiffusionSequence = Sequence([_item(DiffusionBValue=float(f["b_value"]),
                                                       DiffusionDirectionality="ISOTROPIC")])
        if drop and k == 0:
            delattr(item, drop)
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack([s.pixel_array.astype(np.uint16) for s in srcs]).tobytes()
    ds["PixelData"].VR = "OW"
    if compress is not None:
        ds.compress(compress)
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


# --------------------------------------------------------------------------- export folders

def non_image(kind: str, patient_id: str = "", path: Path | None = None) -> Dataset:
    """A small non-image DICOM object of an export (SR, presentation state, raw data) or a screen capture."""
    ds = new_object({"sr": BASIC_TEXT_SR, "pr": GSPS, "raw": RAW_DATA, "screen": SECONDARY_CAPTURE}[kind])
    ds.PatientID, ds.SeriesInstanceUID, ds.Modality = patient_id, generate_uid(), {"sr": "SR", "pr": "PR"}.get(kind, "OT")
    if kind == "screen":  # a screen capture: pixels but no patient geometry
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 8, 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = bytes(64)
    if path is not None:
        ds.save_as(path, enforce_file_format=True)
    return ds


LOCALIZER_PLANES = {  # ImageOrientationPatient of a 3-plane localizer
    "axial": [1, 0, 0, 0, 1, 0],
    "sagittal": [0, 1, 0, 0, 0, -1],
    "coronal": [1, 0, 0, 0, 0, -1],
}


def pacs_export(dicom_dir: Path, out: Path, *, t2_syntax: str = "jpeg2000_lossless") -> dict:
    """A PACS/CD export of a cohort of one classic T2 series per patient: per patient a 3-slice
    localizer of mixed orientations, an axial T1 (uncompressed), the T2 in ``t2_syntax`` and a
    structured report, all under a DICOMDIR (pydicom.fileset: PT*/ST*/SE*/IM* files without
    extension), plus a README.txt. Returns counts of what was written."""
    fs = FileSet()
    staged = out.parent / (out.name + ".staging")
    staged.mkdir(parents=True)
    n = {"t2": 0, "t1": 0, "localizer": 0, "sr": 0}
    sr_template = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    for folder in sorted(p for p in dicom_dir.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.dcm"))
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
        common = dict(PatientID=first.PatientID, PatientName=first.PatientName, StudyInstanceUID=first.StudyInstanceUID,
                      StudyDate=first.get("StudyDate", "20200101"), StudyTime="120000", StudyID="1",
                      AccessionNumber="")
        t1_uid = generate_uid()
        for f in files:
            t2 = staged / f"{folder.name}_{f.stem}_t2.dcm"
            write_variant(f, t2, t2_syntax)
            ds = pydicom.dcmread(t2)
            for k, v in common.items():
                setattr(ds, k, v)
            ds.save_as(t2, enforce_file_format=True)
            fs.add(t2)
            t1 = pydicom.dcmread(f)
            for k, v in common.items():
                setattr(t1, k, v)
            t1.SeriesInstanceUID, t1.SeriesDescription, t1.SeriesNumber = t1_uid, "AX T1 SE", 2
            t1.SOPInstanceUID = t1.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            t1.PixelData = (65535 - t1.pixel_array).astype(np.uint16).tobytes()
            fs.add(_saved(t1, staged / f"{folder.name}_{f.stem}_t1.dcm"))
            n["t2"] += 1
            n["t1"] += 1
        loc_uid = generate_uid()
        for k, (plane, iop) in enumerate(LOCALIZER_PLANES.items()):
            loc = pydicom.dcmread(files[0])
            for key, v in common.items():
                setattr(loc, key, v)
            loc.SeriesInstanceUID, loc.SeriesDescription, loc.SeriesNumber, loc.InstanceNumber = \
                loc_uid, "3-plane localizer", 1, k + 1
            loc.SOPInstanceUID = loc.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            loc.ImageOrientationPatient = iop
            fs.add(_saved(loc, staged / f"{folder.name}_loc{k}.dcm"))
            n["localizer"] += 1
        sr = copy.deepcopy(sr_template)
        for k, v in common.items():
            setattr(sr, k, v)
        sr.SeriesInstanceUID, sr.SeriesNumber = generate_uid(), 99
        sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        fs.add(_saved(sr, staged / f"{folder.name}_sr.dcm"))
        n["sr"] += 1
    out.mkdir(parents=True)
    fs.write(out)
    (out / "README.txt").write_text("Exported by PACS. Open with the viewer on this disc.\n")
    for p in staged.iterdir():
        p.unlink()
    staged.rmdir()
    return n


def _saved(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
