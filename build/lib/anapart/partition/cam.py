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

from anapart.io.files import pyplot, save_figure
from anapart.io.store import LESION_BIT, load_store
from anapart.learn import training
from anapart.learn.data import CropData
from anapart.learn.gradcam import gradcam, resize_maps, resolve_layer
from anapart.metrics.cam_scores import SCORE_COLUMNS, score_maps, to_slice
from anapart.metrics.evaluate import predicted
from anapart.partition.classify import model_from_meta


def cam_scores(model_path, crops_dir, cohort_dir, predictions_csv, *, target_layer: str, threshold: float,
               common_index=None, batch_size: int = 32, max_slices: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Grad-CAM scores of every test lesion slice of one model, each mapped for its true class, with
    ``correct`` (the model's top class is the label).

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
    cols = ["slice_id", "label", "correct", *SCORE_COLUMNS]
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
    out = pd.concat([chosen[["slice_id", "label", "correct"]], scores], axis=1)[cols]
    return out, dict(zip(chosen["slice_id"], slice_maps))


def overlay_figure(cohort_dir, scores: pd.DataFrame, maps: dict, title: str, out_png) -> None:
    """One example per class (the best-scored slice): the slice with the lesion outline, and its CAM."""
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
        axes[0, j].set_title(row.label + ("" if row.correct else " (misclassified)"), fontsize=9)
        axes[1, j].set_xlabel(f"score {row.score_continuous:.2f} (chance {row.chance:.2f})", fontsize=8)
    if len(picks) == 0:
        axes[0, 0].text(0.5, 0.5, "no test lesion slice", ha="center", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)
