"""Study B's Grad-CAM step (the paper's Fig. 7): heatmaps of every test patch for its true stage,
scored as the share of the bright map on the ROI (the same score as study A's,
:func:`anapart.metrics.cam_scores.bright_share`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anapart.io.figstyle import CAM_MAP, CAM_OUTLINE, colourbar, display, pyplot, save_figure
from anapart.io.files import write_csv
from anapart.io.npy import open_npy
from anapart.learn import training
from anapart.learn.data import CropData
from anapart.learn.gradcam import gradcam, resize_maps, resolve_layer
from anapart.metrics.cam_scores import bright_share, flat_maps
from anapart.metrics.evaluate import predicted
from anapart.staging.models import model_from_meta


def staging_cam_examples(model_path, patches_dir, pred: pd.DataFrame, classes, out_png, out_csv, *,
                         threshold: float) -> pd.DataFrame:
    """Study B's Grad-CAM (Fig. 7), with study A's maps and score: the ROI share of the bright map of
    every test patch (``map_flat``: a map that singles out nothing, no share), and a panel of one
    tumour and one node patch per stage: the most confident correctly staged one, else the most
    confident one, labelled misclassified; the heatmap over the patch.

    The layer is the rebuilt model's (:attr:`TransferNet.cam_layer`: a stage where the map keeps a
    grid at this input size), so a model saved before that choice is mapped at it too."""
    model, meta = training.load_model(model_path, model_from_meta)
    for p in model.parameters():  # a frozen backbone carries no gradient to its feature map otherwise
        p.requires_grad_(True)
    data = CropData(patches_dir, pred[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    layer_name = getattr(model, "cam_layer", meta["cam_layer"])
    layer = resolve_layer(model, layer_name)
    targets = [list(classes).index(c) for c in pred["label"]]
    maps = resize_maps(gradcam(model, layer, data.inputs(np.arange(len(data))), targets), data.images.shape[-1])
    flat = flat_maps(maps)
    masks = open_npy(Path(patches_dir) / "masks.npy")
    share = [np.nan if f else bright_share(m, np.asarray(masks[r]) > 0, threshold)
             for m, r, f in zip(maps, data.rows, flat)]
    out = pred[["slice_id", "label", "kind"]].assign(roi_share=share, map_flat=flat)
    write_csv(out_csv, out)
    plt = pyplot()
    kinds = ["tumour", "node"]
    fig, axes = plt.subplots(len(kinds), len(classes), figsize=(2.5 * len(classes) + 0.9, 2.7 * len(kinds)),
                             squeeze=False, constrained_layout=True)
    pv = predicted(pred, classes)
    advanced = list(classes)[-1]
    heat = None
    for i, k in enumerate(kinds):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            mine = (pred["kind"].to_numpy() == k) & (pred["label"].to_numpy() == c)
            right = np.flatnonzero(mine & (pv == c))
            pool = right if len(right) else np.flatnonzero(mine)
            if not len(pool):
                ax.axis("off")
                ax.set_title(f"{display(k)}, stage {c}:\nno test patch")
                continue
            conf = pred[f"p_{c}"].to_numpy()[pool]
            r = pool[np.argmax(conf)]
            ax.imshow(np.asarray(data.images[data.rows[r]], np.float32), cmap="gray")
            if flat[r]:
                ax.text(0.5, 0.04, "flat map:\nno location singled out", ha="center", va="bottom", fontsize=8,
                        transform=ax.transAxes, bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
            else:
                heat = ax.imshow(maps[r], cmap=CAM_MAP, alpha=0.55, vmin=0, vmax=1)
            ax.contour(np.asarray(masks[data.rows[r]]) > 0, levels=[0.5], colors=[CAM_OUTLINE], linewidths=1.0)
            p_adv = float(pred[f"p_{advanced}"].iat[r])
            verdict = "" if len(right) else ", misclassified"
            ax.set_title(f"{display(k)}, stage {c}{verdict}\nP({advanced}) = {p_adv:.2f}")
    if heat is not None:
        colourbar(fig, heat, axes.ravel().tolist(), "Grad-CAM (scaled per map)")
    n_flat = int(flat.sum())
    fig.suptitle(f"Grad-CAM, {display(meta['model'])} at {layer_name}"
                 + (f" ({n_flat} of {len(flat)} maps flat)" if n_flat else ""))
    save_figure(fig, out_png)
    return out
