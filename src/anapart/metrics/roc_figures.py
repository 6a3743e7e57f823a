"""ROC figures of study A's classifiers: one model's curves (the paper's Fig. 5/7/8 panels) and one
multi-panel figure per training fraction (networks by formats).

Each curve is one class against the rest, pooled over test slices; its legend carries the AUC with
a percentile interval from the stratified patient bootstrap (the unit that was sampled,
:func:`anapart.metrics.evaluate.patient_weights`), and every panel says how many slices and
patients it rests on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from anapart.io.figstyle import colour, display, pyplot, save_figure
from anapart.metrics.evaluate import auc_weighted, patient_weights, percentile_ci


def class_auc_cis(pred: pd.DataFrame, classes, patients, strata=None, *, n_boot: int = 200, seed: int = 0,
                  level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """Each scorable class's (AUC, CI low, CI high): the interval from the stratified patient
    bootstrap (resamples that cannot score the class left out)."""
    w = patient_weights(np.asarray(patients), strata, n_boot, seed)
    out = {}
    for c in classes:
        y = (pred["label"] == c).to_numpy()
        if not 0 < y.sum() < len(y):
            continue
        boot = auc_weighted(y, pred[f"p_{c}"].to_numpy(), w)
        boot = boot[~np.isnan(boot)]
        lo, hi = percentile_ci(boot, level) if len(boot) else (float("nan"), float("nan"))
        out[c] = (float(roc_auc_score(y, pred[f"p_{c}"])), lo, hi)
    return out


def roc_axes(ax, pred: pd.DataFrame, classes, cis: dict, *, legend: bool = True, level: float = 0.95) -> None:
    """One ROC curve per class on ``ax``, its AUC and CI in the legend, the chance diagonal."""
    for j, c in enumerate(classes):
        if c not in cis:
            continue
        y = (pred["label"] == c).to_numpy()
        fpr, tpr, _ = roc_curve(y, pred[f"p_{c}"])
        auc, lo, hi = cis[c]
        ax.plot(fpr, tpr, lw=1.3, color=colour(j), label=f"{display(c)}: {auc:.2f} ({lo:.2f}-{hi:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    if legend:  # outside the axes, never over a curve
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), title=f"AUC ({level:.0%} CI)", title_fontsize=8,
                  fontsize=8, handlelength=1.2, ncol=2, columnspacing=0.8, frameon=False)


def unit_line(pred: pd.DataFrame, patients) -> str:
    return f"per slice: {len(pred)} slices, {len(np.unique(np.asarray(patients)))} patients"


def roc_figure(pred: pd.DataFrame, classes, title: str, out_png, *, patients, strata=None, n_boot: int = 200,
               seed: int = 0, level: float = 0.95) -> None:
    """One model's ROC curves (one per class), AUCs with their patient-bootstrap CI in the legend
    and the unit (slices, patients) under the title."""
    plt = pyplot()
    cis = class_auc_cis(pred, classes, patients, strata, n_boot=n_boot, seed=seed, level=level)
    fig, ax = plt.subplots(figsize=(4.8, 6.0), constrained_layout=True)
    roc_axes(ax, pred, classes, cis, level=level)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"{title}\n{unit_line(pred, patients)}")
    save_figure(fig, out_png)


def roc_panels(models: dict[tuple[str, str], pd.DataFrame], classes, nets, formats, frac, out_png, *,
               patient_of: pd.Series, strata=None, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> None:
    """One fraction's ROC curves, networks in rows and formats in columns, each panel with its
    classes' AUCs and CIs and its unit; ``models`` maps (net, fmt) -> predictions."""
    plt = pyplot()
    rows, cols = max(len(nets), 1), max(len(formats), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 5.0 * rows), squeeze=False, constrained_layout=True)
    for i, net in enumerate(nets):
        for j, fmt in enumerate(formats):
            ax = axes[i][j]
            pred = models.get((net, fmt))
            if pred is None or pred.empty:
                ax.text(0.5, 0.5, "no predictions", ha="center", va="center")
                continue
            patients = pred["slice_id"].map(patient_of).to_numpy()
            cis = class_auc_cis(pred, classes, patients, strata, n_boot=n_boot, seed=seed, level=level)
            roc_axes(ax, pred, classes, cis, level=level)
            ax.set_title(f"{display(net)}, {display(fmt)}\n{unit_line(pred, patients)}", fontsize=8)
            ax.set_xlabel("1 - specificity")
            ax.set_ylabel("sensitivity")
    fig.suptitle(f"ROC curves per class, {frac}% of the training set (AUC with {level:.0%} patient-bootstrap CI)")
    save_figure(fig, out_png)

