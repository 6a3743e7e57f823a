"""The anatomical partition: squares cut around the predicted region's centroid.

Policy (documented in the README):
- Window: the paper extends the region's geometric centre 56 (112) pixels up, down, left and
  right; here the centre is rounded to a pixel ``c`` and the window is rows/cols
  ``[c - size//2, c - size//2 + size)``. Sizes are the paper's 112/224 of a 512 field, scaled to
  the configured field.
- Border: a window that leaves the slice is zero-padded (0 is background after normalisation),
  never shifted, so the region's centre always sits at the crop's centre. Padded pixels are
  counted in the QC table.
- Empty prediction: the window falls back to the median centroid of the *training* patients'
  annotated regions (a population prior that uses no test labels); the slice is flagged
  ``fallback`` in the QC table and the count is logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anapart.io.files import atomic_paths
from anapart.io.fingerprint import file_fingerprint, write_store_fingerprint
from anapart.io.store import REGION_BIT, NpyStreamWriter, load_store
from anapart.io.windows import extract

log = logging.getLogger("anapart.crop")

REFERENCE_FIELD = 512


@dataclass(frozen=True)
class FullSlice:
    """The 'full' format: the whole slice, no cropping; its store is the cohort store itself."""

    crops = False  # nothing is cut, so the QC table has no padding column for it

    def side(self, field: int) -> int:
        return field

    def write(self, cohort_dir, images, centers, size: int, pad_value: float, images_path: Path) -> dict:
        """Hard-link the cohort's images.npy; every window is the slice (nothing padded)."""
        _link_or_copy(Path(cohort_dir) / "images.npy", images_path)
        return {"y0": 0, "x0": 0, "padded_px": 0, "fingerprint": file_fingerprint(images_path)}


@dataclass(frozen=True)
class Partition:
    """A seg<N> format: an N/512 square (at least 8 px) around the predicted region's centre."""

    side_512: int  # side on the reference 512 field (config crop.sizes)
    crops = True

    def side(self, field: int) -> int:
        return max(8, int(round(self.side_512 * field / REFERENCE_FIELD)))

    def write(self, cohort_dir, images, centers, size: int, pad_value: float, images_path: Path) -> dict:
        """Cut and stream one crop per slice; the windows and zero-padded pixels per slice."""
        writer = NpyStreamWriter(images_path, (len(centers), size, size), np.float16)
        wins, padded = [], []
        for r, center in enumerate(centers):
            y0, x0 = window(center, size)
            crop, npad = extract(np.asarray(images[r]), y0, x0, size, pad_value)
            writer.append(crop[None])
            wins.append((y0, x0))
            padded.append(npad)
        writer.close()
        return {"y0": [w[0] for w in wins], "x0": [w[1] for w in wins], "padded_px": padded,
                "fingerprint": writer.fingerprint()}


def format_registry(sizes: dict) -> dict:
    """The registry of image formats: 'full', and one :class:`Partition` per entry of ``crop.sizes``."""
    return {"full": FullSlice(), **{name: Partition(int(side)) for name, side in sizes.items()}}


def image_format(fmt: str, sizes: dict):
    """Format ``fmt`` of the registry; an unknown name is an error that lists the known ones."""
    known = format_registry(sizes)
    if fmt not in known:
        raise ValueError(f"unknown image format '{fmt}' (known: {', '.join(known)})")
    return known[fmt]


def crop_size(fmt: str, field: int, sizes: dict) -> int:
    """Side of format ``fmt`` at ``field``: 'full' is the slice, seg<N> is N/512 of it (at least 8 px)."""
    return image_format(fmt, sizes).side(field)


def centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Geometric centre (row, col) of a binary mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return float(ys.mean()), float(xs.mean())


def window(center: tuple[float, float], size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` square centred on ``center``."""
    cy, cx = (int(np.floor(c + 0.5)) for c in center)  # round half up, no banker's rounding
    return cy - size // 2, cx - size // 2


def to_slice_coords(points_yx: np.ndarray, y0: int, x0: int) -> np.ndarray:
    """Map crop pixel coordinates back to slice coordinates (the inverse of :func:`extract`)."""
    return np.asarray(points_yx) + np.array([y0, x0])


def prior_center(manifest: pd.DataFrame, masks, patients: pd.DataFrame, field: int) -> tuple[float, float]:
    """Median centroid of the training patients' annotated regions; the slice centre if there are none."""
    side = manifest["patient"].map(patients.set_index("patient")["split"])
    rows = manifest.index[manifest["has_region_mask"].astype(bool) & (side == "train")]
    cents = [c for c in (centroid(np.asarray(masks[r]) & REGION_BIT) for r in rows) if c is not None]
    if not cents:
        return ((field - 1) / 2, (field - 1) / 2)
    return tuple(float(v) for v in np.median(np.array(cents), axis=0))


def make_crops(cohort_dir, patients_csv, predicted: list, out: dict, qc_path, *, formats, sizes: dict,
               pad_value: float = 0.0, training_cohort=None, prior=None) -> pd.DataFrame:
    """Write one store per format and the QC table.

    ``predicted`` holds, for every manifest row, ``(centroid or None, area in px)`` of the predicted
    region at the stored field. ``out[fmt]`` is a dict with 'images' and 'index' paths (and
    optionally 'fingerprint': the store's content fingerprint, written beside it); 'full' is
    hard-linked to the cohort store. ``training_cohort``: the store whose training patients give
    the fallback centre when it is not ``cohort_dir`` (an external cohort: its slices are all
    "external" in the QC table, and none of its masks is used but for the centroid error).
    ``prior``: that fallback centre given as (row, col) instead (a model package carries the one
    :func:`prior_center` computed on its training cohort; ``patients_csv`` is then unused).
    """
    manifest, images, masks = load_store(cohort_dir)
    n, field = len(manifest), int(images.shape[-1])
    if len(predicted) != n:
        raise ValueError(f"{len(predicted)} predictions for {n} slices")
    patients = pd.read_csv(patients_csv) if prior is None else None
    if prior is not None:
        prior = tuple(float(v) for v in prior)
        side = pd.Series("external", index=manifest.index)
    elif training_cohort is None:
        prior = prior_center(manifest, masks, patients, field)
        side = manifest["patient"].map(patients.set_index("patient")["split"])
    else:
        t_manifest, _, t_masks = load_store(training_cohort)
        if int(t_masks.shape[-1]) != field:
            raise ValueError(f"{cohort_dir} has a field of {field} px, the training cohort {training_cohort} "
                             f"{t_masks.shape[-1]} px")
        prior = prior_center(t_manifest, t_masks, patients, field)
        side = pd.Series("external", index=manifest.index)
    qc_rows, centers = [], []
    for r, (c, area) in enumerate(predicted):
        fallback = c is None
        c = prior if fallback else c
        centers.append(c)
        true_c = centroid(np.asarray(masks[r]) & REGION_BIT) if manifest.at[r, "has_region_mask"] else None
        err = float(np.hypot(c[0] - true_c[0], c[1] - true_c[1])) if true_c is not None else np.nan
        qc_rows.append({
            "slice_id": manifest.at[r, "slice_id"], "split": side.iat[r], "pred_area_px": int(area),
            "fallback": fallback, "center_y": round(c[0], 2), "center_x": round(c[1], 2),
            "true_center_y": round(true_c[0], 2) if true_c else np.nan,
            "true_center_x": round(true_c[1], 2) if true_c else np.nan,
            "centroid_error_px": round(err, 3) if true_c else np.nan,
        })
    n_fallback = sum(q["fallback"] for q in qc_rows)
    if n_fallback:
        log.warning("%d of %d slices had an empty predicted region; used the training prior centre %s",
                    n_fallback, n, tuple(round(v, 1) for v in prior))
    keys = [(fmt, k) for fmt in formats for k in ("images", "index")]
    prints = {}
    with atomic_paths(*(out[f][k] for f, k in keys), qc_path) as tmps:
        tmp = dict(zip(keys, tmps[:-1]))
        for fmt in formats:
            kind = image_format(fmt, sizes)
            size = kind.side(field)
            cols = kind.write(cohort_dir, images, centers, size, pad_value, tmp[(fmt, "images")])
            prints[fmt] = {Path(out[fmt]["images"]).name: cols.pop("fingerprint")}
            index = pd.DataFrame({"slice_id": manifest["slice_id"], "row": np.arange(n)}).assign(
                y0=cols["y0"], x0=cols["x0"], size=size, padded_px=cols["padded_px"])
            if kind.crops:  # the QC table counts the zero-padded pixels of every cut format
                for q, npad in zip(qc_rows, cols["padded_px"]):
                    q[f"{fmt}_padded_px"] = npad
            index.to_csv(tmp[(fmt, "index")], index=False, lineterminator="\n")
            log.info("%s: %d crops of %dx%d", fmt, n, size, size)
        qc = pd.DataFrame(qc_rows)
        qc.to_csv(tmps[-1], index=False, lineterminator="\n")
    for fmt in formats:  # beside each store once it is in place (anapart.io.fingerprint)
        if out[fmt].get("fingerprint"):
            write_store_fingerprint(out[fmt]["fingerprint"], prints[fmt])
    err = qc["centroid_error_px"].dropna()
    if len(err):
        log.info("centroid error vs true region: median %.2f px, mean %.2f px (n=%d); fallbacks %d",
                 err.median(), err.mean(), len(err), n_fallback)
    return qc


def _link_or_copy(src: Path, dst: Path) -> None:
    """The 'full' store is the cohort store itself: hard-link it (copy across filesystems)."""
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)
