"""Evaluation of both studies' models (the one metrics module).

Study A: one-vs-rest ROC AUC per class, aAUC ± SD, a patient-level bootstrap CI. Study B: per
stage precision, sensitivity, F1 and accuracy (scikit-learn), confusion matrices, and the
staging paper's Tables 3-5 built from them.

The paper reports, per model, the AUC of each of the six classes (one-vs-rest) and their mean
("aAUC") ± SD across classes. The bootstrap resamples *patients* (all slices of a drawn patient
come along), because slices of one patient are not independent.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score,
                             roc_curve)

from .files import pyplot, save_figure, write_text

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


# --------------------------------------------------------------------------- study B: staging

def predicted(pred: pd.DataFrame, classes) -> np.ndarray:
    probs = pred[[f"p_{c}" for c in classes]].to_numpy()
    return np.asarray(classes)[probs.argmax(axis=1)]


def stage_metrics(labels, preds, classes) -> dict:
    """Per class: precision, sensitivity (recall), F1 (scikit-learn); accuracy and the confusion matrix."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    p, r, f, n = precision_recall_fscore_support(labels, preds, labels=list(classes), zero_division=0)
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, preds)),
        "per_class": {c: {"precision": float(p[i]), "sensitivity": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
                      for i, c in enumerate(classes)},
        "confusion": confusion_matrix(labels, preds, labels=list(classes)).tolist(),
        "classes": list(classes),
    }


def evaluate_stages(pred: pd.DataFrame, classes) -> dict:
    """Study B scores of a predictions table, overall and the accuracy per ROI kind."""
    m = stage_metrics(pred["label"], predicted(pred, classes), classes)
    m["by_kind"] = {k: stage_metrics(g["label"], predicted(g, classes), classes)["accuracy"]
                    for k, g in pred.groupby("kind")} if "kind" in pred else {}
    return m


def confusion_axes(ax, cm, classes, title: str) -> None:
    cm = np.asarray(cm)
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="black" if cm[i, j] < cm.max() / 2 else "white")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted stage")
    ax.set_ylabel("true stage")
    ax.set_title(title, fontsize=9)


def confusion_figure(metrics: dict, title: str, out_png) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.2, 3.0), constrained_layout=True)
    confusion_axes(ax, metrics["confusion"], metrics["classes"], title)
    save_figure(fig, out_png)


def confusion_grid(metrics: dict[str, dict], out_png) -> None:
    """Fig. 6: confusion matrices of the single models and the ensemble side by side."""
    plt = pyplot()
    n = len(metrics)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False, constrained_layout=True)
    for ax, (name, m) in zip(axes.flat, metrics.items()):
        confusion_axes(ax, m["confusion"], m["classes"], f"{name} (acc {m['accuracy']:.2f})")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    save_figure(fig, out_png)


# --------------------------------------------------------------------------- tables

def _row(m: dict, cls: str) -> dict:
    pc = m["per_class"][cls]
    return {"precision": round(pc["precision"], 3), "sensitivity": round(pc["sensitivity"], 3),
            "f1": round(pc["f1"], 3), "accuracy": round(m["accuracy"], 3)}


def table_preprocessing(with_clahe: dict[str, dict], without: dict[str, dict], cls: str) -> pd.DataFrame:
    """Table 3: each model with and without CLAHE, scores for stage ``cls`` (IVa in the paper)."""
    rows = []
    for name in with_clahe:
        if name in without:
            rows.append({"model": name, "clahe": False, **_row(without[name], cls)})
        rows.append({"model": name, "clahe": True, **_row(with_clahe[name], cls)})
    return pd.DataFrame(rows)


def table_models(metrics: dict[str, dict], classes) -> pd.DataFrame:
    """Table 4: every single model and the ensemble, per stage."""
    return pd.DataFrame([{"stage": c, "method": name, **_row(m, c)} for c in classes for name, m in metrics.items()])


def table_comparison(metrics: dict[str, dict], classes) -> pd.DataFrame:
    """Table 5: the ensemble against radiomics and (where given) the clinicians' TNM staging."""
    return pd.DataFrame([{"stage": c, "method": name, **_row(m, c)} for c in classes for name, m in metrics.items()])


def tnm_metrics(index: pd.DataFrame, test: pd.DataFrame, classes) -> dict | None:
    """Scores of the labels table's ``tnm_stage`` column on the test patches (None if not given)."""
    t = test.merge(index[["slice_id", "tnm_stage"]], on="slice_id", how="left")
    t = t[t["tnm_stage"].fillna("").astype(str).isin(list(classes))]
    if t.empty:
        return None
    return stage_metrics(t["label"], t["tnm_stage"], classes)
