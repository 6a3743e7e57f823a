"""Study B, Methods "Ensemble" and "Evaluation": stage two's soft voting of the single models, the
per-stage scores (precision, sensitivity, F1, accuracy; scikit-learn), confusion matrices, the
paper's Tables 3-5 (per patch, as the paper), and each method's per-patient stage
(:func:`patient_predictions`); the per-patient metrics and the claims' tests are in
:mod:`anapart.staging.claims`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from anapart.io.files import pyplot, save_figure
from anapart.metrics.evaluate import predicted


def soft_vote(frames: list[pd.DataFrame], classes) -> pd.DataFrame:
    """Eq. (1)-(2): the mean of the single models' class probabilities; the class is its argmax."""
    if not frames:
        raise ValueError("soft voting needs at least one model")
    cols = [f"p_{c}" for c in classes]
    first = frames[0]
    for f in frames[1:]:
        if list(f["slice_id"]) != list(first["slice_id"]) or list(f["label"]) != list(first["label"]):
            raise ValueError("soft voting: the models' predictions are not for the same patches in the same order")
    out = first.drop(columns=cols).copy()
    mean = np.mean([f[cols].to_numpy(dtype=np.float64) for f in frames], axis=0)
    for j, c in enumerate(cols):
        out[c] = mean[:, j]
    return out[[c for c in first.columns]]


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

def table_by_stage(metrics: dict[str, dict], classes, simulated=None) -> pd.DataFrame:
    """Tables 4 and 5: each method's scores per stage (Table 4: the single models and the ensemble;
    Table 5: the ensemble against radiomics and, where given, the clinicians' TNM staging).

    ``simulated`` (Table 5) names the methods whose stages were generated, not measured (the
    synthetic cohort's TNM column is produced by a rule): a ``simulated`` column says which.
    """
    flag = {} if simulated is None else {"simulated": set(simulated)}
    return pd.DataFrame([{"stage": c, "method": name, **_row(m, c), **{k: name in v for k, v in flag.items()}}
                         for c in classes for name, m in metrics.items()])


def tnm_metrics(index: pd.DataFrame, test: pd.DataFrame, classes) -> dict | None:
    """Scores of the labels table's ``tnm_stage`` column on the test patches (None if not given)."""
    t = test.merge(index[["slice_id", "tnm_stage"]], on="slice_id", how="left")
    t = t[t["tnm_stage"].fillna("").astype(str).isin(list(classes))]
    if t.empty:
        return None
    return stage_metrics(t["label"], t["tnm_stage"], classes)


# --------------------------------------------------------------------------- per patient

def patient_predictions(pred: pd.DataFrame, classes) -> pd.DataFrame:
    """One row per patient: the mean of its patches' stage probabilities and the stage they give.

    The paper scored patches, so a patient with many patches weighs more; a patient has one
    stage, so the per-patient score counts each patient once. Needs a ``patient`` column.
    """
    cols = [f"p_{c}" for c in classes]
    mixed = pred.groupby("patient")["label"].nunique()
    if (mixed > 1).any():
        raise ValueError(f"patient {mixed[mixed > 1].index[0]} has patches with different stages")
    g = pred.groupby("patient", sort=True)
    out = g[cols].mean().reset_index()
    out.insert(1, "label", g["label"].first().to_numpy())
    out["n_patches"] = g.size().to_numpy()
    out["predicted"] = predicted(out, classes)
    return out
