"""An objective, chance-corrected version of the paper's 0/0.25/0.5/0.75/1 CAM score.

The paper's readers scored how much of a map's bright area lies on the lesion. Here the bright
area is the map at or above ``threshold`` (maps are scaled to [0, 1] per image by
pytorch-grad-cam); the continuous score is the share of that area inside the lesion, binned to
the nearest quarter for the paper's scale; the pointing value is the share of the map's energy
(sum) on the lesion. Maps of crops are placed back on the slice through the crop window, so
every format is scored against the same slice-level lesion mask.

That share has a chance level: a map that carries no information (uniform over its window)
scores exactly the lesion's share of the scored area, the crop window's part inside the slice.
A lesion fills far more of a 112-pixel window than of the full slice, so raw scores favour small
windows whatever the model learned. Every score therefore comes with its ``chance`` and the
chance-corrected ``corrected = (score - chance) / (1 - chance)`` (0: no better than an
uninformative map, 1: all bright area on the lesion; its floor, a map wholly off the lesion, is
-chance / (1 - chance)). Every format is also scored inside one common window (the smallest
format's window, seg112, placed on the slice) on the same pixel grid, where all formats share one
chance level (``common_*`` columns); there every map is rescaled to [0, 1] within the window before
thresholding, the same rule for every format (:func:`common_share`).

The statistics of these scores (summaries, tests between formats, reviewer agreement) are in
:mod:`anapart.metrics.cam_stats`; the maps themselves come from :mod:`anapart.learn.gradcam`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCALE = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
SCORE_COLUMNS = ["score_binned", "score_continuous", "pointing", "chance", "corrected", "common_score",
                 "common_chance", "common_corrected"]


def bright_share(cam: np.ndarray, lesion: np.ndarray, threshold: float) -> float:
    """Share of the map's bright area (cam >= threshold) that lies on the lesion; NaN if nothing is bright."""
    bright = cam >= threshold
    n = bright.sum()
    if n == 0:
        return float("nan")
    return float(np.logical_and(bright, lesion).sum() / n)


def binned(score: float) -> float:
    """The paper's reader scale: the nearest of 0, 0.25, 0.5, 0.75, 1."""
    if np.isnan(score):
        return float("nan")
    return float(SCALE[np.argmin(np.abs(SCALE - score))])


def pointing(cam: np.ndarray, lesion: np.ndarray) -> float:
    """Energy-based pointing game: the share of the map's total mass that falls on the lesion."""
    total = float(cam.sum())
    return float(cam[lesion.astype(bool)].sum() / total) if total > 0 else float("nan")


def to_slice(cam_crop: np.ndarray, y0: int, x0: int, field: int) -> np.ndarray:
    """Place a crop-sized map on a ``field`` x ``field`` slice at window (y0, x0); zero elsewhere.

    The inverse of :func:`anapart.io.windows.extract`: parts of the window outside the slice (padding)
    are dropped.
    """
    out = np.zeros((field, field), dtype=np.float32)
    ys, xs = clip_window(y0, x0, cam_crop.shape[0], field)
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys, xs] = cam_crop[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return out


def clip_window(y0: int, x0: int, size: int, field: int) -> tuple[slice, slice]:
    """The part of window (y0, x0, size) that lies inside a ``field`` x ``field`` slice."""
    return slice(max(y0, 0), min(y0 + size, field)), slice(max(x0, 0), min(x0 + size, field))


def chance_level(lesion: np.ndarray, y0: int, x0: int, size: int) -> float:
    """What a map without information scores in this window: the lesion's share of the window's
    part inside the slice (a uniform map's bright area is that whole part)."""
    ys, xs = clip_window(y0, x0, size, lesion.shape[0])
    area = lesion[ys, xs]
    return float(area.mean()) if area.size else float("nan")


def corrected(score: float, chance: float) -> float:
    """(score - chance) / (1 - chance): 0 for an uninformative map, 1 for all bright area on the lesion."""
    if np.isnan(score) or np.isnan(chance) or chance >= 1:
        return float("nan")
    return float((score - chance) / (1 - chance))


FLAT = 1e-6  # a map whose range inside the common window is at most this share of its maximum is flat there


def common_share(slice_map: np.ndarray, lesion: np.ndarray, common: tuple[int, int, int], threshold: float) -> float:
    """Bright share inside the common window, the map rescaled to [0, 1] within that window first.

    Every format's map gets the same rule (seg112's map already spans [0, 1] in its window, while a
    full or seg224 map thresholded against its whole-map maximum often has no bright pixel there).
    A map flat inside the window (range at most ``FLAT`` of its maximum, or zero) has no bright
    area to place: NaN.
    """
    ys, xs = clip_window(*common, lesion.shape[0])
    part = np.asarray(slice_map[ys, xs], np.float64)
    if not part.size:
        return float("nan")
    lo, span = part.min(), np.ptp(part)
    if span <= FLAT * max(float(np.abs(slice_map).max()), 0.0):
        return float("nan")
    return bright_share((part - lo) / span, lesion[ys, xs], threshold)


def window_scores(slice_map: np.ndarray, lesion: np.ndarray, own: tuple[int, int, int],
                  common: tuple[int, int, int], threshold: float) -> dict:
    """Every score of one slice-level map: in its own crop window and in the common window.

    ``own`` and ``common`` are windows (y0, x0, size) on the slice; the map is zero outside its own
    window, so its bright share over the slice is its bright share in that window. The common
    score is :func:`common_share` (the map rescaled within the common window).
    """
    s = bright_share(slice_map, lesion, threshold)
    ch = chance_level(lesion, *own)
    cs = common_share(slice_map, lesion, common, threshold)
    cch = chance_level(lesion, *common)
    return {"score_binned": binned(s), "score_continuous": s, "pointing": pointing(slice_map, lesion), "chance": ch,
            "corrected": corrected(s, ch), "common_score": cs, "common_chance": cch, "common_corrected": corrected(cs, cch)}


def score_maps(slice_maps: np.ndarray, lesions: np.ndarray, threshold: float, windows=None,
               common_windows=None) -> pd.DataFrame:
    """Scores of slice-level maps (:func:`window_scores`); windows default to the whole slice."""
    field = lesions.shape[-1]
    whole = (0, 0, field)
    windows = windows if windows is not None else [whole] * len(slice_maps)
    common_windows = common_windows if common_windows is not None else [whole] * len(slice_maps)
    rows = [window_scores(m, les, own, com, threshold)
            for m, les, own, com in zip(slice_maps, lesions, windows, common_windows)]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)
