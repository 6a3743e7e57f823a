"""The formats side by side on one test slice (the paper's Fig. 2): the full slice with each crop's
window drawn on it, then each format's image as the classifiers see it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from anapart.io.figstyle import CAM_OUTLINE, colour, display, pyplot, save_figure
from anapart.io.store import LESION_BIT, REGION_BIT, load_store


def example_slice(manifest: pd.DataFrame, patients: pd.DataFrame) -> int:
    """The row of the example: the first test slice (by slice id) with a region and a lesion mask,
    else the first test slice, else the first slice."""
    split = manifest["patient"].map(patients.set_index("patient")["split"])
    order = manifest.assign(_split=split).sort_values("slice_id")
    for pick in (order[(order["_split"] == "test") & order["has_region_mask"].astype(bool)
                       & order["has_lesion_mask"].astype(bool)],
                 order[order["_split"] == "test"], order):
        if len(pick):
            return int(pick.index[0])
    raise ValueError("the cohort has no slice")


def crop_example_figure(cohort_dir, crops: dict[str, str | Path], patients_csv, out_png) -> None:
    """``crops`` maps each format to its store folder (``images.npy``, ``index.csv``), in the order
    shown. The full slice carries every cut format's window in that format's colour."""
    plt = pyplot()
    manifest, images, masks = load_store(cohort_dir)
    r = example_slice(manifest, pd.read_csv(patients_csv))
    sid = manifest.at[r, "slice_id"]
    spacing = float(manifest.at[r, "pixel_spacing_mm"]) if "pixel_spacing_mm" in manifest else float("nan")
    field = int(images.shape[-1])
    fig, axes = plt.subplots(1, len(crops) + 1, figsize=(2.6 * (len(crops) + 1), 3.2), squeeze=False,
                             constrained_layout=True)
    axes = axes[0]
    full = np.asarray(images[r], np.float32)
    axes[0].imshow(full, cmap="gray", vmin=0, vmax=1)
    region, lesion = (masks[r] & REGION_BIT) > 0, (masks[r] & LESION_BIT) > 0
    if region.any():
        axes[0].contour(region, levels=[0.5], colors=["white"], linewidths=0.8, linestyles="dashed")
    if lesion.any():
        axes[0].contour(lesion, levels=[0.5], colors=[CAM_OUTLINE], linewidths=0.8)
    axes[0].set_title("slice with crop windows")
    axes[0].set_xlabel("dashed: region; blue: lesion")
    for j, (fmt, folder) in enumerate(crops.items(), start=1):
        folder = Path(folder)
        index = pd.read_csv(folder / "index.csv").set_index("slice_id")
        w = index.loc[sid]
        store = np.load(folder / "images.npy", mmap_mode="r")
        img = np.asarray(store[int(w["row"])], np.float32)
        size = int(w["size"])
        if size < field:  # a cut format: its window on the full slice
            axes[0].add_patch(Rectangle((w["x0"] - 0.5, w["y0"] - 0.5), size, size, fill=False, lw=1.4,
                                        edgecolor=colour(j)))
        ax = axes[j]
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        for s in ax.spines.values():
            s.set_visible(True)
            s.set_edgecolor(colour(j))
            s.set_linewidth(2)
        mm = f", {size * spacing:.0f} mm" if np.isfinite(spacing) else ""
        ax.set_title(f"{display(fmt)}\n{size} x {size} px{mm}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Image formats of one test slice ({display(manifest.at[r, 'label'])})")
    save_figure(fig, out_png)
