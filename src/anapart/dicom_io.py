"""The one DICOM reader and writer of anapart (pydicom for files, SimpleITK for mask geometry).

Reading is split in two so that ingest can stream a cohort: :func:`scan_series` reads headers
only (cheap, validates everything that can be validated before decoding), then
:func:`read_pixels` decodes one slice at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

# Attributes a slice needs for us to place it in space and decode it.
_REQUIRED = ("Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient")


class DicomError(ValueError):
    """Bad DICOM input; the message always starts with the offending file or folder."""


@dataclass(frozen=True)
class SliceHeader:
    path: Path
    instance: int
    position: float  # along the slice normal, mm
    rows: int
    cols: int
    ipp: tuple[float, float, float]


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
    phi: dict[str, str] = field(default_factory=dict, repr=False)

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


def slice_normal(orientation: Iterable[float]) -> np.ndarray:
    o = np.asarray(list(orientation), dtype=float)
    return np.cross(o[:3], o[3:])


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


def _is_hidden(part: str) -> bool:
    return part.startswith(".")


def _read_header(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as e:
        raise DicomError(f"{path}: not a readable DICOM file ({e})") from e
    except Exception as e:  # truncated or corrupt files raise many kinds of errors
        raise DicomError(f"{path}: could not read DICOM header ({type(e).__name__}: {e})") from e
    missing = [k for k in _REQUIRED if k not in ds]
    if missing:
        sop = getattr(ds, "SOPClassUID", None)
        kind = f"SOP class {sop.name}" if sop is not None else "no SOP class"
        raise DicomError(f"{path}: not an image slice ({kind}; missing {', '.join(missing)})")
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is not None and ts.is_compressed:
        try:
            available = pydicom.pixels.get_decoder(ts).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise DicomError(
                f"{path}: pixel data is compressed ({ts.name}, {ts}) and no decoder for it is installed; "
                "install one (e.g. pylibjpeg with its plugins, or python-gdcm) or decompress the series"
            )
    return ds


def scan_series(root: str | os.PathLike) -> dict[str, Series]:
    """Read every DICOM header below ``root`` and group slices into series (keyed by SeriesInstanceUID).

    Hidden files are skipped; any other file must be a DICOM image slice. Slices are sorted by
    position along the slice normal, never by file name or InstanceNumber.
    """
    root = Path(root)
    if not root.is_dir():
        raise DicomError(f"{root}: DICOM folder does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(_is_hidden(q) for q in p.relative_to(root).parts))
    if not files:
        raise DicomError(f"{root}: no files found")
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in files:
        ds = _read_header(path)
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))

    series: dict[str, Series] = {}
    for uid, items in groups.items():
        first_path, first = items[0]
        orientation = tuple(float(v) for v in first.ImageOrientationPatient)
        normal = slice_normal(orientation)
        rows, cols = int(first.Rows), int(first.Columns)
        headers = []
        for path, ds in items:
            if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
                raise DicomError(
                    f"{path}: slice size {ds.Rows}x{ds.Columns} differs from {rows}x{cols} "
                    f"of {first_path} in the same series"
                )
            if not np.allclose([float(v) for v in ds.ImageOrientationPatient], orientation, atol=1e-3):
                raise DicomError(f"{path}: ImageOrientationPatient differs from {first_path} in the same series")
            ipp = tuple(float(v) for v in ds.ImagePositionPatient)
            pos = float(np.dot(ipp, normal))
            headers.append(SliceHeader(path, int(getattr(ds, "InstanceNumber", 0) or 0), pos, rows, cols, ipp))
        headers.sort(key=lambda h: h.position)
        for a, b in zip(headers, headers[1:]):
            if abs(a.position - b.position) < 1e-4:
                raise DicomError(f"{b.path}: same slice position as {a.path} (duplicate slice in series)")
        series[uid] = Series(
            folder=first_path.parent,
            patient_id=str(first.get("PatientID", "")),
            series_uid=uid,
            slices=headers,
            pixel_spacing=tuple(float(v) for v in first.PixelSpacing),
            slice_thickness=float(first.get("SliceThickness", 0) or 0),
            orientation=orientation,
            origin=headers[0].ipp,
            description=str(first.get("SeriesDescription", "") or ""),
            phi={
                k: str(first.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate") if first.get(k, "")
            },
        )
    return series


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """Decode one slice to float32 in modality units (rescale applied), MONOCHROME1 inverted."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        raise DicomError(f"{path}: could not read DICOM file ({type(e).__name__}: {e})") from e
    if "PixelData" not in ds:
        raise DicomError(f"{path}: has no pixel data")
    try:
        raw = ds.pixel_array
    except Exception as e:
        raise DicomError(f"{path}: could not decode pixel data ({type(e).__name__}: {e})") from e
    if raw.ndim != 2:
        raise DicomError(f"{path}: expected a single-frame greyscale slice, got pixel array of shape {raw.shape}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
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
    ref = series.reference_image()
    if img.GetSize() != ref.GetSize():
        raise DicomError(f"{path}: mask size {img.GetSize()} does not match series size {ref.GetSize()} (x, y, z)")
    spacing_ok = np.allclose(img.GetSpacing(), ref.GetSpacing(), rtol=1e-3, atol=1e-3)
    origin_tol = 0.5 * min(ref.GetSpacing())
    origin_ok = np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=origin_tol)
    direction_ok = np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-3)
    if not (spacing_ok and origin_ok and direction_ok):
        raise DicomError(
            f"{path}: mask geometry (origin {np.round(img.GetOrigin(), 2)}, spacing {np.round(img.GetSpacing(), 3)}) "
            f"does not match series in {series.folder} (origin {np.round(ref.GetOrigin(), 2)}, "
            f"spacing {np.round(ref.GetSpacing(), 3)})"
        )
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
