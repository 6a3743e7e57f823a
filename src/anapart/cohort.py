"""Ingest a DICOM cohort into a memory-mappable slice store, and split it by patient.

Ingest streams: one pass over headers (validation, counting), then one series at a time is
decoded, resampled to the configured field and appended to ``.npy`` files with plain writes, so
peak memory is one series whatever the cohort size. Patient identifiers never leave this module:
patients become salted-hash pseudonyms, and nothing from a DICOM header but geometry is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import time
from dataclasses import dataclass
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


# --------------------------------------------------------------------------- labels

def read_labels(path: str | os.PathLike, classes) -> pd.DataFrame:
    """Read the labels table: ``patient_id, label`` and optionally ``instance`` (blank = every slice).

    Returns a frame with ``patient_id`` (str), ``instance`` (Int64 or <NA>), ``label``, ``line``.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: labels table does not exist")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise IngestError(f"{path}: could not read labels table as CSV ({e})") from e
    df.columns = [c.strip() for c in df.columns]
    missing = {"patient_id", "label"} - set(df.columns)
    if missing:
        raise IngestError(f"{path}: labels table lacks column(s) {sorted(missing)}; has {list(df.columns)}")
    df["line"] = np.arange(len(df)) + 2  # 1-based, after the header line
    df["patient_id"] = df["patient_id"].str.strip()
    df["label"] = df["label"].str.strip()
    if (df["patient_id"] == "").any():
        line = int(df.loc[df["patient_id"] == "", "line"].iloc[0])
        raise IngestError(f"{path} line {line}: empty patient_id")
    unknown = df[~df["label"].isin(list(classes))]
    if len(unknown):
        row = unknown.iloc[0]
        raise IngestError(
            f"{path} line {row['line']}: unknown class '{row['label']}' (known classes: {', '.join(classes)})"
        )
    if "instance" in df.columns:
        inst = df["instance"].str.strip()
        bad = inst[(inst != "") & ~inst.str.fullmatch(r"\d+")]
        if len(bad):
            line = int(df.loc[bad.index[0], "line"])
            raise IngestError(f"{path} line {line}: instance '{bad.iloc[0]}' is not a whole number")
        df["instance"] = pd.array([int(v) if v else pd.NA for v in inst], dtype="Int64")
    else:
        df["instance"] = pd.array([pd.NA] * len(df), dtype="Int64")
    dup = df.duplicated(["patient_id", "instance"], keep="first")
    if dup.any():
        row = df[dup].iloc[0]
        raise IngestError(f"{path} line {row['line']}: duplicate label row for the same patient and instance")
    return df[["patient_id", "instance", "label", "line"]]


# --------------------------------------------------------------------------- pseudonyms

def pseudonym(patient_id: str, salt: str) -> str:
    """Salted-hash pseudonym: stable for a salt, not reversible without it."""
    digest = hmac.new(salt.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
    return "P" + digest[:10]


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


# --------------------------------------------------------------------------- ingest

@dataclass
class IngestPlan:
    series: Series
    pseudonym: str
    indices: list[int]  # positions (in sorted order) of labelled slices
    labels: list[str]


def plan_ingest(dicom_dir, labels_csv, classes, salt) -> list[IngestPlan]:
    """Validate the cohort from headers and the labels table; decode nothing."""
    labels = read_labels(labels_csv, classes)
    try:
        all_series = dicom_io.scan_series(dicom_dir)
    except DicomError as e:
        raise IngestError(str(e)) from e
    by_patient: dict[str, Series] = {}
    for s in all_series.values():
        if s.patient_id in by_patient:
            raise IngestError(
                f"{s.folder}: a second series for the same patient as {by_patient[s.patient_id].folder}; "
                "keep one axial T2 series per patient in the DICOM folder"
            )
        by_patient[s.patient_id] = s
    known = set(by_patient)
    missing = labels[~labels["patient_id"].isin(known)]
    if len(missing):
        row = missing.iloc[0]
        raise IngestError(f"{labels_csv} line {row['line']}: no DICOM series for this patient under {dicom_dir}")
    labelled = set(labels["patient_id"])
    for pid, s in sorted(by_patient.items(), key=lambda kv: str(kv[1].folder)):
        if pid not in labelled:
            raise IngestError(f"{s.folder}: series has no label in {labels_csv}")
    plans = []
    pseudonyms: dict[str, str] = {}
    for pid, group in labels.groupby("patient_id", sort=True):
        s = by_patient[pid]
        ps = pseudonym(pid, salt)
        if ps in pseudonyms.values():
            raise IngestError(f"{s.folder}: pseudonym collision; choose another salt")
        pseudonyms[pid] = ps
        by_instance: dict[int, int] = {}
        for i, h in enumerate(s.slices):
            if h.instance in by_instance:
                raise IngestError(f"{h.path}: InstanceNumber {h.instance} occurs twice in the series")
            by_instance[h.instance] = i
        chosen: dict[int, str] = {}
        for row in group.itertuples():
            if pd.isna(row.instance):
                for i in range(len(s.slices)):
                    chosen.setdefault(i, row.label)
                continue
            if int(row.instance) not in by_instance:
                raise IngestError(
                    f"{labels_csv} line {row.line}: instance {row.instance} is not in the series in {s.folder}"
                )
            chosen[by_instance[int(row.instance)]] = row.label  # explicit rows win over blanket rows
        idx = sorted(chosen)
        plans.append(IngestPlan(s, ps, idx, [chosen[i] for i in idx]))
    plans.sort(key=lambda p: p.pseudonym)
    return plans


def _series_masks(plan: IngestPlan, mask_dir, names: dict) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {"region": None, "lesion": None}
    if mask_dir is None:
        return out
    folder = Path(mask_dir) / plan.series.patient_id
    for kind in ("region", "lesion"):
        path = folder / names[kind]
        if path.exists():
            try:
                out[kind] = dicom_io.read_mask(path, plan.series)
            except DicomError as e:
                raise IngestError(str(e)) from e
    return out


def ingest(dicom_dir, labels_csv, mask_dir, out: dict, *, classes, field: int, salt: str,
           percentiles=(0.5, 99.5), mask_names=None) -> dict:
    """Build the slice store. ``out`` maps images, masks, manifest, report to output paths.

    Returns the report (counts and timings). On any error nothing is left at the output paths.
    """
    mask_names = mask_names or {"region": "region.nii.gz", "lesion": "lesion.nii.gz"}
    salt = resolve_salt(salt)
    t0 = time.perf_counter()
    plans = plan_ingest(dicom_dir, labels_csv, classes, salt)
    t_scan = time.perf_counter() - t0
    if mask_dir is not None and not Path(mask_dir).is_dir():
        raise IngestError(f"{mask_dir}: mask folder does not exist")
    n = sum(len(p.indices) for p in plans)
    log.info("%d series, %d labelled slices; header scan %.1fs", len(plans), n, t_scan)
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
                    raw = [dicom_io.read_pixels(s.slices[i].path) for i in plan.indices]
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
                vols = _series_masks(plan, mask_dir, mask_names)
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
            "seconds_total": round(total, 3),
            "seconds_header_scan": round(t_scan, 3),
            "seconds_decode": round(t_decode, 3),
            "seconds_resample_normalise": round(t_transform, 3),
            "seconds_masks": round(t_masks, 3),
            "seconds_convert_write": round(images.seconds + masks.seconds, 3),
        }
        accounted = t_scan + t_decode + t_transform + t_masks + images.seconds + masks.seconds
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


def _stratified_pick(groups: pd.Series, fraction: float, rng, classes) -> set:
    """Per stratum, ``round(n * fraction)`` patients; a stratum of two or more keeps one on each side."""
    picked = set()
    for cls in classes:
        pts = sorted(groups[groups == cls].index)
        if not pts:
            continue
        n = int(round(len(pts) * fraction))
        n = min(max(n, 1), len(pts) - 1) if len(pts) >= 2 else 0
        order = rng.permutation(len(pts))
        picked |= {pts[i] for i in order[:n]}
    return picked


def split_patients(manifest: pd.DataFrame, test_fraction: float, seed: int, classes) -> pd.DataFrame:
    """Stratified patient-level split: per stratum, ``round(n * test_fraction)`` patients go to test.

    Every stratum with two or more patients keeps at least one patient on each side.
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
