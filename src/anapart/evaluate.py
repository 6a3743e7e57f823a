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


# --------------------------------------------------------------------------- calibration
# Measurement only: how far predicted probabilities are from observed frequencies. Nothing here
# changes a model's probabilities (no temperature scaling, no Platt/isotonic recalibration).

def one_hot(labels, classes) -> np.ndarray:
    """(n, k) 0/1 matrix of ``labels`` over ``classes``; an unknown label is an error."""
    labels = np.asarray(labels)
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
    return (labels[:, None] == np.asarray(classes)[None, :]).astype(np.float64)


def brier_scores(labels, probs: np.ndarray, classes) -> tuple[float, dict[str, float]]:
    """Multi-class Brier score (Brier 1950: mean over slices of the summed squared error over
    classes, 0 best, 2 worst) and each class's one-vs-rest Brier score (mean squared error of that
    class's probability, 0-1); the multi-class score is the sum of the per-class ones."""
    y = one_hot(labels, classes)
    sq = (np.asarray(probs, dtype=np.float64) - y) ** 2
    per_class = sq.mean(axis=0)
    return float(sq.sum(axis=1).mean()), {c: float(per_class[j]) for j, c in enumerate(classes)}


def reliability_bins(confidence, outcome, n_bins: int) -> pd.DataFrame:
    """Equal-width bins of ``confidence`` on [0, 1]: per bin its count, mean confidence and observed
    frequency of ``outcome``. Bins are (lo, hi], the first [0, hi], as scikit-learn's
    ``calibration_curve(strategy="uniform")``; empty bins have NaN means."""
    conf = np.asarray(confidence, dtype=np.float64)
    out = np.asarray(outcome, dtype=np.float64)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if len(conf) and (conf.min() < 0 or conf.max() > 1 + 1e-6):
        raise ValueError("confidences must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], conf, side="left")
    n = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(ids, weights=conf, minlength=n_bins) / n
        freq = np.bincount(ids, weights=out, minlength=n_bins) / n
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "n": n, "confidence": mean_conf,
                         "observed": freq})


def ece(confidence, outcome, n_bins: int) -> float:
    """Expected calibration error: the count-weighted mean |observed frequency - mean confidence|
    over equal-width bins (Naeini et al. 2015; Guo et al. 2017)."""
    t = reliability_bins(confidence, outcome, n_bins)
    t = t[t["n"] > 0]
    if t.empty:
        return float("nan")
    return float((t["n"] * (t["observed"] - t["confidence"]).abs()).sum() / t["n"].sum())


def top_label(labels, probs: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the predicted class (the top probability) and whether it was right."""
    probs = np.asarray(probs, dtype=np.float64)
    correct = np.asarray(classes)[probs.argmax(axis=1)] == np.asarray(labels)
    return probs.max(axis=1), correct


def calibration_metrics(labels, probs: np.ndarray, classes, n_bins: int = 10) -> dict:
    """Study A (multi-class): multi-class and per-class one-vs-rest Brier, top-label ECE."""
    brier, per_class = brier_scores(labels, probs, classes)
    conf, correct = top_label(labels, probs, classes)
    return {"brier": brier, "brier_per_class": per_class, "ece": ece(conf, correct, n_bins), "ece_bins": int(n_bins)}


def positive_class(pred: pd.DataFrame, cls: str) -> tuple[np.ndarray, np.ndarray]:
    """Probability of class ``cls`` and whether the slice is of that class (a binary reliability's data)."""
    return pred[f"p_{cls}"].to_numpy(dtype=np.float64), (pred["label"].to_numpy() == cls).astype(np.float64)


def binary_calibration_metrics(pred: pd.DataFrame, classes, n_bins: int = 10) -> dict:
    """Study B (two stages): Brier score and ECE of the probability of the second (advanced) stage,
    the quantity a binary reliability diagram plots."""
    p, y = positive_class(pred, classes[-1])
    return {"brier": float(np.mean((p - y) ** 2)) if len(y) else float("nan"), "ece": ece(p, y, n_bins),
            "ece_bins": int(n_bins), "calibration_class": classes[-1]}


def reliability_figure(panels: dict[str, dict[str, tuple]], n_bins: int, out_png, *, xlabel: str, ylabel: str
                       ) -> None:
    """Reliability diagrams: one panel per key of ``panels`` (e.g. "internal test, 100%"), one curve
    per model in it from its ``(confidence, outcome)``, markers sized by the bin's share of slices;
    the diagonal is perfect calibration."""
    plt = pyplot()
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.2 * rows), squeeze=False, constrained_layout=True)
    for ax, (title, models) in zip(axes.flat, panels.items()):
        for name, (conf, outcome) in models.items():
            t = reliability_bins(conf, outcome, n_bins)
            t = t[t["n"] > 0]
            line, = ax.plot(t["confidence"], t["observed"], lw=1.1, label=f"{name} (ECE {ece(conf, outcome, n_bins):.3f})")
            # marker area by the bin's share of slices: sparse bins are visibly sparse
            ax.scatter(t["confidence"], t["observed"], s=6 + 60 * t["n"] / max(t["n"].sum(), 1), color=line.get_color())
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    save_figure(fig, out_png)


def with_labels(pred: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Predictions written without labels (the external cohort's, by the training jobs) joined with
    the labels of their store's manifest; every slice must be in it."""
    label_of = manifest.set_index("slice_id")["label"]
    missing = sorted(set(pred["slice_id"]) - set(label_of.index))
    if missing:
        raise KeyError(f"{len(missing)} predicted slices are not in the manifest, e.g. {missing[0]}")
    out = pred.drop(columns=[c for c in ("label",) if c in pred]).copy()
    out.insert(1, "label", label_of.loc[out["slice_id"]].to_numpy())
    return out


# --------------------------------------------------------------------------- external validation

def external_table(metrics: dict[tuple[str, str, int], dict], classes) -> pd.DataFrame:
    """One row per model for its external cohort: the columns of ``auc.csv`` (external values),
    then ``aauc_internal``, ``aauc_external`` and ``delta`` (external minus internal)."""
    from .stats import model_table

    internal = model_table(metrics, classes).set_index(["net", "fmt", "frac"])["aauc"]
    ext = {k: m["external"] for k, m in metrics.items()}
    table = model_table(ext, classes)
    key = list(zip(table["net"], table["fmt"], table["frac"]))
    table["aauc_internal"] = internal.loc[key].to_numpy()
    table["aauc_external"] = table["aauc"]
    table["delta"] = table["aauc_external"] - table["aauc_internal"]
    return table


def external_figure(table: pd.DataFrame, formats, fractions, out_png) -> None:
    """Internal vs external aAUC per format (panel) and training fraction: mean over networks
    ± SD, each network as a dot."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(formats), figsize=(3.2 * len(formats), 3.3), squeeze=False, sharey=True,
                             constrained_layout=True)
    x = np.arange(len(fractions))
    width = 0.38
    for ax, fmt in zip(axes[0], formats):
        sub = table[table["fmt"] == fmt]
        for k, (col, name) in enumerate((("aauc_internal", "internal test"), ("aauc_external", "external"))):
            g = sub.groupby("frac")[col].agg(["mean", "std"]).reindex([int(f) for f in fractions])
            pos = x + (k - 0.5) * width
            ax.bar(pos, g["mean"], width, yerr=g["std"].fillna(0), capsize=3, label=name, alpha=0.8)
            for i, f in enumerate(fractions):
                v = sub.loc[sub["frac"] == int(f), col].to_numpy()
                ax.plot(np.full(len(v), pos[i]), v, "k.", ms=3)
        ax.set_xticks(x, [f"{f}%" for f in fractions])
        ax.set_title(fmt, fontsize=9)
        ax.set_xlabel("training data kept")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0.3, 1.0)
    axes[0][0].set_ylabel("aAUC")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    save_figure(fig, out_png)


def calibration_table(metrics: dict[tuple[str, str, int], dict], classes) -> pd.DataFrame:
    """One row per classifier: multi-class Brier, top-label ECE, per-class one-vs-rest Brier, and
    the external cohort's Brier and ECE where there is one."""
    rows = []
    for (net, fmt, frac), m in metrics.items():
        row = {"net": net, "fmt": fmt, "frac": int(frac), "brier": m["brier"], "ece": m["ece"]}
        row.update({f"brier_{c}": m["brier_per_class"].get(c) for c in classes})
        if "external" in m:
            row.update(brier_external=m["external"]["brier"], ece_external=m["external"]["ece"])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["frac", "fmt", "net"], ascending=[False, True, True], ignore_index=True)


def read_model_metrics(paths) -> dict[tuple[str, str, int], dict]:
    """Every classifier's ``metrics.json``, keyed by (net, fmt, frac) as its own fields say."""
    out = {}
    for path in paths:
        with open(path) as fh:
            m = json.load(fh)
        out[(m["net"], m["fmt"], int(m["frac"]))] = m
    return out
