"""Classifier evaluation: one-vs-rest ROC AUC per class, aAUC ± SD, a patient-level bootstrap CI.

The paper reports, per model, the AUC of each of the six classes (one-vs-rest) and their mean
("aAUC") ± SD across classes. The bootstrap resamples *patients* (all slices of a drawn patient
come along), because slices of one patient are not independent.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from .files import write_text

log = logging.getLogger("anapart.evaluate")


def auc_per_class(labels, probs: np.ndarray, classes) -> dict[str, float]:
    """One-vs-rest AUC of every class; NaN where the class is absent or is the only one present."""
    labels = np.asarray(labels)
    out = {}
    for j, c in enumerate(classes):
        y = labels == c
        out[c] = float(roc_auc_score(y, probs[:, j])) if 0 < y.sum() < len(y) else float("nan")
    return out


def aauc(aucs: dict[str, float]) -> tuple[float, float]:
    """Mean and sample SD (ddof=1) of the defined per-class AUCs."""
    v = np.array([a for a in aucs.values() if not np.isnan(a)])
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def bootstrap_aauc_ci(labels, probs: np.ndarray, patients, classes, *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, int]:
    """Percentile CI of the aAUC from resampling patients with replacement; returns (low, high, n used).

    A resample in which some class has no slice (or is the only class) still yields an aAUC over the
    classes it can score, as the point estimate does.
    """
    labels = np.asarray(labels)
    patients = np.asarray(patients)
    units = np.unique(patients)
    members = {u: np.flatnonzero(patients == u) for u in units}
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        draw = rng.choice(units, size=len(units), replace=True)
        idx = np.concatenate([members[u] for u in draw])
        m, _ = aauc(auc_per_class(labels[idx], probs[idx], classes))
        if not np.isnan(m):
            stats.append(m)
    if not stats:
        return float("nan"), float("nan"), 0
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi), len(stats)


def evaluate_predictions(pred: pd.DataFrame, manifest: pd.DataFrame, classes, *, n_boot: int, seed: int,
                         level: float = 0.95) -> dict:
    probs = pred[[f"p_{c}" for c in classes]].to_numpy()
    patients = pred["slice_id"].map(manifest.set_index("slice_id")["patient"]).to_numpy()
    aucs = auc_per_class(pred["label"], probs, classes)
    mean, sd = aauc(aucs)
    lo, hi, used = bootstrap_aauc_ci(pred["label"], probs, patients, classes, n_boot=n_boot, seed=seed, level=level)
    predicted = np.array(classes)[probs.argmax(1)]
    return {
        "auc": aucs,
        "aauc": mean,
        "aauc_sd": sd,
        "aauc_ci": [lo, hi],
        "ci_level": level,
        "n_boot": used,
        "accuracy": float((predicted == pred["label"].to_numpy()).mean()),
        "n_test_slices": int(len(pred)),
        "n_test_patients": int(len(np.unique(patients))),
    }


def write_metrics(path, metrics: dict) -> None:
    write_text(path, json.dumps(metrics, indent=2, allow_nan=True) + "\n")


def roc_figure(pred: pd.DataFrame, classes, title: str, out_png) -> None:
    """One ROC curve per class, with its AUC (the paper's Fig. 5/7/8 panels)."""
    from .files import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    for c in classes:
        y = (pred["label"] == c).to_numpy()
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, pred[f"p_{c}"])
            ax.plot(fpr, tpr, lw=1.2, label=f"{c} ({roc_auc_score(y, pred[f'p_{c}']):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, out_png)
