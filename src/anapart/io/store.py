"""The slice store: one cohort's labelled slices as memory-mappable ``.npy`` files and a manifest.

``images.npy`` holds float16 slices on a square field, each series scaled to [0, 1] by its own
robust intensity window; ``masks.npy`` the region and lesion bit planes packed 8 pixels a byte
(:class:`MaskStore`); ``manifest.csv`` one row per slice (pseudonymised). :func:`build_store`
streams one series at a time with plain writes (:class:`NpyStreamWriter`), so peak memory is one
series whatever the cohort size; :func:`load_store` opens it read-only.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from anapart.io import dicom, nifti
from anapart.io.dicom import DicomError, Series
from anapart.io.errors import IngestError
from anapart.io.npy import open_npy
from anapart.io.files import atomic_paths
from anapart.io.fingerprint import STORE_HASH, store_hasher, write_store_fingerprint

log = logging.getLogger("anapart.store")

REGION_BIT = 1  # bit flags of MaskStore rows (masks.npy holds them as packed planes)
LESION_BIT = 2
MASK_KINDS = ("region", "lesion")


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


def intensity_window(slices: list[np.ndarray], percentiles) -> tuple[float, float]:
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
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        # the file's content fingerprint, hashed as it is written, in a thread of its own (hashlib
        # releases the GIL): the hash overlaps the decoding and writing of the next block
        self.hash = store_hasher()
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="store-hash")
        self._pending = None
        self.rows, self.size = 0, 0
        self.seconds = 0.0  # time spent converting and writing, for the ingest report
        self.seconds_hash = 0.0  # of which waiting for the hash
        t0 = time.perf_counter()
        self._write(buf.getvalue())
        self.seconds += time.perf_counter() - t0

    def _write(self, data) -> None:
        self.fh.write(data)
        t0 = time.perf_counter()
        self._hashed()  # one block in flight at most: bounded memory, blocks hashed in order
        self._pending = self._hasher.submit(self.hash.update, data)
        self.seconds_hash += time.perf_counter() - t0
        self.size += len(data)

    def _hashed(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def fingerprint(self) -> dict:
        """What :func:`anapart.io.fingerprint.file_fingerprint` gives for the finished file."""
        self._hashed()
        return {"bytes": self.size, STORE_HASH: self.hash.hexdigest()}

    def append(self, block: np.ndarray) -> None:
        """Write ``block``'s rows; the caller must not change ``block`` afterwards (it is hashed in the
        background until the next append)."""
        t0 = time.perf_counter()
        block = np.ascontiguousarray(block, dtype=self.dtype)
        assert block.shape[1:] == self.shape[1:], (block.shape, self.shape)
        self._write(memoryview(block).cast("B"))
        self.rows += block.shape[0]
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        """Flush to disk before the caller renames the file into place (durable, and timed fairly)."""
        if not self.fh.closed:
            t0 = time.perf_counter()
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            t1 = time.perf_counter()
            self._hashed()
            self.seconds_hash += time.perf_counter() - t1
            self.seconds += time.perf_counter() - t0
        self._hasher.shutdown(wait=True)
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.path}: wrote {self.rows} rows, expected {self.shape[0]}")



# --------------------------------------------------------------------------- building and opening the store

@dataclass
class IngestPlan:
    """One patient's part of the store: the chosen series, its pseudonym, the labelled slices and mask
    files. Built and checked by :mod:`anapart.cohort.preflight`; here because the store reads it."""

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


# --------------------------------------------------------------------------- DICOM or NIfTI, one interface

def read_errors(series: Series) -> tuple[type, ...]:
    """What reading a series' files raises for bad input: DicomError, and for NIfTI also SimpleITK's
    RuntimeError and the geometry ValueError (both name the file)."""
    return (DicomError, ValueError, RuntimeError) if series.transfer_syntax == nifti.SOURCE else (DicomError,)


def read_series_slices(series: Series, indices) -> list[np.ndarray]:
    """Decode the slices ``indices`` (sorted positions) of a DICOM or NIfTI series."""
    headers = [series.slices[i] for i in indices]
    return nifti.read_slices(headers) if series.transfer_syntax == nifti.SOURCE else dicom.read_slices(headers)


def check_series_mask(ref, series: Series) -> str | None:
    """The problem of a mask file (or an nnU-Net label map and its values) on ``series``' grid, or None."""
    if series.transfer_syntax == nifti.SOURCE:
        return nifti.check_mask(nifti.split_mask_ref(ref)[0], series)
    return dicom.check_mask(ref, series)


def read_series_mask(ref, series: Series, binary: bool = True) -> np.ndarray:
    if series.transfer_syntax == nifti.SOURCE:
        path, values = nifti.split_mask_ref(ref)
        return nifti.read_mask(path, series, binary=binary, values=values)
    return dicom.read_mask(ref, series, binary=binary)


def _series_masks(plan: IngestPlan) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {}
    for kind in MASK_KINDS:
        path = plan.masks.get(kind)
        try:
            out[kind] = read_series_mask(path, plan.series) if path else None
        except read_errors(plan.series) as e:
            raise IngestError(str(e)) from e
    return out


def build_store(plans: list[IngestPlan], out: dict, *, classes, field: int, percentiles, skipped: dict,
                t_plan: float) -> dict:
    """Decode, resample and write the planned slices, one series at a time (the store format of
    :func:`load_store`). Returns the report; on any error nothing is left at the output paths.
    ``out["fingerprint"]``, if given: the store's content fingerprint (images and masks), written
    beside it once the store is in place.

    ``t_plan``: seconds spent getting the plans (reading the plan file, or the whole check when
    :func:`anapart.cohort.preflight.ingest` ran it), reported as ``seconds_plan``.
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
                    raw = read_series_slices(s, plan.indices)
                except read_errors(s) as e:
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
            # of which the store's content fingerprint (hashed as written)
            "seconds_fingerprint": round(images.seconds_hash + masks.seconds_hash, 3),
        }
        accounted = t_plan + t_decode + t_transform + t_masks + images.seconds + masks.seconds
        report["seconds_other"] = round(total - accounted, 3)  # bookkeeping: manifest, loops, logging
        rep_p.write_text(json.dumps(report, indent=2) + "\n")
    if out.get("fingerprint"):  # beside the store, once it is in place (anapart.io.fingerprint)
        write_store_fingerprint(out["fingerprint"], {Path(out[k]).name: w.fingerprint()
                                                     for k, w in (("images", images), ("masks", masks))})
    log.info("ingest done: %s", report)
    return report


def load_store(cohort_dir) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Open the slice store read-only, memory-mapped: (manifest, images, masks), each array checked
    against its header and the manifest's row count (:func:`open_npy`)."""
    d = Path(cohort_dir)
    manifest = pd.read_csv(d / "manifest.csv")
    return (manifest, open_npy(d / "images.npy", len(manifest)),
            MaskStore(open_npy(d / "masks.npy", len(manifest))))
