"""Evaluation of both studies' models (the one metrics module).

Study A: one-vs-rest ROC AUC per class, aAUC ± SD, a patient-level bootstrap CI, paired
bootstrap differences between models. Both studies: the stratified patient bootstrap, the
predicted class. Calibration: :mod:`anapart.metrics.calibration`; external cohort: :mod:`anapart.partition.external`;
study B's per-stage scores and tables: :mod:`anapart.staging.ensemble`.

The paper reports, per model, the AUC of each of the six classes (one-vs-rest) and their mean
("aAUC") ± SD across classes. Every bootstrap resamples *patients* (all slices of a drawn patient
come along, because slices of one patient are not independent) within each class, so a rare class
keeps its patients in every resample. Inside bootstraps the AUC is the vectorised Mann-Whitney
statistic (:func:`auc_weighted`, one sort for all resamples), pinned to scikit-learn in the tests.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from anapart.io.files import write_text

log = logging.getLogger("anapart.evaluate")


def probabilities(pred: pd.DataFrame, classes) -> np.ndarray:
    """The (n, k) class probabilities of a predictions table (its ``p_<class>`` columns, in ``classes`` order)."""
    return pred[[f"p_{c}" for c in classes]].to_numpy()


def argmax_class(probs: np.ndarray, classes) -> np.ndarray:
    """The predicted class of each row: the class of the highest probability (the first on a tie)."""
    return np.asarray(classes)[np.asarray(probs).argmax(axis=1)]


def predicted(pred: pd.DataFrame, classes) -> np.ndarray:
    """The predicted class of each row of a predictions table."""
    return argmax_class(probabilities(pred, classes), classes)


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


DEGENERATE_SHARE = 0.95  # a model that gives one class to at least this share of the test slices is flagged


def class_report(labels, predicted, classes) -> dict:
    """What the aAUC hides: the confusion matrix (rows the true class, columns the predicted one, in
    ``classes`` order), each class's sensitivity and specificity, the balanced accuracy (mean
    sensitivity over the classes present; its chance level is 1 / their number), and the class the
    model gives most often with its share: a model that calls almost every slice one class is
    ``degenerate`` whatever its aAUC (its plain accuracy is that class's share)."""
    y, p = np.asarray(labels), np.asarray(predicted)
    present = [c for c in classes if (y == c).any()]
    sens = {c: float(((y == c) & (p == c)).sum() / (y == c).sum()) if (y == c).any() else float("nan")
            for c in classes}
    spec = {c: float(((y != c) & (p != c)).sum() / (y != c).sum()) if (y != c).any() else float("nan")
            for c in classes}
    shares = {c: float((p == c).mean()) for c in classes}
    top = max(classes, key=lambda c: shares[c])
    return {
        "confusion": {"classes": list(classes), "matrix": [[int(((y == a) & (p == b)).sum()) for b in classes]
                                                           for a in classes]},
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": float(np.mean([sens[c] for c in present])) if present else float("nan"),
        "balanced_accuracy_chance": 1.0 / len(present) if present else float("nan"),
        "top_predicted": top,
        "top_predicted_share": shares[top],
        "degenerate": bool(shares[top] >= DEGENERATE_SHARE),
    }


def prediction_set_problem(pred: pd.DataFrame, test_ids, model: str) -> str | None:
    """The difference between a model's predicted slices and its test set, naming the model, or None.

    A predictions file missing a row (or holding another split's slices) must not be scored on what
    is left: the AUC would be of another sample and the MRMC rows would blame the truth."""
    got, want = list(pred["slice_id"]), set(test_ids)
    dup = sorted(pd.Series(got)[pd.Series(got).duplicated()].unique())
    missing, extra = sorted(want - set(got)), sorted(set(got) - want)
    if not (missing or extra or dup):
        return None
    parts = [f"{len(x)} {what} (e.g. {', '.join(map(str, x[:3]))})" for x, what in
             ((missing, "test slices have no prediction"), (extra, "predicted slices are not in the test set"),
              (dup, "slices are predicted twice")) if x]
    return (f"{model}: its predictions ({len(got)} rows) are not its test set ({len(want)} slices): {'; '.join(parts)}; "
            "the predictions come from another split or were cut short: rebuild them "
            f"(snakemake --forcerun {model})")


def evaluate_predictions(pred: pd.DataFrame, manifest: pd.DataFrame, classes, *, strata=None, n_boot: int,
                         seed: int, level: float = 0.95) -> dict:
    probs = probabilities(pred, classes)
    patients = pred["slice_id"].map(manifest.set_index("slice_id")["patient"]).to_numpy()
    aucs = auc_per_class(pred["label"], probs, classes)
    mean, sd = aauc(aucs)
    lo, hi, used = bootstrap_aauc_ci(pred["label"], probs, patients, classes, strata=strata, n_boot=n_boot, seed=seed,
                                     level=level)
    return {
        "auc": aucs,
        "aauc": mean,
        "aauc_sd": sd,
        "aauc_ci": [lo, hi],
        "ci_level": level,
        "ci_method": "percentile, patient bootstrap stratified by class" if strata is not None else
                     "percentile, patient bootstrap",
        "n_boot": used,
        "accuracy": float((argmax_class(probs, classes) == pred["label"].to_numpy()).mean()),
        "n_test_slices": int(len(pred)),
        "n_test_patients": int(len(np.unique(patients))),
        **class_report(pred["label"], argmax_class(probs, classes), classes),
    }


def write_metrics(path, metrics: dict) -> None:
    write_text(path, json.dumps(metrics, indent=2, allow_nan=True) + "\n")


def read_model_metrics(paths) -> dict[tuple[str, str, int], dict]:
    """Every classifier's ``metrics.json``, keyed by (net, fmt, frac) as its own fields say."""
    out = {}
    for path in paths:
        with open(path) as fh:
            m = json.load(fh)
        out[(m["net"], m["fmt"], int(m["frac"]))] = m
    return out
