"""Study A's Grad-CAM step: maps of every test lesion slice for its true class, placed
back on the slice through the crop window and scored against the slice's lesion mask
(:mod:`anapart.metrics.cam_scores`), and one example figure per model.

Every model maps the same slices (the paper mapped only each model's correctly classified ones, so
its formats were scored on different slices: 2 maps for one model, 52 for another); whether the
model got the slice right is the column ``correct``, and the paper's test keeps to those.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anapart import CLASSES
from anapart.io.figstyle import CAM_MAP, CAM_OUTLINE, colourbar, display, pyplot, save_figure
from anapart.io.store import LESION_BIT, load_store
from anapart.learn import training
from anapart.learn.data import CropData
from anapart.learn.gradcam import gradcam, resize_maps, resolve_layer
from anapart.metrics.cam_scores import SCORE_COLUMNS, flat_maps, score_maps, to_slice
from anapart.metrics.evaluate import predicted
from anapart.partition.classify import model_from_meta


def cam_scores(model_path, crops_dir, cohort_dir, predictions_csv, *, target_layer: str, threshold: float,
               common_index=None, batch_size: int = 32, max_slices: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Grad-CAM scores of every test lesion slice of one model, each mapped for its true class, with
    ``correct`` (the model's top class is the label) and ``map_flat`` (a map that singles out no
    location, :func:`anapart.metrics.cam_scores.flat_maps`: it has no score).

    ``common_index`` is the ``index.csv`` of the format whose window every format is also scored
    in (seg112); None scores the common window as the whole slice. Returns the score table and,
    for figures, the slice-level maps keyed by slice_id.
    """
    manifest, images, masks = load_store(cohort_dir)
    pred = pd.read_csv(predictions_csv)
    model, meta = training.load_model(model_path, model_from_meta)
    classes = meta["classes"]
    pred["predicted"] = predicted(pred, classes)
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    has_lesion = manifest.set_index("slice_id")["has_lesion_mask"].astype(bool)
    chosen = pred[pred["slice_id"].map(has_lesion)].reset_index(drop=True)
    chosen["correct"] = chosen["predicted"] == chosen["label"]
    if max_slices is not None:
        chosen = chosen.iloc[:max_slices]
    cols = ["slice_id", "label", "correct", *SCORE_COLUMNS, "map_flat"]
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
    out = pd.concat([chosen[["slice_id", "label", "correct"]], scores], axis=1).assign(map_flat=flat_maps(maps))[cols]
    return out, dict(zip(chosen["slice_id"], slice_maps))


def pick_examples(scores: pd.DataFrame) -> pd.DataFrame:
    """One example per class: the correctly classified slice with the highest chance-corrected score
    when the class has one, else its best-scored slice (``correct`` False: the figure says so). A
    flat map has no score and is picked last."""
    if scores.empty:
        return scores
    s = scores.assign(_right=scores["correct"].astype(str).str.lower().isin(["true", "1"]),
                      _score=pd.to_numeric(scores["corrected"], errors="coerce").fillna(-np.inf))
    s = s.sort_values(["label", "_right", "_score", "slice_id"], ascending=[True, False, False, True], kind="mergesort")
    picks = s.groupby("label", sort=False).head(1).drop(columns=["_right", "_score"])
    order = {c: i for i, c in enumerate(CLASSES)}  # the paper's class order, not the alphabet
    return picks.sort_values("label", key=lambda c: c.map(order).fillna(len(order)), kind="mergesort")


def overlay_figure(cohort_dir, scores: pd.DataFrame, maps: dict, title: str, out_png) -> None:
    """One example per class (:func:`pick_examples`): the slice with the lesion outline, and its
    Grad-CAM map on a perceptual scale with a colour bar; a flat map is said to be flat, not drawn."""
    plt = pyplot()

    manifest, images, masks = load_store(cohort_dir)
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    picks = pick_examples(scores)
    n = max(len(picks), 1)
    fig, axes = plt.subplots(2, n, figsize=(2.1 * n + 0.9, 5.0), squeeze=False, constrained_layout=True)
    heat = None
    for j, row in enumerate(picks.itertuples()):
        r = row_of[row.slice_id]
        img = np.asarray(images[r], np.float32)
        les = (masks[r] & LESION_BIT) > 0
        flat = str(getattr(row, "map_flat", False)).lower() in ("true", "1")
        for ax in axes[:, j]:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        if flat:
            axes[1, j].text(0.5, 0.04, "flat map:\nno location singled out", ha="center", va="bottom", fontsize=8,
                            color="black", transform=axes[1, j].transAxes,
                            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
        else:
            heat = axes[1, j].imshow(maps[row.slice_id], cmap=CAM_MAP, alpha=0.55, vmin=0, vmax=1)
        for ax in axes[:, j]:
            if les.any():
                ax.contour(les, levels=[0.5], colors=[CAM_OUTLINE], linewidths=1.0)
        right = str(row.correct).lower() in ("true", "1")
        axes[0, j].set_title(display(row.label) + ("\n(correct)" if right else "\n(misclassified)"))
        axes[1, j].set_xlabel("flat map: no score" if flat else
                              f"score {row.score_continuous:.2f}\n(chance {row.chance:.2f})")
    if len(picks) == 0:
        axes[0, 0].text(0.5, 0.5, "no test lesion slice", ha="center", va="center", fontsize=8)
        for ax in axes.flat:
            ax.axis("off")
    if heat is not None:
        colourbar(fig, heat, axes[1, :].tolist(), "Grad-CAM (scaled per map)")
    fig.suptitle(title)
    save_figure(fig, out_png)
