"""Study B's Grad-CAM step (the paper's Fig. 7): heatmaps of every test patch for its true stage,
scored as the share of the bright map on the ROI (the same score as study A's,
:func:`anapart.metrics.cam_scores.bright_share`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anapart.io.files import pyplot, save_figure, write_csv
from anapart.io.npy import open_npy
from anapart.learn import training
from anapart.learn.data import CropData
from anapart.learn.gradcam import gradcam, resize_maps, resolve_layer
from anapart.metrics.cam_scores import bright_share
from anapart.metrics.evaluate import predicted
from anapart.staging.models import model_from_meta


def staging_cam_examples(model_path, patches_dir, pred: pd.DataFrame, classes, out_png, out_csv, *,
                         threshold: float) -> pd.DataFrame:
    """Study B's Grad-CAM (Fig. 7), with study A's maps and score: the ROI share of the bright map of
    every test patch, and a panel of one correctly staged tumour and node patch per stage (the most
    confident), the heatmap over the patch."""
    model, meta = training.load_model(model_path, model_from_meta)
    for p in model.parameters():  # a frozen backbone carries no gradient to its feature map otherwise
        p.requires_grad_(True)
    data = CropData(patches_dir, pred[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    layer = resolve_layer(model, meta["cam_layer"])
    targets = [list(classes).index(c) for c in pred["label"]]
    maps = resize_maps(gradcam(model, layer, data.inputs(np.arange(len(data))), targets), data.images.shape[-1])
    masks = open_npy(Path(patches_dir) / "masks.npy")
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
