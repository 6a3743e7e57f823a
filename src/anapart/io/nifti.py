"""NIfTI cohorts: one 3-D volume per patient, read as the same :class:`~anapart.io.dicom.Series` the
DICOM path gives, so the cohort check, the store and both studies run unchanged.

Two layouts (``cohort.nifti.layout``):

- ``folders``: ``<root>/<patient>/<image>`` (e.g. ``flair.nii.gz``) with the masks beside it
  (``cohort.mask_names``: ``{region: brain.nii.gz, lesion: lesion.nii.gz}``); the folder name is
  the PatientID.
- ``nnunet``: the nnU-Net raw layout, ``<root>/imagesTr/<case>_<channel>.nii.gz`` and
  ``<root>/labelsTr/<case>.nii.gz``; the case is the PatientID, ``cohort.nifti.labels`` maps label
  values to the region and the lesion (``{region: [1, 2], lesion: [2]}``).

Slices are the planes of the volume's third axis; a slice's ``instance`` (``labels.csv``) is its
1-based index along that axis in the file. Orientation comes from the affine (SimpleITK reads NIfTI's
RAS affine into DICOM's LPS frame): the volume is flipped (never resampled) into the index order of a
DICOM series -- in-plane axes along +L/+P, towards inferior for an axis along the head's long axis
(the top of the image is superior), an in-plane transpose undone, slices ascending along the normal
-- so a DICOM series and its NIfTI conversion (dcm2niix's or SimpleITK's) give the same store.
Oblique or non-orthogonal affines, 4-D volumes and non-finite voxels are problems, each naming its file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from anapart.io.dicom import Series, SliceHeader, format_values, orientation_label, slice_normal
from anapart.io.dicom_scan import Scan
from anapart.io.errors import IngestError
from anapart.io.integrity import gzip_problem

SUFFIXES = (".nii.gz", ".nii")
SOURCE = "nifti"  # Series.transfer_syntax of a NIfTI volume: how the store and mask readers tell it
AXIS_TOLERANCE = 1e-3  # |cosine| of an axis to its scanner axis below 1 - this (a tilt over 2.6 degrees): oblique


def is_nifti(path: str | Path) -> bool:
    return str(path).endswith(SUFFIXES)


@dataclass(frozen=True)
class Layout:
    """Where a NIfTI cohort's images and masks are (``cohort.nifti``)."""

    kind: str = "folders"  # folders | nnunet
    image: str = "image.nii.gz"  # folders: the image file in each patient folder
    channel: int = 0  # nnunet: the image channel (imagesTr/<case>_0000.nii.gz)
    labels: dict = field(default_factory=dict)  # nnunet: mask kind -> label values of labelsTr/<case>.nii.gz

    @classmethod
    def from_config(cls, c: dict) -> "Layout":
        kind = c.get("layout", "folders")
        if kind not in LAYOUTS:
            raise ValueError(f"cohort.nifti.layout: unknown layout '{kind}' (known: {', '.join(LAYOUTS)})")
        return cls(kind, c.get("image") or "image.nii.gz", int(c.get("channel") or 0),
                   {k: [int(v) for v in vals] for k, vals in (c.get("labels") or {}).items()})


# --------------------------------------------------------------------------- orientation

def _flips(direction: np.ndarray) -> tuple[bool, list[bool]]:
    """(swap the in-plane axes?, flip each index axis after the swap?) for a DICOM-like index order."""
    d = direction.copy()
    swap = int(np.argmax(np.abs(d[:, 0]))) > int(np.argmax(np.abs(d[:, 1])))
    if swap:
        d[:, [0, 1]] = d[:, [1, 0]]
    flips = []
    for a in (0, 1):
        dom = int(np.argmax(np.abs(d[:, a])))
        want = -1.0 if dom == 2 else 1.0  # the long (S) axis points inferior: the top of the image is superior
        flips.append(bool(np.sign(d[dom, a]) != want))
        if flips[-1]:
            d[:, a] = -d[:, a]
    flips.append(bool(np.dot(d[:, 2], np.cross(d[:, 0], d[:, 1])) < 0))  # slices ascend along the normal
    return swap, flips


def canonical(img: sitk.Image) -> tuple[sitk.Image, bool]:
    """``img`` flipped (and transposed in-plane) into a DICOM series' index order; also whether the
    slice axis was reversed (a slice's file index is then counted from the other end)."""
    direction = np.asarray(img.GetDirection(), float).reshape(3, 3)
    swap, flips = _flips(direction)
    if swap:
        img = sitk.PermuteAxes(img, [1, 0, 2])
    if any(flips):
        img = sitk.Flip(img, flips)
    return img, flips[2]


def geometry_problems(path: Path, img: sitk.Image) -> list[str]:
    """What keeps a volume's affine from being read as a stack of slices, naming the file."""
    if img.GetDimension() == 2:
        return [f"{path}: a single 2-D image of size {img.GetSize()}; give the patient's volume (a 3-D stack)"]
    if img.GetDimension() != 3:
        return [f"{path}: {img.GetDimension()}-D volume of size {img.GetSize()}; give one 3-D volume per "
                "patient (split time points or channels into files of their own)"]
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        return [f"{path}: non-orthogonal affine (axes {_axes(d)}): a sheared grid cannot be read as slices"]
    tilt = np.degrees(np.arccos(np.clip(np.abs(d).max(axis=0), 0, 1)))
    if (np.abs(d).max(axis=0) < 1 - AXIS_TOLERANCE).any():
        return [f"{path}: oblique affine (axes tilted {', '.join(f'{t:.1f}' for t in tilt)} degrees from the "
                "scanner axes; more than 2.6 degrees is refused); resample it onto an axis-aligned grid first "
                "(e.g. SimpleITK's Resample, FSL's flirt -applyxfm, ANTs' ResampleImage)"]
    return []


def component_problem(path: Path, img: sitk.Image) -> str | None:
    """A vector (RGB, multi-channel) voxel type: a slice is one grey value per pixel."""
    n = img.GetNumberOfComponentsPerPixel()
    if n > 1:
        return (f"{path}: {n} components per voxel ({img.GetPixelIDTypeAsString()}, e.g. RGB); give a grey-scale "
                "volume, one value per voxel (save one channel, or each channel as a file of its own)")
    return None


def orientation_warnings(path: Path) -> list[str]:
    """A header with neither qform nor sform code says nothing of orientation: read as identity, said."""
    hdr = nib.load(str(path)).header
    if int(hdr.get("qform_code", 0)) == 0 and int(hdr.get("sform_code", 0)) == 0:
        return [f"{path}: no orientation in the header (qform and sform codes 0); read as axial, rows to "
                "the patient's left, columns to posterior: check the stored slices look right"]
    return []


def nonfinite_problems(path: Path) -> list[str]:
    """NaN or infinite voxels, read with nibabel: SimpleITK's NIfTI reader turns NaN into 0 silently."""
    img = nib.load(str(path))
    if img.get_data_dtype().kind != "f" and img.dataobj.slope in (1, None) and img.dataobj.inter in (0, None):
        return []  # whole numbers on disk, unscaled: nothing can be NaN
    arr = np.asanyarray(img.dataobj)
    finite = np.isfinite(arr)
    if finite.all():
        return []
    i, j, k = np.argwhere(~finite)[0][:3]  # nibabel's (x, y, z) file index
    return [f"{path}: {int((~finite).sum())} voxel(s) are NaN or infinite (the first in slice {k + 1}, "
            f"column {i}, row {j} of the file); mask or fill them before ingest"]


def _axes(d: np.ndarray) -> str:
    return "; ".join(format_values(d[:, a]) for a in range(3))


# --------------------------------------------------------------------------- reading

@lru_cache(maxsize=2)
def _volume(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, bool]:
    """The canonical (z, y, x) voxel array of a NIfTI file and whether its slice axis was reversed
    (cached by path, modification time and size: a rewritten file is read again). A damaged gzip
    stream raises: its voxels are never trusted, whatever the preflight found before."""
    damaged = gzip_problem(path)
    if damaged:
        raise IngestError(damaged)
    img, reversed_z = canonical(sitk.ReadImage(path))
    return sitk.GetArrayFromImage(img), reversed_z


def read_slices(slices: list[SliceHeader]) -> list[np.ndarray]:
    """The slices of a NIfTI series (``frame`` = canonical index), as float32 like the DICOM reader."""
    out = []
    for h in slices:
        st = Path(h.path).stat()
        arr, _ = _volume(str(h.path), st.st_mtime_ns, st.st_size)
        out.append(arr[h.frame].astype(np.float32))
    return out


def read_mask(path: str | Path, series: Series, binary: bool = True, values=None) -> np.ndarray:
    """A mask of a NIfTI series: the file's own grid must be the image's (checked after both are put
    in the same canonical order); ``values`` (nnU-Net labels) picks the label values that are the mask."""
    path = Path(path)
    damaged = gzip_problem(path)
    if damaged:
        raise IngestError(damaged)
    img, _ = canonical(sitk.ReadImage(str(path)))
    problem = mask_problem(path, img, series)
    if problem:
        raise ValueError(problem)
    arr = sitk.GetArrayFromImage(img)
    if values is not None:
        return np.isin(arr, list(values)).astype(np.uint8)
    return (arr > 0).astype(np.uint8) if binary else arr.astype(np.uint8)


def mask_problem(path: Path, img: sitk.Image, series: Series) -> str | None:
    """The difference between a (canonical) mask's grid and its image's, naming what differs."""
    ref = series.reference_image()
    if tuple(img.GetSize()) != ref.GetSize():
        return f"{path}: mask size {tuple(img.GetSize())} is not the image's {ref.GetSize()} (x, y, z)"
    checks = (("affine direction", img.GetDirection(), ref.GetDirection(), 1e-3),
              ("origin", img.GetOrigin(), ref.GetOrigin(), 0.5 * min(ref.GetSpacing())),
              ("spacing", img.GetSpacing(), ref.GetSpacing(), 1e-3))
    differ = [f"{name} {format_values(a)} vs the image's {format_values(b)}" for name, a, b, tol in checks
              if not np.allclose(a, b, atol=tol)]
    return f"{path}: mask is off the image grid of {series.folder}: {'; '.join(differ)}" if differ else None


def check_mask(path: str | Path, series: Series) -> str | None:
    path = Path(path)
    damaged = gzip_problem(path)
    if damaged:
        return damaged
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        return f"{path}: could not read mask ({str(e).strip().splitlines()[-1]})"
    components = component_problem(path, img)
    if components:
        return components
    if img.GetDimension() != 3:
        return f"{path}: {img.GetDimension()}-D mask; masks are 3-D volumes on the image grid"
    return mask_problem(path, canonical(img)[0], series)


# --------------------------------------------------------------------------- one volume -> a series

def volume_series(path: Path, patient_id: str, folder: Path, description: str | None = None) -> Series:
    """The series a NIfTI image file stands for (problems of the file in ``Series.problems``); a
    truncated or corrupt gzip stream is one, found before any voxel is read."""
    damaged = gzip_problem(path)
    if damaged:
        return _empty(path, patient_id, folder, damaged)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        return _empty(path, patient_id, folder, f"{path}: could not read NIfTI ({str(e).strip().splitlines()[-1]})")
    components = component_problem(path, img)
    if components:
        return _empty(path, patient_id, folder, components)
    problems = geometry_problems(path, img)
    if img.GetDimension() == 4:
        img = img[:, :, :, 0]  # the geometry of its first volume, so the problem is reported with the patient
    if img.GetDimension() != 3:
        return _empty(path, patient_id, folder, problems[0])
    problems += nonfinite_problems(path)
    canon, reversed_z = canonical(img)
    d = np.asarray(canon.GetDirection(), float).reshape(3, 3)
    orientation = tuple(float(v) for v in (*d[:, 0], *d[:, 1]))
    nx, ny, nz = canon.GetSize()
    sx, sy, sz = canon.GetSpacing()
    normal = slice_normal(orientation)
    slices = []
    for k in range(nz):
        ipp = canon.TransformIndexToPhysicalPoint((0, 0, k))
        slices.append(SliceHeader(path=path, instance=(nz - k if reversed_z else k + 1),
                                  position=float(np.dot(ipp, normal)), rows=ny, cols=nx,
                                  ipp=tuple(float(v) for v in ipp), frame=k))
    label = orientation_label(orientation)
    return Series(folder=folder, patient_id=patient_id, series_uid=f"{SOURCE}:{path}", slices=slices,
                  pixel_spacing=(float(sy), float(sx)), slice_thickness=float(sz), orientation=orientation,
                  origin=tuple(float(v) for v in canon.GetOrigin()), description=description or path.name,
                  orientation_label=label, transfer_syntax=SOURCE, n_files=1, n_images=nz, problems=problems,
                  warnings=orientation_warnings(path))


def _empty(path: Path, patient_id: str, folder: Path, problem: str) -> Series:
    return Series(folder=folder, patient_id=patient_id, series_uid=f"{SOURCE}:{path}", slices=[],
                  pixel_spacing=(1.0, 1.0), slice_thickness=1.0, orientation=(1, 0, 0, 0, 1, 0), origin=(0, 0, 0),
                  description=path.name, orientation_label="unknown", transfer_syntax=SOURCE, n_files=1,
                  problems=[problem])


# --------------------------------------------------------------------------- the cohort folder

LAYOUTS = ("folders", "nnunet")


def scan(root: str | Path, layout: Layout, labelled=None) -> Scan:
    """Every patient's image volume under ``root`` as a series, with every problem found; the
    :class:`~anapart.io.dicom_scan.Scan` the DICOM path gives, so the cohort check runs unchanged.

    A folder without the image is a problem when ``labelled`` (PatientIDs of the labels table; None:
    all) names it, else it is skipped (``__MACOSX``, ``derivatives/``, a QC folder)."""
    t0 = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: NIfTI cohort folder does not exist")
    found, problems, skipped, n = {}, [], [], 0
    description = f"{layout.image}" if layout.kind == "folders" else f"imagesTr channel {layout.channel:04d}"
    for pid, image, folder in _images(root, layout, problems, skipped, labelled):
        n += 1
        s = volume_series(image, pid, folder, description)
        found[s.series_uid] = s
        if not s.slices:  # an unreadable or damaged file: a problem of the cohort, not only of the series
            problems += s.problems
    return Scan(root=root, series=found, skipped=skipped, problems=problems, n_files=n,
                seconds=time.perf_counter() - t0)


def _images(root: Path, layout: Layout, problems: list[str], skipped: list, labelled=None):
    """(patient id, image file, patient folder) of each patient; a folder without its image is a problem."""
    if layout.kind == "nnunet":
        images = root / "imagesTr"
        if not images.is_dir():
            problems.append(f"{images}: no imagesTr folder (nnU-Net raw layout: imagesTr/, labelsTr/)")
            return
        suffix = f"_{layout.channel:04d}"
        for f in sorted(images.iterdir()):
            name = _stem(f)
            if is_nifti(f) and name.endswith(suffix):
                yield name[:-len(suffix)], f, root
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        image = folder / layout.image
        if image.is_file():
            yield folder.name, image, folder
        elif labelled is not None and folder.name not in labelled:
            skipped.append((folder, "not_a_patient_folder"))
        else:
            problems.append(f"{folder}: patient folder without its image {layout.image} (cohort.nifti.image); "
                            f"has {', '.join(sorted(p.name for p in folder.iterdir())) or 'nothing'}")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def mask_files(layout: Layout, root: Path, patient_id: str, mask_names: dict) -> dict:
    """Each mask kind's file for a patient: a file in the patient's folder, or (nnU-Net) its label map
    with the values that make the mask, ``{"path": labelsTr/<case>.nii.gz, "values": [1, 2]}``."""
    if layout.kind == "nnunet":
        found = [root / "labelsTr" / f"{patient_id}{suffix}" for suffix in SUFFIXES]
        labels = next((f for f in found if f.exists()), found[0])
        return {kind: {"path": str(labels), "values": list(values)} for kind, values in layout.labels.items()}
    return {kind: str(root / patient_id / name) for kind, name in mask_names.items()}


def split_mask_ref(ref) -> tuple[Path, list[int] | None]:
    """A mask reference as (file, label values or None): a path, or an nnU-Net ``{"path", "values"}``."""
    if isinstance(ref, dict):
        return Path(ref["path"]), [int(v) for v in ref["values"]]
    return Path(ref), None
