"""The one DICOM reader and writer of anapart (pydicom for files, SimpleITK for mask geometry).

Reading is split in two so that a cohort can be checked and then streamed: :func:`anapart.io.dicom_scan.scan`
reads headers only (:mod:`anapart.io.dicom_header` classifies each file), then :func:`read_slices` here
decodes one series at a time. This module holds what both halves share (the series model, slice
geometry, opening a possibly gzip-wrapped or preamble-less file) and every pixel decode, so there
is one decode path; masks (NIfTI on a series' grid) and the synthetic cohort's writers live here too.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian


MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.4"
MR_CLASSES = {MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE, LEGACY_ENHANCED_MR_IMAGE_STORAGE}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

ORIENTATIONS = ("sagittal", "coronal", "axial")  # by the dominant axis (x, y, z) of the slice normal
_GZIP_MAGIC = b"\x1f\x8b"


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


def _looks_like_dicom(head: bytes) -> bool:
    """"DICM" at byte 128 (a Part 10 file), or a data element of group 0002-0020 at byte 0 (a data set
    written without the preamble: elements are sorted, and SOPClassUID (0008,0016) or
    SeriesInstanceUID (0020,000E) come early). Text, PDF, NIfTI and pictures start otherwise."""
    if head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    return any(0x0002 <= int.from_bytes(head[:2], order) <= 0x0020 for order in ("little", "big"))


def open_stream(path: Path, sniff: bool = False):
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
    with gzip.open(path, "rb") as gz:
        try:
            head = gz.read(132)
        except (OSError, EOFError, zlib.error):
            if sniff:
                return None
            raise
        if sniff and not _looks_like_dicom(head):
            return None
        # a gzip that starts like DICOM is read to its end, its CRC-32 and length checked: a truncated
        # or corrupt stream raises (the header scan names it: anapart.io.integrity.gzip_error_message)
        return io.BytesIO(head + gz.read())


def transfer_syntax(ds: Dataset):
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


def number(v, default=None):
    try:
        return float(v) if v is not None and v != "" else default
    except (TypeError, ValueError):
        return default


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
        with open_stream(path) as fh:
            ds = pydicom.dcmread(fh, force=True)
    except Exception as e:
        raise DicomError(f"{path}: could not read DICOM file ({type(e).__name__}: {e})") from e
    if "PixelData" not in ds:
        raise DicomError(f"{path}: has no pixel data")
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = transfer_syntax(ds)
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
    return _modality(raw, number(ds.get("RescaleSlope"), 1.0) or 1.0, number(ds.get("RescaleIntercept"), 0.0), ds)


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
    """What differs between a mask's grid and its series' (only the fields that differ are named)."""
    ref = series.reference_image()
    origin_tol = 0.5 * min(ref.GetSpacing())
    checks = (  # (field, mask value, series value, equal?)
        ("size", size, ref.GetSize(), tuple(size) == ref.GetSize()),
        ("direction", direction, ref.GetDirection(), np.allclose(direction, ref.GetDirection(), atol=1e-3)),
        ("origin", origin, ref.GetOrigin(), np.allclose(origin, ref.GetOrigin(), atol=origin_tol)),
        ("spacing", spacing, ref.GetSpacing(), np.allclose(spacing, ref.GetSpacing(), rtol=1e-3, atol=1e-3)),
    )
    differ = [(name, m, r) for name, m, r, ok in checks if not ok]
    if not differ:
        return None
    what = "; ".join(f"{name} {format_values(m)} vs the series' {format_values(r)}" for name, m, r in differ)  # size first
    hint = (" (a flipped or permuted axis: the mask was written in another orientation than the series)"
            if "direction" in [d[0] for d in differ] else "")
    return f"{path}: mask {what}, off the grid of the series in {series.folder}{hint}"


def format_values(values) -> str:
    """(x, y, z) values to 3 significant digits; + 0.0 turns -0 into 0."""
    return "(" + ", ".join(f"{v + 0.0:.3g}" for v in values) + ")"


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
