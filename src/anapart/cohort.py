"""Check a DICOM cohort, ingest it into a memory-mappable slice store, and split it by patient.

The preflight (:func:`check_cohort`) reads every header and the labels once, selects each
patient's series (:class:`SeriesRule`) and lists every problem of the cohort at once; its plan
names the slices to ingest. Ingest streams: one series at a time is decoded, resampled to the
configured field and appended to ``.npy`` files with plain writes, so peak memory is one series
whatever the cohort size. Patient identifiers never reach results/: patients become salted-hash
pseudonyms, and nothing from a DICOM header but geometry is stored (the plan, which names files
and PatientIDs, is written where the caller says; the workflow keeps it under private/).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from . import dicom_io
from .dicom_io import DicomError, Series
from .files import atomic_paths

log = logging.getLogger("anapart.cohort")

REGION_BIT = 1  # bit flags of MaskStore rows (masks.npy holds them as packed planes)
LESION_BIT = 2
NORMAL = "normal"


class IngestError(ValueError):
    """Bad cohort input; the message names the file and the problem."""


# --------------------------------------------------------------------------- problems

@dataclass
class Problem:
    """One problem of the cohort: ``text`` names the file (or CSV line); ``kind`` is a short code that
    may be written under results/ (the text may not: paths can hold patient names)."""

    kind: str
    text: str
    patient: str | None = None  # PatientID (never written under results/)

    def __str__(self) -> str:
        return self.text


MAX_LISTED = 20  # problems quoted in an error message; the log lists all of them


def problems_message(problems: list) -> str:
    """``N problems, first 20: ...`` (one per line), the one-line reason a failed check gives."""
    n = len(problems)
    head = f"{n} problem{'s' if n != 1 else ''}" + (f", first {MAX_LISTED}" if n > MAX_LISTED else "")
    return head + ":\n  " + "\n  ".join(str(p) for p in problems[:MAX_LISTED])


def raise_problems(problems: list) -> None:
    if problems:
        raise IngestError(problems_message(problems))


# --------------------------------------------------------------------------- labels

def check_labels(path: str | os.PathLike, classes) -> tuple[pd.DataFrame, list[Problem]]:
    """Read the labels table: ``patient_id, label`` and optionally ``instance`` (blank = every slice).

    Returns the valid rows as a frame with ``patient_id`` (str), ``instance`` (Int64 or <NA>),
    ``label``, ``line`` (1-based line in the file), and one problem per bad row.
    """
    path = Path(path)
    empty = pd.DataFrame({"patient_id": pd.Series(dtype=str), "instance": pd.array([], dtype="Int64"),
                          "label": pd.Series(dtype=str), "line": pd.Series(dtype=int)})
    if not path.is_file():
        return empty, [Problem("labels", f"{path}: labels table does not exist")]
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        return empty, [Problem("labels", f"{path}: could not read labels table as CSV ({e})")]
    df.columns = [c.strip() for c in df.columns]
    missing = {"patient_id", "label"} - set(df.columns)
    if missing:
        return empty, [Problem("labels", f"{path}: labels table lacks column(s) {sorted(missing)}; has {list(df.columns)}")]
    found: list[tuple[int, Problem]] = []
    df["line"] = np.arange(len(df)) + 2  # 1-based, after the header line
    df["patient_id"] = df["patient_id"].str.strip()
    df["label"] = df["label"].str.strip()
    bad = pd.Series(False, index=df.index)
    for i in df.index[df["patient_id"] == ""]:
        found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: empty patient_id")))
        bad[i] = True
    for i in df.index[~df["label"].isin(list(classes))]:
        found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: unknown class "
                                                          f"'{df.at[i, 'label']}' (known classes: {', '.join(classes)})",
                                                df.at[i, "patient_id"])))
        bad[i] = True
    if "instance" in df.columns:
        inst = df["instance"].str.strip()
        for i in inst.index[(inst != "") & ~inst.str.fullmatch(r"\d+")]:
            found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: instance '{inst[i]}' "
                                                              "is not a whole number", df.at[i, "patient_id"])))
            bad[i] = True
        df["instance"] = pd.array([int(v) if v.isdigit() else pd.NA for v in inst], dtype="Int64")
    else:
        df["instance"] = pd.array([pd.NA] * len(df), dtype="Int64")
    dup = df.duplicated(["patient_id", "instance"], keep="first") & ~bad
    for i in df.index[dup]:
        found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: duplicate label row for "
                                                          "the same patient and instance", df.at[i, "patient_id"])))
        bad[i] = True
    problems = [p for _, p in sorted(found, key=lambda lp: lp[0])]  # file order; stable within a line
    return df.loc[~bad, ["patient_id", "instance", "label", "line"]].reset_index(drop=True), problems


def read_labels(path: str | os.PathLike, classes) -> pd.DataFrame:
    """:func:`check_labels` that raises every problem of the table at once."""
    df, problems = check_labels(path, classes)
    raise_problems(problems)
    return df


# --------------------------------------------------------------------------- pseudonyms

PSEUDONYM_PREFIX = "P"  # the main (development) cohort
EXTERNAL_PREFIX = "E"  # an external test cohort: its pseudonyms and slice ids never equal the main cohort's


def pseudonym(patient_id: str, salt: str, prefix: str = PSEUDONYM_PREFIX) -> str:
    """Salted-hash pseudonym: stable for a salt, not reversible without it; ``prefix`` tells the cohort."""
    digest = hmac.new(salt.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:10]


def resolve_salt(salt: str) -> str:
    """``env:NAME`` reads the salt from an environment variable, so a real salt stays out of config files."""
    if salt.startswith("env:"):
        name = salt[4:]
        value = os.environ.get(name)
        if not value:
            raise IngestError(f"pseudonym salt: environment variable {name} is not set")
        return value
    return salt


# --------------------------------------------------------------------------- geometry

def to_field(arr: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Zero-pad a slice to a square (centred), then resize it to ``size`` x ``size``.

    Padding, not cropping, keeps the whole acquired field; nearest-neighbour for masks.
    """
    h, w = arr.shape
    side = max(h, w)
    if h != w:
        out = np.zeros((side, side), dtype=arr.dtype)
        y0, x0 = (side - h) // 2, (side - w) // 2
        out[y0:y0 + h, x0:x0 + w] = arr
        arr = out
    if side == size:
        return arr
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    return cv2.resize(arr, (size, size), interpolation=interp)


def intensity_window(slices: list[np.ndarray], percentiles=(0.5, 99.5)) -> tuple[float, float]:
    """A series' robust intensity range (MR units are arbitrary per scan), from a 1-in-16 pixel sample."""
    sample = np.concatenate([a[::4, ::4].ravel() for a in slices])
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    return lo, (hi if hi > lo else lo + 1.0)


def normalise(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scale one slice to [0, 1] with the series window, in place (float32)."""
    a = np.asarray(a, dtype=np.float32)
    a -= np.float32(lo)
    a *= np.float32(1.0 / (hi - lo))
    np.maximum(a, 0.0, out=a)
    np.minimum(a, 1.0, out=a)
    return a


class MaskStore:
    """Read-only view of ``masks.npy``: region and lesion bit planes packed 8 pixels a byte.

    On disk the array is (n, 2, field, ceil(field/8)) uint8 (plane 0 region, plane 1 lesion), a
    quarter of a byte-per-pixel store; indexing returns the familiar (…, field, field) uint8 bit
    flags, so ``masks[rows] & REGION_BIT`` works as on a dense array.
    """

    def __init__(self, packed: np.ndarray):
        self.packed = packed
        self.field = packed.shape[2]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.packed.shape[0], self.field, self.field)

    def __len__(self) -> int:
        return self.packed.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        planes = np.unpackbits(np.asarray(self.packed[key]), axis=-1, count=self.field)
        return planes[..., 0, :, :] * np.uint8(REGION_BIT) | planes[..., 1, :, :] * np.uint8(LESION_BIT)


def pack_masks(bits: np.ndarray) -> np.ndarray:
    """(n, f, f) uint8 bit flags -> (n, 2, f, ceil(f/8)) packed planes, as stored in masks.npy."""
    planes = np.stack([(bits & REGION_BIT) > 0, (bits & LESION_BIT) > 0], axis=1)
    return np.packbits(planes, axis=-1)


class NpyStreamWriter:
    """Append rows to a ``.npy`` file whose total shape is known up front, with plain writes.

    Plain writes (not a writable memmap) keep written pages out of the process' RSS.
    """

    def __init__(self, path: Path, shape: tuple, dtype):
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        self.fh = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.fh, header)
        self.rows = 0
        self.seconds = 0.0  # time spent converting and writing, for the ingest report

    def append(self, block: np.ndarray) -> None:
        t0 = time.perf_counter()
        block = np.ascontiguousarray(block, dtype=self.dtype)
        assert block.shape[1:] == self.shape[1:], (block.shape, self.shape)
        self.fh.write(memoryview(block).cast("B"))
        self.rows += block.shape[0]
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        """Flush to disk before the caller renames the file into place (durable, and timed fairly)."""
        if not self.fh.closed:
            t0 = time.perf_counter()
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.seconds += time.perf_counter() - t0
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.path}: wrote {self.rows} rows, expected {self.shape[0]}")


# --------------------------------------------------------------------------- series selection

SERIES_ORIENTATIONS = ("axial", "sagittal", "coronal", "any")


@dataclass(frozen=True)
class SeriesRule:
    """Which of a patient's series is *the* series: a SeriesDescription regex (case-insensitive, None =
    any), an orientation (axial | sagittal | coronal | any) and a minimum number of slices.

    Study A's rule is ``cohort.series``; study B has one per sequence (``staging.sequences``). A
    localizer never matches: ImageType LOCALIZER says so, and one without it (a few slices, usually
    of mixed orientations) fails ``min_slices`` and ``orientation``.
    """

    description: str | None
    orientation: str
    min_slices: int

    def __post_init__(self):
        if self.orientation not in SERIES_ORIENTATIONS:
            raise ValueError(f"series orientation '{self.orientation}' is not one of {SERIES_ORIENTATIONS}")
        if self.description:
            try:
                re.compile(self.description)
            except re.error as e:
                raise ValueError(f"series description '{self.description}' is not a regular expression ({e})") from e

    @classmethod
    def from_config(cls, d: dict, where: str = "cohort.series") -> "SeriesRule":
        missing = [k for k in ("description", "orientation", "min_slices") if k not in (d or {})]
        if missing:
            raise ValueError(f"config {where} lacks {missing}")
        return cls(d["description"] or None, d["orientation"], int(d["min_slices"]))

    @classmethod
    def for_sequence(cls, value) -> "SeriesRule":
        """A ``staging.sequences`` entry: a regex string is short for {description: regex, orientation: any,
        min_slices: 1}; a mapping may set orientation and min_slices as ``cohort.series`` does."""
        if isinstance(value, str):
            return cls(value, "any", 1)
        return cls(value.get("description") or None, value.get("orientation", "any"), int(value.get("min_slices", 1)))

    def matches(self, s: Series) -> bool:
        """Slices are counted as the files hold them (before cohort.frames), and a series whose
        orientation is unknown (no slice could be placed) is not excluded by it: a broken series that
        would be chosen is reported, not silently passed over."""
        if s.localizer or s.n_images < self.min_slices:
            return False
        if self.orientation != "any" and s.orientation_label not in (self.orientation, "unknown"):
            return False
        return not self.description or re.search(self.description, s.description, re.IGNORECASE) is not None

    def __str__(self) -> str:
        desc = f"description ~ /{self.description}/" if self.description else "any description"
        return f"{desc}, orientation {self.orientation}, at least {self.min_slices} slices"


def describe_series(s: Series, root) -> str:
    """One candidate, as the errors list it: folder (relative to the DICOM folder), SeriesNumber,
    StudyDate, description, orientation, slices (what a user needs to find it in a viewer)."""
    try:
        where = s.folder.relative_to(root).as_posix()
    except ValueError:
        where = str(s.folder)
    extra = (", localizer" if s.localizer else "") + (f", {len(s.problems)} problem(s)" if s.problems else "")
    return (f"'{where}' (series {s.series_number or '?'} of {s.study_date or '?'}, '{s.description}', "
            f"{s.orientation_label}, {len(s.slices)} slices{extra})")


def select_series(candidates: list[Series], rule: SeriesRule) -> list[Series]:
    """The candidates the rule matches, in folder order (exactly one is what a caller wants)."""
    return sorted((s for s in candidates if rule.matches(s)), key=lambda s: (str(s.folder), s.series_uid))


def patient_folder(series: list[Series]) -> Path:
    """The folder that holds all of a patient's series (what a problem without one file names)."""
    return Path(os.path.commonpath([str(s.folder) for s in series]))


def series_by_patient(scan: dicom_io.Scan | None) -> dict[str, list[Series]]:
    """Each PatientID's series, in folder order."""
    out: dict[str, list[Series]] = {}
    if scan is not None:
        for s in sorted(scan.series.values(), key=lambda s: (str(s.folder), s.series_uid)):
            out.setdefault(s.patient_id, []).append(s)
    return out


def choose_series(cands: list[Series], rules: dict[str, SeriesRule], pid: str, root,
                  setting: str) -> tuple[dict[str, Series], list[Problem], list[Problem]]:
    """One patient's series per rule (study A: one rule, study B: one per sequence), with study A's and
    study B's shared checks.

    Returns (chosen series by rule name, problems, warnings). Problems: no series or several match a
    rule (listing the candidates), or the chosen series cannot be used. Warnings: the problems of the
    patient's series that are not used (they fail nothing, and are never silent) and the chosen
    series' slice gaps. ``setting`` names the config key of the rules in messages (a rule named ""
    is the key itself).
    """
    chosen, problems = {}, []
    listing = "; ".join(describe_series(s, root) for s in cands)
    folder = patient_folder(cands)
    for name, rule in rules.items():
        where = f"{setting}.{name}" if name else setting
        matching = select_series(cands, rule)
        if not matching:
            problems.append(Problem("no_matching_series", f"{folder}: no series matches the series rule ({where}: "
                                                          f"{rule}); candidates: {listing}", pid))
        elif len(matching) > 1:
            problems.append(Problem("several_matching_series",
                                    f"{folder}: {len(matching)} series match the series rule ({where}: {rule}); "
                                    f"make {where} stricter (e.g. its description). Candidates: {listing}", pid))
        else:
            chosen[name] = matching[0]
            problems += [Problem("series", p, pid) for p in matching[0].problems_as_used]
    used = {s.series_uid for s in chosen.values()}
    warnings = [Problem("unused_series_problem", f"{p} (in series '{s.description}', which is not used)", pid)
                for s in cands if s.series_uid not in used for p in s.problems]
    warnings += [Problem("slice_gap", w, pid) for s in chosen.values() for w in s.warnings]
    return chosen, problems, warnings


# --------------------------------------------------------------------------- preflight

MASK_KINDS = ("region", "lesion")


@dataclass
class IngestPlan:
    series: Series
    pseudonym: str
    indices: list[int]  # positions (in sorted order) of labelled slices
    labels: list[str]
    patient_id: str = ""
    masks: dict = dataclass_field(default_factory=dict)  # region/lesion -> mask file on the series grid (or None)

    def to_dict(self) -> dict:
        return {"pseudonym": self.pseudonym, "patient_id": self.patient_id, "indices": self.indices,
                "labels": self.labels, "masks": self.masks, "series": self.series.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "IngestPlan":
        return cls(Series.from_dict(d["series"]), d["pseudonym"], list(d["indices"]), list(d["labels"]),
                   d["patient_id"], dict(d["masks"]))


CHECK_COLUMNS = ["patient", "label_rows", "series_found", "series_matching", "description", "orientation", "slices",
                 "matrix", "pixel_spacing_mm", "slice_spacing_mm", "slice_thickness_mm", "enhanced", "transfer_syntax",
                 "scanner", "labelled_slices", "region_mask", "lesion_mask", "files_skipped", "problems",
                 "problem_kinds", "warnings"]


@dataclass
class CohortCheck:
    """The preflight's findings: what ingest will do (plans), per patient, every problem and warning."""

    plans: list[IngestPlan]
    table: pd.DataFrame  # one row per patient, pseudonymised (CHECK_COLUMNS)
    problems: list[Problem]
    summary: dict  # counts only: nothing that could name a patient
    dicom_dir: Path
    skipped: list[tuple[str, str]]  # (file relative to the DICOM folder, kind): private, for the log and the plan
    warnings: list[Problem] = dataclass_field(default_factory=list)  # reported, not fatal


def _label_indices(s: Series, group: pd.DataFrame, labels_csv, pid: str) -> tuple[dict[int, str], list[Problem]]:
    """Slice position -> label for one patient's labelled rows (explicit rows win over blanket rows)."""
    problems = []
    by_instance: dict[int, int] = {}
    if group["instance"].notna().any():
        for i, h in enumerate(s.slices):
            if h.instance in by_instance:
                first = s.slices[by_instance[h.instance]]
                if h.frame is not None and first.path != h.path:
                    problems.append(Problem("duplicate_instance", f"{h.path}: frame {h.instance} is also a frame of "
                                            f"{first.path}: the series is split over several enhanced files, so a "
                                            "frame number does not name one slice; label every slice of the series "
                                            "(blank instance) or merge the files", pid))
                else:
                    problems.append(Problem("duplicate_instance", f"{h.path}: InstanceNumber {h.instance} occurs "
                                                                  "twice in the series", pid))
            by_instance[h.instance] = i
    chosen: dict[int, str] = {}
    for row in group.itertuples():
        if pd.isna(row.instance):
            for i in range(len(s.slices)):
                chosen.setdefault(i, row.label)
            continue
        if int(row.instance) not in by_instance:
            problems.append(Problem("instance_not_in_series", f"{labels_csv} line {row.line}: instance {row.instance} "
                                                              f"is not in the series in {s.folder}", pid))
            continue
        chosen[by_instance[int(row.instance)]] = row.label
    return chosen, problems


@dataclass
class _Cohort:
    """What checking one patient needs to know about the whole cohort."""

    dicom_dir: Path
    labels_csv: Path
    mask_dir: Path | None
    mask_names: dict
    rule: SeriesRule
    salt: str
    prefix: str  # pseudonym prefix: P (main cohort) or E (external test cohort)
    skipped_by_patient: dict[str, int]
    badly_labelled: set  # patients whose label rows had problems (reported with the table's)


def _check_masks(c: _Cohort, s: Series, pid: str) -> tuple[dict, dict, list[Problem]]:
    """(row fields, mask file per kind or None, problems) of a patient's masks on series ``s``."""
    row, masks, problems = {}, {}, []
    for kind in MASK_KINDS:
        path = c.mask_dir / pid / c.mask_names[kind] if c.mask_dir is not None else None
        if path is None:
            row[f"{kind}_mask"], masks[kind] = "none", None
        elif not path.exists():
            row[f"{kind}_mask"], masks[kind] = "missing", None
        else:
            bad = dicom_io.check_mask(path, s)
            row[f"{kind}_mask"], masks[kind] = ("off_grid", None) if bad else ("ok", str(path))
            if bad:
                problems.append(Problem("mask", bad, pid))
    return row, masks, problems


def _series_fields(s: Series) -> dict:
    """The chosen series' columns of check.csv."""
    row = dict(description=s.description, orientation=s.orientation_label, slices=len(s.slices), enhanced=s.enhanced,
               transfer_syntax=s.transfer_syntax, scanner=s.scanner)
    if s.slices:
        row.update(matrix=f"{s.shape[1]}x{s.shape[2]}", pixel_spacing_mm="x".join(f"{v:.4g}" for v in s.pixel_spacing),
                   slice_spacing_mm=round(s.slice_spacing(), 4), slice_thickness_mm=round(s.slice_thickness, 4))
    return row


def _check_patient(c: _Cohort, pid: str, cands: list[Series], group: pd.DataFrame | None):
    """One patient: (plan or None, check.csv row without the problem counts, problems, warnings)."""
    ps = pseudonym(pid, c.salt, c.prefix)
    matching = select_series(cands, c.rule)
    row = dict.fromkeys(CHECK_COLUMNS, "")
    row.update(patient=ps, label_rows=0 if group is None else len(group), series_found=len(cands),
               series_matching=len(matching), labelled_slices=0, files_skipped=c.skipped_by_patient.get(pid, 0))
    if not cands:
        if group is None:
            return None, row, [], []
        return None, row, [Problem("no_series", f"{c.labels_csv} line {group['line'].iloc[0]}: no DICOM series for "
                                                f"this patient under {c.dicom_dir}", pid)], []
    chosen, problems, warnings = choose_series(cands, {"": c.rule}, pid, c.dicom_dir, "cohort.series")
    s = chosen.get("")
    if s is not None:
        row.update(_series_fields(s))
    if group is None:  # not ingested: only the missing label is a problem (its label rows' ones are listed)
        no_label = [] if pid in c.badly_labelled else [
            Problem("no_label", f"{(matching or cands)[0].folder}: series has no label in {c.labels_csv}", pid)]
        return None, row, no_label, warnings
    if s is None or problems:
        return None, row, problems, warnings
    picked, problems = _label_indices(s, group, c.labels_csv, pid)
    row["labelled_slices"] = len(picked)
    mask_fields, masks, mask_problems = _check_masks(c, s, pid)
    row.update(mask_fields)
    problems += mask_problems
    if problems:
        return None, row, problems, warnings
    idx = sorted(picked)
    return IngestPlan(s, ps, idx, [picked[i] for i in idx], pid, masks), row, problems, warnings


def _by_kind(problems: list[Problem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return dict(sorted(counts.items()))


def check_cohort(dicom_dir, labels_csv, mask_dir, *, classes, salt: str, series: SeriesRule,
                 frames: dicom_io.FrameRule | None = None, mask_names: dict | None = None,
                 prefix: str = PSEUDONYM_PREFIX, exclude: dict[str, str] | None = None) -> CohortCheck:
    """Read every header and the labels once and find every problem of the cohort; decode nothing.

    Per patient: the series found and the one ``series`` selects, its geometry, the labelled slices,
    whether the masks lie on its grid, the files skipped. Problems are collected, not raised;
    warnings (problems of series that are not used, slice gaps) are reported and fail nothing.
    ``exclude`` maps PatientIDs that must not occur (an external cohort's check gets the main
    cohort's) to the reason quoted in the problem.
    """
    t0 = time.perf_counter()
    dicom_dir = Path(dicom_dir)
    labels, problems = check_labels(labels_csv, classes)
    scan = None
    try:
        scan = dicom_io.scan(dicom_dir, frames)
    except DicomError as e:
        problems.append(Problem("dicom_folder", str(e)))
    if mask_dir is not None and not Path(mask_dir).is_dir():
        problems.append(Problem("mask_folder", f"{mask_dir}: mask folder does not exist"))
        mask_dir = None
    row_problems: dict[str, list[Problem]] = {}  # problems of a patient's label rows
    for p in problems:
        if p.patient:
            row_problems.setdefault(p.patient, []).append(p)
    if scan is not None:
        problems += [Problem("unreadable_file", p) for p in scan.problems]
    c = _Cohort(dicom_dir, Path(labels_csv), Path(mask_dir) if mask_dir is not None else None,
                mask_names or {"region": "region.nii.gz", "lesion": "lesion.nii.gz"}, series, resolve_salt(salt), prefix,
                scan.skipped_by_patient if scan is not None else {}, set(row_problems))
    series_of = series_by_patient(scan)
    groups = {pid: g for pid, g in labels.groupby("patient_id", sort=False)}
    patients = sorted(set(series_of) | set(groups),
                      key=lambda p: (str(series_of[p][0].folder) if p in series_of else "", p))
    plans, rows, warnings, seen = [], [], [], {}
    for pid in patients:
        plan, row, own, warn = _check_patient(c, pid, series_of.get(pid, []), groups.get(pid))
        if exclude and pid in exclude:
            own.append(Problem("patient_in_other_cohort", f"{patient_folder(series_of[pid]) if pid in series_of else labels_csv}: "
                                                          f"{exclude[pid]}", pid))
            plan = None
        if row["patient"] in seen:
            own.append(Problem("pseudonym", f"{patient_folder(series_of[pid]) if pid in series_of else labels_csv}: "
                                            "pseudonym collision with another patient; choose another salt", pid))
            plan = None
        seen[row["patient"]] = pid
        if plan is not None:
            plans.append(plan)
        listed = row_problems.get(pid, []) + own  # its label rows' problems are listed already, with the table's
        row.update(problems=len(listed), problem_kinds=";".join(sorted({p.kind for p in listed})), warnings=len(warn))
        rows.append(row)
        problems += own
        warnings += warn
    plans.sort(key=lambda p: p.pseudonym)
    table = pd.DataFrame(rows, columns=CHECK_COLUMNS).sort_values("patient", ignore_index=True)
    skipped = [] if scan is None else [(p.relative_to(dicom_dir).as_posix(), k) for p, k in scan.skipped]
    summary = {
        "patients_labelled": len(groups),
        "patients_in_dicom": len(series_of),
        "patients_ready": len(plans),
        "series": 0 if scan is None else len(scan.series),
        "files": 0 if scan is None else scan.n_files,
        "files_skipped": {} if scan is None else scan.skipped_counts(),
        "labelled_slices": int(sum(len(p.indices) for p in plans)),
        **acquisition_summary([p.series for p in plans]),
        "problems": len(problems),
        "problems_by_kind": _by_kind(problems),
        "warnings": len(warnings),
        "warnings_by_kind": _by_kind(warnings),
        "seconds_header_scan": round(scan.seconds, 3) if scan is not None else 0.0,
        "seconds_total": round(time.perf_counter() - t0, 3),
    }
    return CohortCheck(plans, table, problems, summary, dicom_dir, skipped, warnings)


def acquisition_summary(series: list[Series]) -> dict:
    """Study period (first and last month of StudyDate; no day reaches results/) and patients per
    scanner of the series used: the checklist's "data source and dates"."""
    months = sorted(f"{d[:4]}-{d[4:6]}" for d in (s.study_date.strip() for s in series)
                    if len(d) >= 6 and d[:6].isdigit())
    scanners: dict[str, int] = {}
    for s in series:
        name = s.scanner or "not stated"
        scanners[name] = scanners.get(name, 0) + 1
    return {"study_period": [months[0], months[-1]] if months else None,
            "scanners": dict(sorted(scanners.items()))}


MAX_SKIPPED_LOGGED = 3  # example files per kind of skipped file


def log_check(check: CohortCheck) -> None:
    """The check's findings in the log (which may name files; results/ never does)."""
    s = check.summary
    log.info("cohort check: %d files, %d series, %d labelled patients, %d ready, %d labelled slices; header scan %.1fs",
             s["files"], s["series"], s["patients_labelled"], s["patients_ready"], s["labelled_slices"],
             s["seconds_header_scan"])
    log_skipped(check.skipped, check.dicom_dir)
    log_warnings(check.warnings)
    for p in check.problems:
        log.error("%s", p)
    if check.problems:
        log.error("%s", problems_message(check.problems).splitlines()[0].rstrip(":"))


def log_warnings(warnings: list) -> None:
    """Each warning (it fails nothing, but may name a slice the user expected), then their count."""
    for w in warnings:
        log.warning("%s", w)
    if warnings:
        log.warning("%d warning%s (not fatal; see above)", len(warnings), "s" if len(warnings) != 1 else "")


def log_skipped(skipped: list, dicom_dir) -> None:
    """Counts per kind of skipped file, and the first few files of each kind (relative to the DICOM folder)."""
    if not skipped:
        return
    by_kind: dict[str, list[str]] = {}
    for rel, kind in skipped:
        by_kind.setdefault(kind, []).append(rel)
    log.info("skipped %d file(s) under %s: %s", len(skipped), dicom_dir,
             ", ".join(f"{len(v)} {dicom_io.SKIP_KINDS.get(k, k)}" for k, v in sorted(by_kind.items())))
    for kind, files in sorted(by_kind.items()):
        more = f" and {len(files) - MAX_SKIPPED_LOGGED} more" if len(files) > MAX_SKIPPED_LOGGED else ""
        log.info("  skipped (%s): %s%s", kind, ", ".join(files[:MAX_SKIPPED_LOGGED]), more)


def write_check(check: CohortCheck, table_csv, summary_json, plan_json=None) -> None:
    """The per-patient table and the summary (pseudonymised, for results/), and the plan ingest reads.

    The plan names DICOM files and PatientIDs, so it belongs outside results/ (the workflow keeps it
    under private/).
    """
    paths = [table_csv, summary_json] + ([plan_json] if plan_json is not None else [])
    with atomic_paths(*paths) as tmps:
        check.table.to_csv(tmps[0], index=False, lineterminator="\n")
        tmps[1].write_text(json.dumps(check.summary, indent=2) + "\n")
        if plan_json is not None:
            plan = {"dicom_dir": str(check.dicom_dir), "summary": check.summary,
                    "skipped": [list(x) for x in check.skipped], "patients": [p.to_dict() for p in check.plans]}
            tmps[2].write_text(json.dumps(plan) + "\n")


def read_plan(path) -> tuple[list[IngestPlan], dict]:
    """The plans written by :func:`write_check`, and the rest of the plan file (summary, skipped files)."""
    d = json.loads(Path(path).read_text())
    return [IngestPlan.from_dict(p) for p in d.pop("patients")], d


# --------------------------------------------------------------------------- ingest

def _series_masks(plan: IngestPlan) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {}
    for kind in MASK_KINDS:
        path = plan.masks.get(kind)
        try:
            out[kind] = dicom_io.read_mask(path, plan.series) if path else None
        except DicomError as e:
            raise IngestError(str(e)) from e
    return out


def ingest(dicom_dir, labels_csv, mask_dir, out: dict, *, classes, field: int, salt: str, series: SeriesRule,
           frames: dicom_io.FrameRule | None = None, percentiles=(0.5, 99.5), mask_names=None,
           prefix: str = PSEUDONYM_PREFIX) -> dict:
    """Check the cohort (:func:`check_cohort`; every problem raised at once) and build the slice store.

    ``out`` maps images, masks, manifest, report to output paths. Returns the report (counts and
    timings). On any error nothing is left at the output paths.
    """
    t0 = time.perf_counter()
    check = check_cohort(dicom_dir, labels_csv, mask_dir, classes=classes, salt=salt, series=series, frames=frames,
                         mask_names=mask_names, prefix=prefix)
    log_check(check)
    raise_problems(check.problems)
    return build_store(check.plans, out, classes=classes, field=field, percentiles=percentiles,
                       skipped=check.summary["files_skipped"], t_plan=time.perf_counter() - t0)  # the check


def ingest_plan(plan_json, out: dict, *, classes, field: int, percentiles=(0.5, 99.5)) -> dict:
    """Build the slice store from the plan the preflight (``cohort_check``) wrote; no header is read again."""
    t0 = time.perf_counter()
    plans, meta = read_plan(plan_json)
    log_skipped([tuple(x) for x in meta["skipped"]], meta["dicom_dir"])
    return build_store(plans, out, classes=classes, field=field, percentiles=percentiles,
                       skipped=meta["summary"]["files_skipped"], t_plan=time.perf_counter() - t0)


def build_store(plans: list[IngestPlan], out: dict, *, classes, field: int, percentiles, skipped: dict,
                t_plan: float) -> dict:
    """Decode, resample and write the planned slices, one series at a time (the store format of
    :func:`load_store`). Returns the report; on any error nothing is left at the output paths.

    ``t_plan``: seconds spent getting the plans (reading the plan file, or the whole check when
    :func:`ingest` ran it), reported as ``seconds_plan``.
    """
    t0 = time.perf_counter() - t_plan
    n = sum(len(p.indices) for p in plans)
    log.info("%d series, %d labelled slices; plan %.1fs", len(plans), n, t_plan)
    t_decode = t_transform = t_masks = 0.0
    rows = []
    with atomic_paths(out["images"], out["masks"], out["manifest"], out["report"]) as (img_p, msk_p, man_p, rep_p):
        images = NpyStreamWriter(img_p, (n, field, field), np.float16)
        masks = NpyStreamWriter(msk_p, (n, 2, field, (field + 7) // 8), np.uint8)
        try:
            for k, plan in enumerate(plans):
                s = plan.series
                td = time.perf_counter()
                try:
                    raw = dicom_io.read_slices([s.slices[i] for i in plan.indices])
                except DicomError as e:
                    raise IngestError(str(e)) from e
                t_decode += time.perf_counter() - td
                tt = time.perf_counter()
                lo, hi = intensity_window(raw, percentiles)
                normed = [normalise(to_field(a, field), lo, hi)[None] for a in raw]  # in place, per slice
                t_transform += time.perf_counter() - tt
                for a in normed:
                    images.append(a)
                tm = time.perf_counter()
                vols = _series_masks(plan)
                bits = np.zeros((len(plan.indices), field, field), np.uint8)
                flags = {}
                for kind, bit in (("region", REGION_BIT), ("lesion", LESION_BIT)):
                    vol = vols[kind]
                    has = np.zeros(len(plan.indices), bool)
                    if vol is not None:
                        for j, i in enumerate(plan.indices):
                            m = to_field(vol[i], field, nearest=True)
                            if m.any():
                                bits[j] |= (m > 0).astype(np.uint8) * bit
                                has[j] = True
                    flags[kind] = has
                packed = pack_masks(bits) if flags["region"].any() or flags["lesion"].any() else \
                    np.zeros((len(bits), 2, field, (field + 7) // 8), np.uint8)
                t_masks += time.perf_counter() - tm
                masks.append(packed)
                spacing = max(s.shape[1] * s.pixel_spacing[0], s.shape[2] * s.pixel_spacing[1]) / field
                for j, (i, label) in enumerate(zip(plan.indices, plan.labels)):
                    rows.append((f"{plan.pseudonym}_{i:03d}", plan.pseudonym, label, bool(flags["region"][j]),
                                 bool(flags["lesion"][j]), len(rows), i, round(spacing, 4),
                                 round(s.slice_thickness, 3)))
                if (k + 1) % 50 == 0 or k + 1 == len(plans):
                    log.info("ingested %d/%d series (%d slices)", k + 1, len(plans), len(rows))
            images.close()
            masks.close()
        finally:
            images.fh.close()
            masks.fh.close()
        manifest = pd.DataFrame(rows, columns=["slice_id", "patient", "label", "has_region_mask", "has_lesion_mask",
                                               "row", "position", "pixel_spacing_mm", "slice_thickness_mm"])
        manifest.to_csv(man_p, index=False, lineterminator="\n")
        total = time.perf_counter() - t0
        report = {
            "n_patients": len(plans),
            "n_slices": int(n),
            "field": field,
            "classes": {c: int((manifest["label"] == c).sum()) for c in classes},
            "region_masks": int(manifest["has_region_mask"].sum()),
            "lesion_masks": int(manifest["has_lesion_mask"].sum()),
            "files_skipped": dict(skipped),
            "seconds_total": round(total, 3),
            "seconds_plan": round(t_plan, 3),
            "seconds_decode": round(t_decode, 3),
            "seconds_resample_normalise": round(t_transform, 3),
            "seconds_masks": round(t_masks, 3),
            "seconds_convert_write": round(images.seconds + masks.seconds, 3),
        }
        accounted = t_plan + t_decode + t_transform + t_masks + images.seconds + masks.seconds
        report["seconds_other"] = round(total - accounted, 3)  # bookkeeping: manifest, loops, logging
        rep_p.write_text(json.dumps(report, indent=2) + "\n")
    log.info("ingest done: %s", report)
    return report


def load_store(cohort_dir) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Open the slice store read-only, memory-mapped: (manifest, images, masks)."""
    d = Path(cohort_dir)
    manifest = pd.read_csv(d / "manifest.csv")
    return manifest, np.load(d / "images.npy", mmap_mode="r"), MaskStore(np.load(d / "masks.npy", mmap_mode="r"))


# --------------------------------------------------------------------------- split

def patient_groups(manifest: pd.DataFrame) -> pd.Series:
    """A patient's stratum: its (most frequent) lesion class, or ``normal`` if it has none."""
    def group(labels: pd.Series) -> str:
        lesions = labels[labels != NORMAL]
        if lesions.empty:
            return NORMAL
        counts = lesions.value_counts()
        return sorted(counts[counts == counts.max()].index)[0]

    return manifest.groupby("patient")["label"].apply(group)


def share_count(n: int, fraction: float) -> int:
    """How many of a stratum's ``n`` patients go to the held-out side: ``n * fraction`` rounded half
    up (10 x 0.25 -> 3; Python's ``round`` would give 2), then at least one patient on each side
    when the stratum has two or more (none held out of a single patient)."""
    if n < 2:
        return 0
    return min(max(math.floor(n * fraction + 0.5), 1), n - 1)


def _stratified_pick(groups: pd.Series, fraction: float, rng, classes) -> set:
    """Per stratum, :func:`share_count` patients drawn at random."""
    picked = set()
    for cls in classes:
        pts = sorted(groups[groups == cls].index)
        if not pts:
            continue
        n = share_count(len(pts), fraction)
        order = rng.permutation(len(pts))
        picked |= {pts[i] for i in order[:n]}
    return picked


def split_patients(manifest: pd.DataFrame, test_fraction: float, seed: int, classes) -> pd.DataFrame:
    """Stratified patient-level split: per stratum, ``n * test_fraction`` patients rounded half up go
    to test (:func:`share_count`); every stratum of two or more keeps at least one on each side.
    """
    groups = patient_groups(manifest)
    test = _stratified_pick(groups, test_fraction, np.random.default_rng([seed, 0]), classes)
    rows = [(p, g, "test" if p in test else "train") for p, g in groups.items() if g in set(classes)]
    return pd.DataFrame(rows, columns=["patient", "group", "split"]).sort_values("patient", ignore_index=True)


def mark_validation(patients: pd.DataFrame, fraction: float, seed: int, classes) -> pd.DataFrame:
    """Add ``validation``: training patients held out of *segmentation* training to choose the
    segmentation model (stratified like the test split, its own random stream). The classifiers
    still train on every training patient: for them these are training patients like the others.
    """
    train = patients[patients["split"] == "train"].set_index("patient")["group"]
    picked = _stratified_pick(train, fraction, np.random.default_rng([seed, 2]), classes) if fraction > 0 else set()
    return patients.assign(validation=patients["patient"].isin(picked))


def training_subsets(train: pd.DataFrame, fractions, seed: int) -> dict[int, pd.DataFrame]:
    """Nested per-class subsets of the training slices: one shuffle per class, prefixes of it.

    The paper kept 50% and 25% of the training *images* of each category, so sampling is per
    class at slice level; the same shuffled order makes 100% ⊇ 50% ⊇ 25% by construction.
    """
    rng = np.random.default_rng([seed, 1])
    out: dict[int, list] = {int(f): [] for f in fractions}
    for cls in sorted(train["label"].unique()):
        ids = sorted(train.loc[train["label"] == cls, "slice_id"])
        order = rng.permutation(len(ids))
        for f in out:
            k = max(1, math.ceil(len(ids) * f / 100)) if ids else 0
            out[f] += [(ids[i], cls) for i in order[:k]]
    return {f: pd.DataFrame(sorted(v), columns=["slice_id", "label"]) for f, v in out.items()}


def assert_no_leakage(patients: pd.DataFrame, manifest: pd.DataFrame, train_lists: dict, test: pd.DataFrame) -> None:
    """Fail loudly if any patient or slice could be seen on both sides of the split."""
    side = patients.set_index("patient")["split"]
    if patients["patient"].duplicated().any():
        raise AssertionError("a patient appears twice in the split table")
    train_p, test_p = set(side[side == "train"].index), set(side[side == "test"].index)
    if train_p & test_p:
        raise AssertionError(f"{len(train_p & test_p)} patient(s) in both train and test")
    if "validation" in patients and (patients["validation"].astype(bool) & (patients["split"] != "train")).any():
        raise AssertionError("a validation patient is not a training patient")
    patient_of = manifest.set_index("slice_id")["patient"]
    for f, lst in train_lists.items():
        bad = set(patient_of[lst["slice_id"]]) - train_p
        if bad:
            raise AssertionError(f"training subset f{f} holds slices of {len(bad)} test patient(s)")
    if set(patient_of[test["slice_id"]]) - test_p:
        raise AssertionError("test list holds slices of training patients")
    fr = sorted(train_lists, reverse=True)
    for big, small in zip(fr, fr[1:]):
        if not set(train_lists[small]["slice_id"]) <= set(train_lists[big]["slice_id"]):
            raise AssertionError(f"training subset f{small} is not inside f{big}")


def make_split(manifest: pd.DataFrame, out: dict, *, classes, test_fraction: float, fractions, seed: int,
               validation_fraction: float = 0.0) -> None:
    """Write patients.csv, train_f{frac}.csv and test.csv (all or nothing), after the leakage check.

    patients.csv: ``patient, group, split`` (train/test) and ``validation`` (the training patients
    that choose the segmentation model, :func:`mark_validation`).
    """
    patients = mark_validation(split_patients(manifest, test_fraction, seed, classes), validation_fraction, seed,
                               classes)
    side = patients.set_index("patient")["split"]
    tagged = manifest.assign(split=manifest["patient"].map(side))
    train = tagged[tagged["split"] == "train"][["slice_id", "label"]]
    test = tagged[tagged["split"] == "test"][["slice_id", "label"]].sort_values("slice_id", ignore_index=True)
    subsets = training_subsets(train, fractions, seed)
    assert_no_leakage(patients, manifest, subsets, test)
    frames = {"patients": patients, "test": test, **{f"train_f{f}": lst for f, lst in subsets.items()}}
    keys = list(frames)
    with atomic_paths(*(out[k] for k in keys)) as tmps:
        for k, tmp in zip(keys, tmps):
            frames[k].to_csv(tmp, index=False, lineterminator="\n")
    for f, lst in subsets.items():
        log.info("train f%d: %d slices %s", f, len(lst), lst["label"].value_counts().to_dict())
    log.info("test: %d slices from %d patients; %d training patients choose the segmentation model",
             len(test), int((patients["split"] == "test").sum()), int(patients["validation"].sum()))
