"""Calibration of predicted probabilities (measurement only: nothing here changes a model's probabilities).

How far predicted probabilities are from observed frequencies: Brier scores (multi-class and one-vs-
rest), expected calibration error over equal-width bins, reliability diagrams. Study A scores the
top label of its six classes (:func:`calibration_metrics`), study B the probability of its advanced
stage (:func:`binary_calibration_metrics`). No temperature scaling, no Platt/isotonic recalibration.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from anapart.io.files import pyplot, save_figure
from anapart.metrics.evaluate import argmax_class
from anapart.metrics.stats import per_model_table


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
    correct = argmax_class(probs, classes) == np.asarray(labels)
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


def calibration_table(metrics: dict[tuple[str, str, int], dict], classes) -> pd.DataFrame:
    """One row per classifier: multi-class Brier, top-label ECE, per-class one-vs-rest Brier, and
    the external cohort's Brier and ECE where there is one."""
    def row(m: dict) -> dict:
        out = {"brier": m["brier"], "ece": m["ece"], **{f"brier_{c}": m["brier_per_class"].get(c) for c in classes}}
        if "external" in m:
            out.update(brier_external=m["external"]["brier"], ece_external=m["external"]["ece"])
        return out

    return per_model_table(metrics, row)
