"""One file's header: what it is (image, skipped object, problem) and the slices it holds.

:func:`inspect_file` reads only :data:`HEADER_TAGS` of a file (seeking past everything else, pixel
data included) and classifies it; nothing raises: every way a file can fail becomes a problem that
names it. Enhanced (multi-frame) images give one slice per frame, from their functional groups.
:mod:`anapart.io.dicom_scan` groups the results of a folder into series.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from anapart.io.dicom import (MEDIA_STORAGE_DIRECTORY, MR_CLASSES, DicomError, SliceHeader, number, open_stream,
                              slice_normal, transfer_syntax)
from anapart.io.integrity import gzip_error_message

# Attributes a classic slice needs for us to place it in space and decode it.
_REQUIRED = ("Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient")
# The only top-level attributes the header scan reads: everything else (large private or raw-data
# elements included) is skipped by seeking, so a big non-image object costs no more than a slice.
HEADER_TAGS = ("SpecificCharacterSet", "ImageType", "SOPClassUID", "StudyDate", "Modality", "SeriesDescription",
               "PatientID", "SliceThickness", "EchoTime", "DiffusionBValue", "SeriesInstanceUID", "SeriesNumber",
               "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "TemporalPositionIdentifier",
               "SamplesPerPixel", "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "RescaleIntercept",
               "RescaleSlope", "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
               "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength")
_HEADER_TAG_NUMBERS = [pydicom.tag.Tag(k) for k in HEADER_TAGS]  # keywords cost a lookup per file

# Non-image objects of an export folder, by SOP class: (UID, or UID prefix ending in "."), kind.
# Exact UIDs are looked up before prefixes, so Key Object Selection is not reported as an SR.
NON_IMAGE_CLASSES = (
    (MEDIA_STORAGE_DIRECTORY, "dicomdir"),
    ("1.2.840.10008.5.1.4.1.1.88.59", "key_object"),
    ("1.2.840.10008.5.1.4.1.1.88.", "structured_report"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation_state"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw_data"),
    ("1.2.840.10008.5.1.4.1.1.66.", "registration_or_segmentation"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated_document"),
    ("1.2.840.10008.5.1.4.1.1.9.", "waveform"),
    ("1.2.840.10008.5.1.4.1.1.4.2", "spectroscopy"),
    ("1.2.840.10008.5.1.4.1.1.481.", "radiotherapy_object"),
    ("1.3.12.2.1107.5.9.1", "private_non_image"),  # Siemens CSA non-image (protocols, raw data)
)

# A file with one of these names must be DICOM: if it is not, that is a problem, not junk.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dcm.gz", ".dicom.gz")
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), little endian


def _named_dicom(path: Path) -> bool:
    return path.name.lower().endswith(DICOM_SUFFIXES)


def _non_image_kind(sop: str) -> str | None:
    for uid, kind in NON_IMAGE_CLASSES:
        if not uid.endswith(".") and sop == uid:
            return kind
    for uid, kind in NON_IMAGE_CLASSES:
        if uid.endswith(".") and sop.startswith(uid):
            return kind
    return None


_DECODER_AVAILABLE: dict[str, bool] = {}


def _decoder_available(ts) -> bool:
    key = str(ts)
    if key not in _DECODER_AVAILABLE:
        try:
            _DECODER_AVAILABLE[key] = pydicom.pixels.get_decoder(ts).is_available
        except NotImplementedError:
            _DECODER_AVAILABLE[key] = False
    return _DECODER_AVAILABLE[key]


def _pixel_data_problem(fh, ts) -> str | None:
    """Truncated pixel data, seen from the element header where the header read stopped (no decoding)."""
    start = fh.tell()
    end = fh.seek(0, os.SEEK_END)
    fh.seek(start)
    head = fh.read(12)
    if len(head) < 8:
        return "pixel data element is cut off"
    implicit = ts is not None and ts.is_implicit_VR
    big = ts is not None and not ts.is_little_endian
    order = ">" if big else "<"
    if implicit:
        length, offset = int(np.frombuffer(head[4:8], f"{order}u4")[0]), 8
    elif len(head) < 12:
        return "pixel data element is cut off"
    else:
        length, offset = int(np.frombuffer(head[8:12], f"{order}u4")[0]), 12
    if length == 0xFFFFFFFF:  # encapsulated (compressed) frames end with a sequence delimiter
        tail_start = max(start, end - 65536)
        fh.seek(tail_start)
        if _SEQ_DELIMITER not in fh.read():
            return "compressed pixel data are truncated (no sequence delimiter at the end of the file)"
        return None
    have = end - start - offset
    if have < length:
        return f"pixel data are truncated ({have} of {length} bytes)"
    return None


def _int_or_none(v) -> int | None:
    n = number(v)
    return int(n) if n is not None and math.isfinite(n) else None


def _numbers(item: Dataset, keyword: str, n: int, where: str) -> tuple[float, ...]:
    """The ``n`` numbers of ``keyword`` in ``item``; a DicomError that says what is wrong otherwise."""
    try:
        value = item.get(keyword)
    except Exception as e:  # a value pydicom cannot convert
        raise DicomError(f"{where}{keyword} is unreadable ({type(e).__name__}: {e})") from e
    if value is None or value == "":
        raise DicomError(f"{where}{keyword} is missing or empty")
    values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        nums = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise DicomError(f"{where}{keyword} is not numeric ({value})") from None
    if len(nums) != n:
        raise DicomError(f"{where}{keyword} has {len(nums)} value{'s' if len(nums) != 1 else ''} "
                         f"({', '.join(f'{v:g}' for v in nums)}), expected {n}")
    if not all(math.isfinite(v) for v in nums):
        raise DicomError(f"{where}{keyword} is not finite ({value})")
    return nums


def _count(ds: Dataset, keyword: str, where: str) -> int:
    """A positive whole number (Rows, Columns), or a DicomError."""
    value = number(ds.get(keyword))
    if value is None or not math.isfinite(value) or value < 1 or not value.is_integer():
        raise DicomError(f"{where}{keyword} is missing or not a positive whole number ({ds.get(keyword)})")
    return int(value)


def _placement(pos: Dataset, ori: Dataset, meas: Dataset, where: str):
    """(ipp, iop, pixel spacing, slice thickness) of a slice from the items that carry them; a
    DicomError naming the bad value if they cannot place it."""
    iop = _numbers(ori, "ImageOrientationPatient", 6, where)
    if abs(float(np.linalg.norm(slice_normal(iop))) - 1.0) > 0.01:
        raise DicomError(f"{where}ImageOrientationPatient {list(iop)} is not two orthogonal unit vectors")
    ipp = _numbers(pos, "ImagePositionPatient", 3, where)
    spacing = _numbers(meas, "PixelSpacing", 2, where)
    if min(spacing) <= 0:
        raise DicomError(f"{where}PixelSpacing {list(spacing)} is not positive")
    return ipp, iop, spacing, float(number(meas.get("SliceThickness"), 0.0))


def _fg_item(groups: Sequence[Dataset | None], name: str) -> Dataset | None:
    """The first item of functional-group sequence ``name``: per-frame group first, then shared."""
    for g in groups:
        if g is not None and name in g and len(g[name].value):
            return g[name].value[0]
    return None


@dataclass
class ImageFile:
    """What one image file contributes: its series, and one record per slice (frame)."""

    path: Path
    series_uid: str
    patient_id: str
    description: str
    transfer_syntax: str
    enhanced: bool
    n_frames: int
    slices: list[tuple[SliceHeader, tuple[float, ...], tuple[float, float], float]]  # header, iop, spacing, thick
    problems: list[str]
    series_number: str = ""
    study_date: str = ""
    localizer: bool = False
    scanner: str = ""


def _read_header(path: Path):
    """(data set without pixel data, transfer syntax, has pixel data, pixel data problem), or None
    where the file is not DICOM. Only :data:`HEADER_TAGS` are read; raises on an unreadable header."""
    stream = open_stream(path, sniff=True)
    if stream is None:
        return None
    pixel_problem = None
    with stream as fh:
        part10 = fh.read(132)[128:132] == b"DICM"
        fh.seek(0)
        ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True, specific_tags=_HEADER_TAG_NUMBERS)
        if not part10 and "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
            return None  # bytes that only started like a bare data set
        ts = transfer_syntax(ds)
        if ts is not None and ts.is_deflated:  # the stream position says nothing: read it all
            fh.seek(0)
            has_pixels = "PixelData" in pydicom.dcmread(fh, force=True, specific_tags=["PixelData"], defer_size=1024)
        else:  # the header read stopped at the pixel data element, if there is one
            stop = fh.tell()
            has_pixels = stop < fh.seek(0, os.SEEK_END)
            if has_pixels:
                fh.seek(stop)
                pixel_problem = _pixel_data_problem(fh, ts)
    return ds, ts, has_pixels, pixel_problem


def inspect_file(path: Path) -> tuple[str, object]:
    """Classify one file: ("skip", (kind, PatientID)) | ("problem", text) | ("image", ImageFile).

    Nothing raises: every way a file can fail becomes a problem that names it.
    """
    if path.name.upper() == "DICOMDIR":
        return "skip", ("dicomdir", "")
    try:
        header = _read_header(path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a .dcm.gz cut short or corrupt
        return "problem", gzip_error_message(path, e)
    except OSError as e:
        return "problem", f"{path}: could not read file ({e})"
    except Exception as e:  # truncated or corrupt headers raise many kinds of errors
        return "problem", f"{path}: could not read DICOM header ({type(e).__name__}: {e})"
    if header is None:
        if _named_dicom(path):
            return "problem", f"{path}: not a readable DICOM file (no DICOM preamble or data set)"
        return "skip", ("not_dicom", "")
    try:
        return _classify(path, *header)
    except DicomError as e:
        return "problem", f"{path}: {e}"
    except Exception as e:  # a header value of a kind we did not foresee: still a problem naming the file
        return "problem", f"{path}: unusable header ({type(e).__name__}: {e})"


def _classify(path: Path, ds: Dataset, ts, has_pixels: bool, pixel_problem: str | None) -> tuple[str, object]:
    meta = getattr(ds, "file_meta", None)
    sop = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else ""))
    patient = str(ds.get("PatientID", ""))
    kind = _non_image_kind(sop)
    if kind is not None:
        return "skip", (kind, patient)
    is_mr = sop in MR_CLASSES
    if not has_pixels and not is_mr:
        return "skip", ("no_pixel_data", patient)
    if int(number(ds.get("SamplesPerPixel"), 1)) != 1:
        return "skip", ("colour_image", patient)
    uid = str(ds.get("SeriesInstanceUID", ""))
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    missing = [k for k in _REQUIRED if k not in ds or ds[k].value in (None, "")]
    if not enhanced and missing and not is_mr:
        return "skip", ("no_geometry", patient)
    if not uid:
        return "problem", f"{path}: image without SeriesInstanceUID"
    problems, slices = [], []
    n_frames = int(number(ds.get("NumberOfFrames"), 1) or 1)
    if not has_pixels:  # an MR image object: what claims to be an image must be one
        problems.append(f"{path}: MR image without pixel data")
    elif enhanced:
        slices, problems = _frames(path, ds, n_frames)
    elif missing:
        sop_name = ds.SOPClassUID.name if "SOPClassUID" in ds else "no SOP class"
        problems.append(f"{path}: not an image slice (SOP class {sop_name}; missing {', '.join(missing)})")
    else:
        if n_frames > 1:
            problems.append(f"{path}: multi-frame image without functional groups (per-frame geometry); "
                            "convert it to single-frame files or enhanced MR")
        try:
            ipp, iop, spacing, thick = _placement(ds, ds, ds, "")
            rows, cols = _count(ds, "Rows", ""), _count(ds, "Columns", "")
        except DicomError as e:
            problems.append(f"{path}: {e}")
        else:
            position = float(np.dot(ipp, slice_normal(iop)))
            header = SliceHeader(path, _int_or_none(ds.get("InstanceNumber")) or 0, position, rows, cols, ipp, echo_time=number(ds.get("EchoTime")),
                                 temporal=_int_or_none(ds.get("TemporalPositionIdentifier")),
                                 b_value=number(ds.get("DiffusionBValue")))
            slices = [(header, iop, spacing, thick)]
    if ts is not None and ts.is_compressed and not _decoder_available(ts):
        problems.append(f"{path}: pixel data is compressed ({ts.name}, {ts}) and no decoder for it is installed; "
                        "install one (e.g. pylibjpeg with its plugins, or python-gdcm) or decompress the series")
    if pixel_problem:
        problems.append(f"{path}: {pixel_problem}")
    image_type = ds.get("ImageType") or []
    image_type = [str(v).upper() for v in (image_type if isinstance(image_type, (list, MultiValue)) else [image_type])]
    return "image", ImageFile(path, uid, patient, str(ds.get("SeriesDescription", "") or ""),
                           str(ts.name) if ts is not None else "", enhanced, n_frames, slices, problems,
                           str(ds.get("SeriesNumber", "") or ""), str(ds.get("StudyDate", "") or ""),
                           "LOCALIZER" in image_type, scanner_name(ds))


def scanner_name(ds: Dataset) -> str:
    """Manufacturer, model and field strength (e.g. "SIEMENS Skyra 3 T"): which scanner, for the
    reporting checklist; empty where the header does not say."""
    parts = [str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")]
    tesla = number(ds.get("MagneticFieldStrength"))
    if tesla:
        parts.append(f"{tesla:g} T")
    return " ".join(p for p in parts if p)


def _frames(path: Path, ds: Dataset, n: int):
    """One slice record per frame of an enhanced (multi-frame) image, from its functional groups."""
    shared = _fg_item([ds], "SharedFunctionalGroupsSequence") if "SharedFunctionalGroupsSequence" in ds else None
    per = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    problems = []
    if per and len(per) != n:
        problems.append(f"{path}: {len(per)} per-frame functional groups for {n} frames")
    try:
        rows, cols = _count(ds, "Rows", ""), _count(ds, "Columns", "")
    except DicomError as e:
        return [], problems + [f"{path}: {e}"]
    top_slope = number(ds.get("RescaleSlope"), 1.0)
    top_intercept = number(ds.get("RescaleIntercept"), 0.0)
    out = []
    for k in range(n):
        groups = [per[k] if k < len(per) else None, shared]
        pos, ori, meas = (_fg_item(groups, s) for s in ("PlanePositionSequence", "PlaneOrientationSequence",
                                                        "PixelMeasuresSequence"))
        missing = [name for name, item, key in (("PlanePositionSequence", pos, "ImagePositionPatient"),
                                                 ("PlaneOrientationSequence", ori, "ImageOrientationPatient"),
                                                 ("PixelMeasuresSequence", meas, "PixelSpacing"))
                   if item is None or key not in item]
        if missing:
            problems.append(f"{path}: frame {k + 1} has no {', '.join(missing)} in its functional groups")
            return [], problems
        try:
            ipp, iop, spacing, thick = _placement(pos, ori, meas, f"frame {k + 1}: ")
        except DicomError as e:
            return [], problems + [f"{path}: {e}"]
        pvt = _fg_item(groups, "PixelValueTransformationSequence")
        slope = number(pvt.get("RescaleSlope"), 1.0) if pvt is not None else top_slope
        intercept = number(pvt.get("RescaleIntercept"), 0.0) if pvt is not None else top_intercept
        echo, content, diffusion = (_fg_item(groups, s) or Dataset() for s in ("MREchoSequence", "FrameContentSequence",
                                                                                "MRDiffusionSequence"))
        header = SliceHeader(path, k + 1, float(np.dot(ipp, slice_normal(iop))), rows, cols, ipp, frame=k,
                             rescale=(float(slope or 1.0), float(intercept or 0.0)),
                             echo_time=number(echo.get("EffectiveEchoTime")),
                             temporal=_int_or_none(content.get("TemporalPositionIndex")),
                             b_value=number(diffusion.get("DiffusionBValue")))
        out.append((header, iop, spacing, thick))
    return out, problems
