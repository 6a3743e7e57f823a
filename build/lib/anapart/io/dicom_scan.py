"""The header scan of a DICOM folder: every file classified, images grouped into series, every problem.

:func:`scan` reads headers only (each file through :func:`anapart.io.dicom_header.inspect_file`), groups
images into series sorted along the slice normal, applies ``cohort.frames`` (:class:`FrameRule`) and
records every problem it can see without decoding; :func:`anapart.io.dicom.read_slices` then decodes.

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

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anapart.io.dicom import DicomError, Series, SliceHeader, orientation_label
from anapart.io.dicom_header import ImageFile, inspect_file

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

# Slices closer than this share a position: 1% of the series' slice spacing (DS rounding of
# positions is far below it), and at least MIN_STEP_MM (a series all at one position).
DUPLICATE_FRACTION = 0.01
MIN_STEP_MM = 1e-3
GAP_FACTOR = 1.5  # a step this many slice spacings long is a gap (a missing slice): a warning


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


def _is_hidden(part: str) -> bool:
    return part.startswith(".")


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
        what, info = inspect_file(path)
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


def _assemble(uid: str, items: list[ImageFile], frames: FrameRule) -> Series:
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
