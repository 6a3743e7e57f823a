"""Evaluation of both studies' models (the one metrics module).

Study A: one-vs-rest ROC AUC per class, aAUC ± SD, a patient-level bootstrap CI, paired
bootstrap differences between models. Both studies: the stratified patient bootstrap, the
predicted class, calibration. Study B's per-stage scores and tables are in :mod:`anapart.ensemble`.

The paper reports, per model, the AUC of each of the six classes (one-vs-rest) and their mean
("aAUC") ± SD across classes. Every bootstrap resamples *patients* (all slices of a drawn patient
come along, because slices of one patient are not independent) within each class, so a rare class
keeps its patients in every resample. Inside bootstraps the AUC is the vectorised Mann-Whitney
statistic (:func:`auc_weighted`, one sort for all resamples), pinned to scikit-learn in the tests.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

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


def auc_weighted(positive, scores, weights) -> np.ndarray:
    """One-vs-rest ROC AUC of ``scores`` for each row of ``weights`` (the Mann-Whitney statistic).

    ``weights`` (B, n) counts how often each slice is in a resample (a patient bootstrap gives
    every slice its patient's draw count), so one sort serves all B resamples. Ties count one
    half, as in :func:`sklearn.metrics.roc_auc_score`; a resample without a positive or without a
    negative gives NaN.
    """
    positive = np.asarray(positive, bool)
    scores = np.asarray(scores, np.float64)
    w = np.atleast_2d(np.asarray(weights, np.float64))
    if scores.size == 0:
        return np.full(len(w), np.nan)
    order = np.argsort(scores, kind="mergesort")
    s, pos, w = scores[order], positive[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first slice of each tied score value
    wpos = np.add.reduceat(w * pos, starts, axis=1)
    wneg = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(wneg, axis=1) - wneg  # negative weight strictly below each score value
    num = (wpos * (below + 0.5 * wneg)).sum(axis=1)
    den = wpos.sum(axis=1) * wneg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def aauc_weighted(labels, probs: np.ndarray, classes, weights) -> np.ndarray:
    """aAUC (mean of the defined one-vs-rest AUCs) for each resample row of ``weights``."""
    labels = np.asarray(labels)
    aucs = np.stack([auc_weighted(labels == c, probs[:, j], weights) for j, c in enumerate(classes)], axis=1)
    defined = ~np.isnan(aucs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined.any(1), np.nansum(aucs, axis=1) / np.maximum(defined.sum(1), 1), np.nan)


def patient_weights(patients, strata, n_boot: int, seed: int) -> np.ndarray:
    """Stratified patient bootstrap as slice weights (n_boot, n_slices).

    Within each stratum (the patient's class) as many patients are drawn with replacement as the
    stratum holds, so every resample keeps every class's patient count; a slice's weight is the
    number of times its patient was drawn. ``strata`` maps patient -> stratum (None: one stratum).
    A lone patient (the only one of its stratum) redrawn as itself in every resample would add no
    variability and make the interval too narrow, so the lone patients are pooled into one stratum,
    and a pool of one (a single lone patient: with the 3:1 split, any class of 2-5 patients) joins
    the smallest stratum of several patients. Those classes then vary in count across resamples.
    """
    patients = np.asarray(patients)
    units, slice_unit = np.unique(patients, return_inverse=True)
    if strata is None:
        unit_stratum = np.zeros(len(units), dtype=int)
    else:
        strata = dict(strata)
        missing = [u for u in units if u not in strata]
        if missing:
            raise KeyError(f"no stratum for {len(missing)} patient(s), e.g. {missing[0]}")
        names = np.array([str(strata[u]) for u in units], dtype=object)
        _, unit_stratum = np.unique(pool_lone_strata(names), return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, len(units)))
    for k in range(unit_stratum.max() + 1):
        members = np.flatnonzero(unit_stratum == k)
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_boot)
    return counts[:, slice_unit]


def pool_lone_strata(names: np.ndarray) -> np.ndarray:
    """Stratum per patient with single-patient strata pooled (see :func:`patient_weights`): the
    lone patients form one stratum; a single lone patient joins the smallest multi-patient stratum
    (the first by name among equals); with no such stratum it stays alone (nothing to pool with)."""
    names = np.asarray(names, dtype=object)
    values, counts = np.unique(names, return_counts=True)
    lone = set(values[counts == 1])
    if not lone:
        return names
    target = "\0pooled"
    if len(lone) == 1:
        several = [(c, v) for v, c in zip(values, counts) if c > 1]
        if several:
            target = min(several)[1]
    return np.array([target if n in lone else n for n in names], dtype=object)


def percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    a = (1 - level) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return float(lo), float(hi)


def bootstrap_aauc_ci(labels, probs: np.ndarray, patients, classes, *, strata=None, n_boot: int, seed: int,
                      level: float = 0.95) -> tuple[float, float, int]:
    """Percentile CI of the aAUC from a stratified patient bootstrap; returns (low, high, n used).

    ``strata`` (patient -> class) keeps every class's number of patients in every resample, so a
    rare class with two test patients is never left out; without it patients are drawn from one
    pool. A resample that cannot score a class averages over the classes it can, as the point
    estimate does.
    """
    w = patient_weights(patients, strata, n_boot, seed)
    stats = aauc_weighted(labels, np.asarray(probs), classes, w)
    stats = stats[~np.isnan(stats)]
    if not len(stats):
        return float("nan"), float("nan"), 0
    return (*percentile_ci(stats, level), len(stats))


def paired_delta_aauc(labels, probs_a: np.ndarray, probs_b: np.ndarray, patients, classes, *, strata=None,
                      n_boot: int, seed: int, level: float = 0.95) -> dict:
    """aAUC(a) - aAUC(b) of two models scored on the same test slices, with a paired bootstrap.

    Each resample draws patients once (stratified by class) and scores both models on it, so the
    CI reflects only how the two differ on the same patients. Two-sided p: twice the smaller share
    of resampled differences on either side of zero, (count + 1) / (B + 1) so it is never 0.
    """
    labels = np.asarray(labels)
    point_a, _ = aauc(auc_per_class(labels, np.asarray(probs_a), classes))
    point_b, _ = aauc(auc_per_class(labels, np.asarray(probs_b), classes))
    w = patient_weights(patients, strata, n_boot, seed)
    d = aauc_weighted(labels, np.asarray(probs_a), classes, w) - aauc_weighted(labels, np.asarray(probs_b), classes, w)
    d = d[~np.isnan(d)]
    out = {"aauc_a": point_a, "aauc_b": point_b, "delta_aauc": point_a - point_b, "n_boot": int(len(d))}
    if not len(d):
        return {**out, "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan")}
    lo, hi = percentile_ci(d, level)
    p = min(1.0, 2 * min((np.sum(d <= 0) + 1), (np.sum(d >= 0) + 1)) / (len(d) + 1))
    return {**out, "ci_low": lo, "ci_high": hi, "p": float(p)}


def evaluate_predictions(pred: pd.DataFrame, manifest: pd.DataFrame, classes, *, strata=None, n_boot: int,
                         seed: int, level: float = 0.95) -> dict:
    probs = pred[[f"p_{c}" for c in classes]].to_numpy()
    patients = pred["slice_id"].map(manifest.set_index("slice_id")["patient"]).to_numpy()
    aucs = auc_per_class(pred["label"], probs, classes)
    mean, sd = aauc(aucs)
    lo, hi, used = bootstrap_aauc_ci(pred["label"], probs, patients, classes, strata=strata, n_boot=n_boot, seed=seed,
                                     level=level)
    predicted = np.array(classes)[probs.argmax(1)]
    return {
        "auc": aucs,
        "aauc": mean,
        "aauc_sd": sd,
        "aauc_ci": [lo, hi],
        "ci_level": level,
        "ci_method": "percentile, patient bootstrap stratified by class" if strata is not None else
                     "percentile, patient bootstrap",
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


# --------------------------------------------------------------------------- predicted class

def predicted(pred: pd.DataFrame, classes) -> np.ndarray:
    """The class of each row: the argmax over its ``p_<class>`` columns."""
    probs = pred[[f"p_{c}" for c in classes]].to_numpy()
    return np.asarray(classes)[probs.argmax(axis=1)]


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
