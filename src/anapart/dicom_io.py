"""The one DICOM reader and writer of anapart (pydicom for files, SimpleITK for mask geometry).

Reading is split in two so that a cohort can be checked and then streamed: :func:`scan` reads
headers only (it classifies every file of an export folder, groups images into series and records
every problem it can see without decoding), then :func:`read_slices` decodes one series at a time.

What a folder as hospitals export it may hold, and what happens to it:

- classic single-frame images (any transfer syntax pydicom decodes with its plugins: uncompressed
  little/big endian, implicit, deflated, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000,
  HTJ2K), optionally gzip-wrapped (``.dcm.gz``), with or without the 128-byte preamble (old
  exports write bare data sets, often as extension-less ``IM0001``): one slice per file;
- enhanced (multi-frame) images (Enhanced MR, Legacy Converted Enhanced MR): one slice per frame,
  its geometry and rescale from the per-frame or shared functional groups;
- skipped and counted (:data:`SKIP_KINDS`): DICOMDIR, non-image objects (SR, key objects,
  presentation states, raw data, encapsulated PDFs, waveforms, spectroscopy, RT objects, …),
  images without patient geometry (screen captures), colour images, classic copies of a series
  that is also present as an enhanced file, and files that are not DICOM at all;
- problems (never silently skipped; each names its file): a file named like DICOM that is not, an
  unreadable header, header values that cannot place the slice (an orientation without 6 values, a
  pixel spacing without 2, no Rows, ...), an image whose pixel data are truncated or in a syntax
  without decoder, an MR image without geometry; inside a series: slices of another size or pixel
  spacing, mixed orientations, slices sharing a position;
- warnings (reported, not fatal): a gap in the slice positions (a missing slice).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.4"
MR_CLASSES = {MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE, LEGACY_ENHANCED_MR_IMAGE_STORAGE}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

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

SKIP_KINDS = {
    "not_dicom": "not a DICOM file (text, PDF, NIfTI, pictures, ...)",
    "dicomdir": "DICOMDIR (media directory of the export)",
    "key_object": "key object selection document",
    "structured_report": "structured report",
    "presentation_state": "presentation state",
    "raw_data": "raw data object",
    "registration_or_segmentation": "registration, fiducials or segmentation object",
    "encapsulated_document": "encapsulated document (PDF, CDA, ...)",
    "waveform": "waveform",
    "spectroscopy": "MR spectroscopy",
    "radiotherapy_object": "radiotherapy object",
    "private_non_image": "private non-image object",
    "no_pixel_data": "other DICOM object without pixel data",
    "no_geometry": "image without patient geometry (e.g. a screen capture)",
    "colour_image": "colour image (e.g. a colour map or screen capture)",
    "classic_copy": "classic copy of a series also present as an enhanced (multi-frame) file",
}

# A file with one of these names must be DICOM: if it is not, that is a problem, not junk.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dcm.gz", ".dicom.gz")
ORIENTATIONS = ("sagittal", "coronal", "axial")  # by the dominant axis (x, y, z) of the slice normal
# Slices closer than this share a position: 1% of the series' slice spacing (DS rounding of
# positions is far below it), and at least MIN_STEP_MM (a series all at one position).
DUPLICATE_FRACTION = 0.01
MIN_STEP_MM = 1e-3
GAP_FACTOR = 1.5  # a step this many slice spacings long is a gap (a missing slice): a warning
_GZIP_MAGIC = b"\x1f\x8b"
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), little endian


class DicomError(ValueError):
    """Bad DICOM input; the message always starts with the offending file or folder."""


@dataclass(frozen=True)
class SliceHeader:
    path: Path
    instance: int  # InstanceNumber; for a frame of a multi-frame file its frame number (1-based)
    position: float  # along the slice normal, mm
    rows: int
    cols: int
    ipp: tuple[float, float, float]
    frame: int | None = None  # 0-based frame of a multi-frame file; None: a single-frame file
    rescale: tuple[float, float] | None = None  # (slope, intercept) of a frame; single frames read their own
    echo_time: float | None = None
    temporal: int | None = None  # TemporalPositionIndex (frames) or TemporalPositionIdentifier
    b_value: float | None = None  # DiffusionBValue (MRDiffusionSequence of frames), s/mm2


@dataclass
class Series:
    """One DICOM series, slices sorted by position along the normal (ascending)."""

    folder: Path
    patient_id: str
    series_uid: str
    slices: list[SliceHeader]
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) in mm
    slice_thickness: float
    orientation: tuple[float, ...]  # ImageOrientationPatient (row cosines, column cosines)
    origin: tuple[float, float, float]  # ImagePositionPatient of the first sorted slice
    description: str = ""  # SeriesDescription: tells a T1 post-contrast series from a T2 one
    orientation_label: str = ""  # axial | sagittal | coronal | mixed (a localizer) | unknown (no slice placed)
    enhanced: bool = False  # slices are frames of multi-frame (enhanced) files
    transfer_syntax: str = ""
    n_files: int = 0
    n_images: int = 0  # slices the files hold (frames counted), before frame selection: what min_slices sees
    problems: list[str] = field(default_factory=list)  # each names a file; the series must not be used
    mixed: str = ""  # why the orientation is mixed: normal for a localizer, a problem for a series to use
    warnings: list[str] = field(default_factory=list)  # each names a file; worth a look, not fatal (gaps)
    series_number: str = ""  # SeriesNumber and StudyDate: how a user finds a candidate series in a viewer
    study_date: str = ""
    localizer: bool = False  # ImageType says LOCALIZER: never matches a series rule
    scanner: str = ""  # manufacturer, model, field strength (scanner_name)

    @property
    def problems_as_used(self) -> list[str]:
        """What keeps this series from being used: its problems, and mixed orientations (normal for a
        localizer, which is never used; fatal for a series to ingest)."""
        return self.problems + ([self.mixed] if self.mixed else [])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.slices), self.slices[0].rows, self.slices[0].cols)

    def reference_image(self) -> sitk.Image:
        """An empty SimpleITK image on this series' voxel grid, for aligning masks."""
        return reference_image(self.shape, self.pixel_spacing, self.slice_spacing(), self.orientation, self.origin)

    def slice_spacing(self) -> float:
        if len(self.slices) < 2:
            return self.slice_thickness or 1.0
        return float(np.median(np.diff([s.position for s in self.slices])))

    def to_dict(self) -> dict:
        """JSON-able form, for the private ingest plan (under private/, never results/): it holds the
        PatientID, SeriesInstanceUID, study date and every slice's file path."""
        d = {k: v for k, v in asdict(self).items() if k != "slices"}
        d["folder"] = str(self.folder)
        d["slices"] = [{**asdict(h), "path": str(h.path)} for h in self.slices]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Series":
        def header(h: dict) -> SliceHeader:
            rescale = tuple(h["rescale"]) if h.get("rescale") is not None else None
            return SliceHeader(**{**h, "path": Path(h["path"]), "ipp": tuple(h["ipp"]), "rescale": rescale})

        kw = {k: v for k, v in d.items() if k != "slices"}
        kw.update(folder=Path(d["folder"]), pixel_spacing=tuple(d["pixel_spacing"]),
                  orientation=tuple(d["orientation"]), origin=tuple(d["origin"]))
        return cls(slices=[header(h) for h in d["slices"]], **kw)


# The dimensions cohort.frames can select on: config key -> (SliceHeader attribute, plural for messages).
FRAME_DIMENSIONS = {"echo": ("echo_time", "echo times"), "temporal_position": ("temporal", "temporal positions"),
                    "b_value": ("b_value", "b-values")}


@dataclass(frozen=True)
class FrameRule:
    """Which slices to keep where a series holds several at one position (echoes, time points, b-values).

    ``echo``: None (keep all), ``"first"``/``"last"`` (shortest/longest echo time of the series) or
    n (the n-th shortest echo time, 1-based). ``temporal_position``: None or the TemporalPositionIndex
    (frames) / TemporalPositionIdentifier (single-frame files) to keep. ``b_value``: None or the
    DiffusionBValue to keep (s/mm2). Each applies only to series with more than one value of its
    dimension; slices still sharing a position afterwards (e.g. diffusion directions) are a problem.
    """

    echo: str | int | None = None
    temporal_position: int | None = None
    b_value: float | None = None

    @classmethod
    def from_config(cls, d: dict | None) -> "FrameRule":
        d = d or {}
        return cls(**{k: d.get(k) for k in FRAME_DIMENSIONS})

    def _wanted(self, key: str, values: list):
        """The value of dimension ``key`` to keep among the series' sorted ``values`` (None: not there)."""
        want = getattr(self, key)
        if key == "echo" and want in ("first", "last"):
            return values[0] if want == "first" else values[-1]
        if key == "echo":
            return values[int(want) - 1] if int(want) <= len(values) else None
        return float(want) if float(want) in values else None

    def apply(self, headers: list[SliceHeader]) -> tuple[list[SliceHeader], str | None]:
        """The kept slices, and a problem text if the rule selects nothing."""
        for key, (attr, plural) in FRAME_DIMENSIONS.items():
            if getattr(self, key) is None:
                continue
            values = sorted({getattr(h, attr) for h in headers if getattr(h, attr) is not None})
            if len(values) < 2:  # the series does not vary along this dimension: nothing to choose
                continue
            keep = self._wanted(key, values)
            if keep is None:
                shown = [int(v) if float(v).is_integer() else v for v in values]
                return [], f"cohort.frames.{key} {getattr(self, key)} but the series has {len(values)} {plural} {shown}"
            headers = [h for h in headers if getattr(h, attr) is not None and float(getattr(h, attr)) == keep]
        return headers, None


def slice_normal(orientation: Iterable[float]) -> np.ndarray:
    r0, r1, r2, c0, c1, c2 = (float(v) for v in orientation)  # plain floats: np.cross costs ms per call
    return np.array([r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0])


def orientation_label(orientation: Iterable[float]) -> str:
    """axial, coronal or sagittal: the patient axis closest to the slice normal (tilted stacks included)."""
    return ORIENTATIONS[int(np.argmax(np.abs(slice_normal(orientation))))]


def reference_image(shape, pixel_spacing, slice_spacing, orientation, origin) -> sitk.Image:
    """SimpleITK image geometry of a DICOM stack (z, rows, cols), slices ascending along the normal."""
    nz, ny, nx = shape
    o = np.asarray(orientation, dtype=float)
    normal = slice_normal(o)
    img = sitk.Image(int(nx), int(ny), int(nz), sitk.sitkUInt8)
    img.SetSpacing((float(pixel_spacing[1]), float(pixel_spacing[0]), float(abs(slice_spacing) or 1.0)))
    img.SetOrigin(tuple(float(v) for v in origin))
    # SimpleITK direction: row-major 3x3 whose columns are the x, y, z axis directions.
    direction = np.column_stack([o[:3], o[3:], normal])
    img.SetDirection(tuple(float(v) for v in direction.ravel()))
    return img


# --------------------------------------------------------------------------- one file

def _is_hidden(part: str) -> bool:
    return part.startswith(".")


def _named_dicom(path: Path) -> bool:
    return path.name.lower().endswith(DICOM_SUFFIXES)


def _looks_like_dicom(head: bytes) -> bool:
    """"DICM" at byte 128 (a Part 10 file), or a data element of group 0002-0020 at byte 0 (a data set
    written without the preamble: elements are sorted, and SOPClassUID (0008,0016) or
    SeriesInstanceUID (0020,000E) come early). Text, PDF, NIfTI and pictures start otherwise."""
    if head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    return any(0x0002 <= int.from_bytes(head[:2], order) <= 0x0020 for order in ("little", "big"))


def _open(path: Path, sniff: bool = False):
    """A binary file object of the DICOM stream of ``path``: the file, or its gunzipped bytes (``.dcm.gz``).

    With ``sniff``: None where the bytes do not start like DICOM (:func:`_looks_like_dicom`), so that
    a ``.nii.gz`` or a PDF is not read further.
    """
    fh = open(path, "rb")
    head = fh.read(132)
    if head[:2] != _GZIP_MAGIC:
        if sniff and not _looks_like_dicom(head):
            fh.close()
            return None
        fh.seek(0)
        return fh
    fh.close()
    try:
        with gzip.open(path, "rb") as gz:
            head = gz.read(132)
            if sniff and not _looks_like_dicom(head):
                return None
            return io.BytesIO(head + gz.read())
    except (OSError, EOFError, zlib.error):
        if sniff:
            return None
        raise


def _transfer_syntax(ds: Dataset):
    """The data set's transfer syntax: its file meta's, or for a bare data set (no file meta) the
    uncompressed encoding pydicom found when reading it."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is not None:
        return ts
    encoding = getattr(ds, "original_encoding", (None, None))
    if encoding[0] is None:
        return None
    implicit, little = encoding
    return ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


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


def _number(v, default=None):
    try:
        return float(v) if v is not None and v != "" else default
    except (TypeError, ValueError):
        return default


def _int_or_none(v) -> int | None:
    n = _number(v)
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
    value = _number(ds.get(keyword))
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
    return ipp, iop, spacing, float(_number(meas.get("SliceThickness"), 0.0))


def _fg_item(groups: Sequence[Dataset | None], name: str) -> Dataset | None:
    """The first item of functional-group sequence ``name``: per-frame group first, then shared."""
    for g in groups:
        if g is not None and name in g and len(g[name].value):
            return g[name].value[0]
    return None


@dataclass
class _Image:
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
    stream = _open(path, sniff=True)
    if stream is None:
        return None
    pixel_problem = None
    with stream as fh:
        part10 = fh.read(132)[128:132] == b"DICM"
        fh.seek(0)
        ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True, specific_tags=_HEADER_TAG_NUMBERS)
        if not part10 and "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
            return None  # bytes that only started like a bare data set
        ts = _transfer_syntax(ds)
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


def _inspect(path: Path) -> tuple[str, object]:
    """Classify one file: ("skip", (kind, PatientID)) | ("problem", text) | ("image", _Image).

    Nothing raises: every way a file can fail becomes a problem that names it.
    """
    if path.name.upper() == "DICOMDIR":
        return "skip", ("dicomdir", "")
    try:
        header = _read_header(path)
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
    if int(_number(ds.get("SamplesPerPixel"), 1)) != 1:
        return "skip", ("colour_image", patient)
    uid = str(ds.get("SeriesInstanceUID", ""))
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    missing = [k for k in _REQUIRED if k not in ds or ds[k].value in (None, "")]
    if not enhanced and missing and not is_mr:
        return "skip", ("no_geometry", patient)
    if not uid:
        return "problem", f"{path}: image without SeriesInstanceUID"
    problems, slices = [], []
    n_frames = int(_number(ds.get("NumberOfFrames"), 1) or 1)
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
            header = SliceHeader(path, _int_or_none(ds.get("InstanceNumber")) or 0, position, rows, cols, ipp, echo_time=_number(ds.get("EchoTime")),
                                 temporal=_int_or_none(ds.get("TemporalPositionIdentifier")),
                                 b_value=_number(ds.get("DiffusionBValue")))
            slices = [(header, iop, spacing, thick)]
    if ts is not None and ts.is_compressed and not _decoder_available(ts):
        problems.append(f"{path}: pixel data is compressed ({ts.name}, {ts}) and no decoder for it is installed; "
                        "install one (e.g. pylibjpeg with its plugins, or python-gdcm) or decompress the series")
    if pixel_problem:
        problems.append(f"{path}: {pixel_problem}")
    image_type = ds.get("ImageType") or []
    image_type = [str(v).upper() for v in (image_type if isinstance(image_type, (list, MultiValue)) else [image_type])]
    return "image", _Image(path, uid, patient, str(ds.get("SeriesDescription", "") or ""),
                           str(ts.name) if ts is not None else "", enhanced, n_frames, slices, problems,
                           str(ds.get("SeriesNumber", "") or ""), str(ds.get("StudyDate", "") or ""),
                           "LOCALIZER" in image_type, scanner_name(ds))


def scanner_name(ds: Dataset) -> str:
    """Manufacturer, model and field strength (e.g. "SIEMENS Skyra 3 T"): which scanner, for the
    reporting checklist; empty where the header does not say."""
    parts = [str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")]
    tesla = _number(ds.get("MagneticFieldStrength"))
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
    top_slope = _number(ds.get("RescaleSlope"), 1.0)
    top_intercept = _number(ds.get("RescaleIntercept"), 0.0)
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
        slope = _number(pvt.get("RescaleSlope"), 1.0) if pvt is not None else top_slope
        intercept = _number(pvt.get("RescaleIntercept"), 0.0) if pvt is not None else top_intercept
        echo, content, diffusion = (_fg_item(groups, s) or Dataset() for s in ("MREchoSequence", "FrameContentSequence",
                                                                                "MRDiffusionSequence"))
        header = SliceHeader(path, k + 1, float(np.dot(ipp, slice_normal(iop))), rows, cols, ipp, frame=k,
                             rescale=(float(slope or 1.0), float(intercept or 0.0)),
                             echo_time=_number(echo.get("EffectiveEchoTime")),
                             temporal=_int_or_none(content.get("TemporalPositionIndex")),
                             b_value=_number(diffusion.get("DiffusionBValue")))
        out.append((header, iop, spacing, thick))
    return out, problems


# --------------------------------------------------------------------------- a folder

@dataclass
class Scan:
    """Everything one header pass over a folder found."""

    root: Path
    series: dict[str, Series]  # by SeriesInstanceUID
    skipped: list[tuple[Path, str]]  # (file, kind of SKIP_KINDS)
    problems: list[str]  # file problems not tied to a series (unreadable files); each names the file
    n_files: int = 0
    seconds: float = 0.0
    skipped_by_patient: dict[str, int] = field(default_factory=dict)  # DICOM objects skipped, per PatientID

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, kind in self.skipped:
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))

    def all_problems(self) -> list[str]:
        return self.problems + [p for s in self.series.values() for p in s.problems]


def list_files(root: Path) -> list[Path]:
    """Every non-hidden file below ``root``, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not any(_is_hidden(q) for q in p.relative_to(root).parts))


def scan(root: str | os.PathLike, frames: FrameRule | None = None) -> Scan:
    """Read every header below ``root`` once; classify files, group images into series, record problems.

    Slices are sorted by position along the slice normal, never by file name or InstanceNumber.
    Nothing is raised for bad input below ``root``: problems are collected (see :func:`scan_series`
    for the strict form).
    """
    t0 = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise DicomError(f"{root}: DICOM folder does not exist")
    files = list_files(root)
    if not files:
        raise DicomError(f"{root}: no files found")
    skipped, problems, images = [], [], {}
    skipped_by_patient: dict[str, int] = {}
    for path in files:
        what, info = _inspect(path)
        if what == "skip":
            kind, patient = info
            skipped.append((path, kind))
            if patient:
                skipped_by_patient[patient] = skipped_by_patient.get(patient, 0) + 1
        elif what == "problem":
            problems.append(info)
        else:
            images.setdefault(info.series_uid, []).append(info)
    series = {}
    for uid, items in images.items():
        if any(i.enhanced for i in items) and not all(i.enhanced for i in items):
            # Classic and enhanced copies of one series: the enhanced file (one consistent object) wins.
            for i in items:
                if not i.enhanced:
                    skipped.append((i.path, "classic_copy"))
                    skipped_by_patient[i.patient_id] = skipped_by_patient.get(i.patient_id, 0) + 1
            items = [i for i in items if i.enhanced]
        series[uid] = _assemble(uid, items, frames or FrameRule())
    return Scan(root, series, sorted(skipped), problems, len(files), time.perf_counter() - t0, skipped_by_patient)


def _where(h: SliceHeader) -> str:
    """A slice as messages name it: its file, and the frame for a multi-frame file."""
    return f"{h.path} frame {h.frame + 1}" if h.frame is not None else str(h.path)


def _spacing_findings(headers: list[SliceHeader]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of slices sorted along the normal: slices sharing a position (closer than
    DUPLICATE_FRACTION of the slice spacing) are a problem, a step over GAP_FACTOR spacings a warning."""
    if len(headers) < 2:
        return [], []
    steps = np.diff([h.position for h in headers])
    moving = steps[steps > MIN_STEP_MM]
    spacing = float(np.median(moving)) if moving.size else 0.0
    dups = np.flatnonzero(steps < max(MIN_STEP_MM, DUPLICATE_FRACTION * spacing))
    if dups.size:
        a, b = headers[dups[0]], headers[dups[0] + 1]
        other = f"frame {a.frame + 1}" if a.path == b.path and a.frame is not None else _where(a)
        dims = ", ".join(FRAME_DIMENSIONS)
        return [f"{_where(b)}: same slice position as {other} (duplicate slice in series; {dups.size} in all; "
                f"several echoes, time points or b-values? cohort.frames keeps one by {dims}; other repeats, "
                "e.g. diffusion directions, cannot be selected: use another series)"], []
    gaps = np.flatnonzero(steps > GAP_FACTOR * spacing)
    return [], [f"{_where(headers[i + 1])}: {steps[i]:.3g} mm from the previous slice, {steps[i] / spacing:.1f} "
                f"times the slice spacing of {spacing:.3g} mm (a missing slice?)" for i in gaps]


def _assemble(uid: str, items: list[_Image], frames: FrameRule) -> Series:
    """One series from its files: consistency checks, frame selection, sorting along the normal."""
    first = items[0]
    problems = [p for i in items for p in i.problems]
    records = [r for i in items for r in i.slices]
    n_images = sum(len(i.slices) or i.n_frames for i in items)
    about = dict(description=first.description, enhanced=first.enhanced, transfer_syntax=first.transfer_syntax,
                 n_files=len(items), n_images=n_images, series_number=first.series_number,
                 study_date=first.study_date, localizer=any(i.localizer for i in items), scanner=first.scanner)
    if not records:  # no frame could be placed; the files' problems say why
        return Series(first.path.parent, first.patient_id, uid, [], (1.0, 1.0), 0.0, (1, 0, 0, 0, 1, 0),
                      (0.0, 0.0, 0.0), orientation_label="unknown",
                      problems=problems or [f"{first.path}: no slice in the series"], **about)
    header0, iop0, spacing0, thick0 = records[0]
    label, mixed = orientation_label(iop0), ""
    headers = []
    for h, iop, spacing, _ in records:
        if (h.rows, h.cols) != (header0.rows, header0.cols):
            problems.append(f"{_where(h)}: slice size {h.rows}x{h.cols} differs from {header0.rows}x{header0.cols} "
                            f"of {_where(header0)} in the same series")
            continue
        if not np.allclose(spacing, spacing0, rtol=1e-3, atol=1e-4):
            problems.append(f"{_where(h)}: PixelSpacing {list(spacing)} differs from {list(spacing0)} of "
                            f"{_where(header0)} in the same series")
            continue
        if not mixed and not np.allclose(iop, iop0, atol=1e-3):
            label = "mixed"
            mixed = f"{_where(h)}: ImageOrientationPatient differs from {_where(header0)} in the same series"
        headers.append(h)
    headers, frame_problem = frames.apply(headers)
    if frame_problem:
        problems.append(f"{first.path}: {frame_problem}")
    headers.sort(key=lambda h: h.position)
    warnings = []
    if label != "mixed":
        found, warnings = _spacing_findings(headers)
        problems += found
    if not headers and not problems:
        problems.append(f"{first.path}: no slice left in the series")
    return Series(folder=first.path.parent, patient_id=first.patient_id, series_uid=uid, slices=headers,
                  pixel_spacing=spacing0, slice_thickness=thick0, orientation=tuple(iop0),
                  origin=headers[0].ipp if headers else (0.0, 0.0, 0.0), orientation_label=label,
                  problems=problems, mixed=mixed, warnings=warnings, **about)


def scan_series(root: str | os.PathLike, frames: FrameRule | None = None) -> dict[str, Series]:
    """Strict :func:`scan` (the same pass): every readable image series below ``root``; the first
    problem is raised. Skipped files (DICOMDIR, non-image objects, non-DICOM files) are ignored."""
    result = scan(root, frames)
    problems = result.problems + [p for s in result.series.values() for p in s.problems_as_used]
    if problems:
        raise DicomError(problems[0])
    return result.series


# --------------------------------------------------------------------------- pixels

def _modality(raw: np.ndarray, slope: float, intercept: float, ds: Dataset) -> np.ndarray:
    """Stored values -> float32 modality units (rescale applied), MONOCHROME1 inverted."""
    out = raw.astype(np.float32)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept != 0.0:
        out += np.float32(intercept)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        bits = int(ds.get("BitsStored", 16))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        vmin, vmax = sorted((lo * slope + intercept, hi * slope + intercept))
        out = np.float32(vmin + vmax) - out
    return out


def _read_dataset(path: Path) -> Dataset:
    """The whole data set (pixel data included); a bare data set (no file meta) gets the transfer
    syntax pydicom found when reading it, which decoding needs."""
    try:
        with _open(path) as fh:
            ds = pydicom.dcmread(fh, force=True)
    except Exception as e:
        raise DicomError(f"{path}: could not read DICOM file ({type(e).__name__}: {e})") from e
    if "PixelData" not in ds:
        raise DicomError(f"{path}: has no pixel data")
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = _transfer_syntax(ds)
    return ds


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """Decode one single-frame slice to float32 in modality units (rescale applied), MONOCHROME1 inverted."""
    path = Path(path)
    ds = _read_dataset(path)
    try:
        raw = ds.pixel_array
    except Exception as e:
        raise DicomError(f"{path}: could not decode pixel data ({type(e).__name__}: {e})") from e
    if raw.ndim != 2:
        raise DicomError(f"{path}: expected a single-frame greyscale slice, got pixel array of shape {raw.shape}")
    return _modality(raw, _number(ds.get("RescaleSlope"), 1.0) or 1.0, _number(ds.get("RescaleIntercept"), 0.0), ds)


def read_frames(path: str | os.PathLike, headers: Sequence[SliceHeader]) -> list[np.ndarray]:
    """Decode the given frames of one multi-frame file (each with its own rescale), in ``headers`` order."""
    path = Path(path)
    ds = _read_dataset(path)
    wanted = sorted({h.frame for h in headers})
    try:
        decoded = dict(zip(wanted, pydicom.pixels.iter_pixels(ds, indices=wanted)))
    except Exception as e:
        raise DicomError(f"{path}: could not decode pixel data ({type(e).__name__}: {e})") from e
    out = []
    for h in headers:
        raw = decoded[h.frame]
        if raw.ndim != 2:
            raise DicomError(f"{path}: frame {h.frame + 1} is not a greyscale slice (shape {raw.shape})")
        out.append(_modality(raw, h.rescale[0], h.rescale[1], ds))
    return out


def read_slices(slices: Sequence[SliceHeader]) -> list[np.ndarray]:
    """Decode slices (single-frame files and frames of multi-frame files), each file read once."""
    out: list[np.ndarray | None] = [None] * len(slices)
    by_file: dict[Path, list[int]] = {}
    for i, h in enumerate(slices):
        if h.frame is None:
            out[i] = read_pixels(h.path)
        else:
            by_file.setdefault(h.path, []).append(i)
    for path, idx in by_file.items():
        for i, arr in zip(idx, read_frames(path, [slices[i] for i in idx])):
            out[i] = arr
    return out


# --------------------------------------------------------------------------- masks

def _geometry_problem(path: Path, size, spacing, origin, direction, series: Series) -> str | None:
    ref = series.reference_image()
    if tuple(size) != ref.GetSize():
        return f"{path}: mask size {tuple(size)} does not match series size {ref.GetSize()} (x, y, z)"
    spacing_ok = np.allclose(spacing, ref.GetSpacing(), rtol=1e-3, atol=1e-3)
    origin_tol = 0.5 * min(ref.GetSpacing())
    origin_ok = np.allclose(origin, ref.GetOrigin(), atol=origin_tol)
    direction_ok = np.allclose(direction, ref.GetDirection(), atol=1e-3)
    if not (spacing_ok and origin_ok and direction_ok):
        return (f"{path}: mask geometry (origin {np.round(origin, 2)}, spacing {np.round(spacing, 3)}) "
                f"does not match series in {series.folder} (origin {np.round(ref.GetOrigin(), 2)}, "
                f"spacing {np.round(ref.GetSpacing(), 3)})")
    return None


def check_mask(path: str | os.PathLike, series: Series) -> str | None:
    """The problem with a mask file's geometry (read from its header only), or None if it is on the grid."""
    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as e:
        return f"{path}: could not read mask ({e})"
    return _geometry_problem(path, reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(),
                             series)


def read_mask(path: str | os.PathLike, series: Series, binary: bool = True) -> np.ndarray:
    """Read a NIfTI (or any SimpleITK-readable) label volume aligned to ``series``; returns (z, y, x) uint8.

    ``binary=False`` keeps the label values (e.g. 1 = tumour, 2 = lymph node).

    The mask must lie on the series' voxel grid, as ITK-SNAP writes it; anything else is an error
    rather than a silent resampling.
    """
    path = Path(path)
    try:
        img = sitk.ReadImage(str(path))
    except Exception as e:
        raise DicomError(f"{path}: could not read mask ({e})") from e
    problem = _geometry_problem(path, img.GetSize(), img.GetSpacing(), img.GetOrigin(), img.GetDirection(), series)
    if problem:
        raise DicomError(problem)
    arr = sitk.GetArrayFromImage(img)
    if binary:
        return (arr > 0).astype(np.uint8)
    if arr.min() < 0 or arr.max() > 255 or not np.all(np.mod(arr, 1) == 0):
        raise DicomError(f"{path}: label mask must hold whole numbers 0-255, found {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def write_mask(path: str | os.PathLike, volume: np.ndarray, ref: sitk.Image) -> None:
    """Write a (z, y, x) label volume on the grid of ``ref`` (as ITK-SNAP exports segmentations)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.uint8))
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(path), useCompression=True)


def write_slice(path: str | os.PathLike, stored: np.ndarray, meta: dict) -> None:
    """Write one uncompressed MR Image Storage slice.

    ``stored`` holds the stored (pre-rescale) uint16 values; ``meta`` carries the DICOM keywords
    to set (geometry, rescale, identifiers, UIDs).
    """
    stored = np.ascontiguousarray(stored, dtype=np.uint16)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    fm.MediaStorageSOPInstanceUID = meta["SOPInstanceUID"]
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.Modality = "MR"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = meta.get("PhotometricInterpretation", "MONOCHROME2")
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    for key, value in meta.items():
        if key != "PhotometricInterpretation":
            setattr(ds, key, value)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
