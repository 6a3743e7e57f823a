"""Grad-CAM maps and an objective, chance-corrected version of the paper's 0/0.25/0.5/0.75/1 CAM score.

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
:mod:`anapart.cam_stats`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger("anapart.cam")

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

    The inverse of :func:`anapart.crop.extract`: parts of the window outside the slice (padding)
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


def resolve_layer(model, path: str):
    """A submodule by dotted path (``features.denseblock3``, ``blocks.4``), with a clear error."""
    import torch

    module = model
    for part in path.split("."):
        if not hasattr(module, part) and not (part.isdigit() and isinstance(module, torch.nn.Sequential)):
            raise KeyError(f"target layer '{path}' not found in {type(model).__name__} (stopped at '{part}')")
        module = module[int(part)] if part.isdigit() and isinstance(module, torch.nn.Sequential) else \
            getattr(module, part)
    return module


def gradcam(model, layer, inputs, targets: list[int], batch_size: int = 32) -> np.ndarray:
    """Grad-CAM (pytorch-grad-cam) for each input and its target class: (n, H, W) in [0, 1]."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for b in range(0, len(inputs), batch_size):
            x = inputs[b:b + batch_size]
            t = [ClassifierOutputTarget(int(c)) for c in targets[b:b + batch_size]]
            maps.append(cam(input_tensor=x, targets=t))
    return np.concatenate(maps) if maps else np.zeros((0,) + tuple(inputs.shape[-2:]), np.float32)


def resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    if maps.shape[-1] == size:
        return maps
    t = torch.from_numpy(maps)[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


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


def cam_scores(model_path, crops_dir, cohort_dir, predictions_csv, *, target_layer: str, threshold: float,
               common_index=None, batch_size: int = 32, max_slices: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Grad-CAM scores of every correctly classified test lesion slice of one model.

    ``common_index`` is the ``index.csv`` of the format whose window every format is also scored
    in (seg112); None scores the common window as the whole slice. Returns the score table and,
    for figures, the slice-level maps keyed by slice_id.
    """
    from pathlib import Path

    from . import training
    from .classify import CropData, model_from_meta
    from .evaluate import predicted
    from .store import LESION_BIT, load_store

    manifest, images, masks = load_store(cohort_dir)
    pred = pd.read_csv(predictions_csv)
    model, meta = training.load_model(model_path, model_from_meta)
    classes = meta["classes"]
    pred["predicted"] = predicted(pred, classes)
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    has_lesion = manifest.set_index("slice_id")["has_lesion_mask"].astype(bool)
    chosen = pred[(pred["predicted"] == pred["label"]) & pred["slice_id"].map(has_lesion)].reset_index(drop=True)
    if max_slices is not None:
        chosen = chosen.iloc[:max_slices]
    cols = ["slice_id", "label", *SCORE_COLUMNS]
    if chosen.empty:
        return pd.DataFrame(columns=cols), {}
    data = CropData(crops_dir, chosen[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    inputs = data.inputs(np.arange(len(data)))
    layer = resolve_layer(model, target_layer)
    maps = gradcam(model, layer, inputs, [classes.index(c) for c in chosen["label"]], batch_size)
    index = pd.read_csv(Path(crops_dir) / "index.csv").set_index("slice_id")
    common = pd.read_csv(common_index).set_index("slice_id") if common_index is not None else None
    field = int(images.shape[-1])
    slice_maps, lesions, windows, common_windows = [], [], [], []
    for sid, m in zip(chosen["slice_id"], maps):
        w = index.loc[sid]
        own = (int(w["y0"]), int(w["x0"]), int(w["size"]))
        crop_map = resize_maps(m[None], own[2])[0]
        slice_maps.append(to_slice(crop_map, own[0], own[1], field))
        lesions.append((masks[row_of[sid]] & LESION_BIT) > 0)
        windows.append(own)
        c = common.loc[sid] if common is not None else None
        common_windows.append((int(c["y0"]), int(c["x0"]), int(c["size"])) if c is not None else (0, 0, field))
    scores = score_maps(np.stack(slice_maps), np.stack(lesions), threshold, windows, common_windows)
    out = pd.concat([chosen[["slice_id", "label"]], scores], axis=1)[cols]
    return out, dict(zip(chosen["slice_id"], slice_maps))


def overlay_figure(cohort_dir, scores: pd.DataFrame, maps: dict, title: str, out_png) -> None:
    """One example per class (the best-scored slice): the slice with the lesion outline, and its CAM."""
    from .store import LESION_BIT, load_store
    from .files import pyplot, save_figure

    plt = pyplot()

    manifest, images, masks = load_store(cohort_dir)
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    picks = (scores.sort_values("corrected", ascending=False).groupby("label", sort=True).head(1)
             if len(scores) else scores)
    n = max(len(picks), 1)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for j, row in enumerate(picks.itertuples()):
        r = row_of[row.slice_id]
        img = np.asarray(images[r], np.float32)
        les = (masks[r] & LESION_BIT) > 0
        for ax in axes[:, j]:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.contour(les, levels=[0.5], colors=["red"], linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, j].imshow(maps[row.slice_id], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[0, j].set_title(row.label, fontsize=9)
        axes[1, j].set_xlabel(f"score {row.score_continuous:.2f} (chance {row.chance:.2f})", fontsize=8)
    if len(picks) == 0:
        axes[0, 0].text(0.5, 0.5, "no correctly classified lesion slice", ha="center", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)


def staging_cam_examples(model_path, patches_dir, pred: pd.DataFrame, classes, out_png, out_csv, *,
                         threshold: float) -> pd.DataFrame:
    """Study B's Grad-CAM (Fig. 7), with study A's maps and score: the ROI share of the bright map of
    every test patch, and a panel of one correctly staged tumour and node patch per stage (the most
    confident), the heatmap over the patch."""
    from pathlib import Path

    from . import training
    from .classify import CropData
    from .evaluate import predicted
    from .files import pyplot, save_figure, write_csv
    from .staging_models import model_from_meta

    model, meta = training.load_model(model_path, model_from_meta)
    for p in model.parameters():  # a frozen backbone carries no gradient to its feature map otherwise
        p.requires_grad_(True)
    data = CropData(patches_dir, pred[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    layer = resolve_layer(model, meta["cam_layer"])
    targets = [list(classes).index(c) for c in pred["label"]]
    maps = resize_maps(gradcam(model, layer, data.inputs(np.arange(len(data))), targets), data.images.shape[-1])
    masks = np.load(Path(patches_dir) / "masks.npy", mmap_mode="r")
    share = [bright_share(m, np.asarray(masks[r]) > 0, threshold) for m, r in zip(maps, data.rows)]
    out = pred[["slice_id", "label", "kind"]].assign(roi_share=share)
    write_csv(out_csv, out)
    plt = pyplot()
    kinds = ["tumour", "node"]
    fig, axes = plt.subplots(len(kinds), len(classes), figsize=(2.6 * len(classes), 2.6 * len(kinds)), squeeze=False)
    pv = predicted(pred, classes)
    conf = pred[[f"p_{c}" for c in classes]].max(axis=1).to_numpy()
    for i, k in enumerate(kinds):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            ax.axis("off")
            ok = np.flatnonzero((pred["kind"].to_numpy() == k) & (pred["label"].to_numpy() == c) & (pv == c))
            if not len(ok):
                ax.set_title(f"{k}, stage {c}: none correct", fontsize=8)
                continue
            r = ok[np.argmax(conf[ok])]
            ax.imshow(np.asarray(data.images[data.rows[r]], np.float32), cmap="gray")
            ax.imshow(maps[r], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            ax.contour(np.asarray(masks[data.rows[r]]) > 0, levels=[0.5], colors="white", linewidths=0.6)
            ax.set_title(f"{k}, stage {c} (p={conf[r]:.2f})", fontsize=8)
    fig.suptitle(f"Grad-CAM, {meta['model']}", fontsize=9)
    save_figure(fig, out_png)
    return out
