"""Evaluation of both studies' models (the one metrics module).

Study A: one-vs-rest ROC AUC per class, aAUC ± SD, a patient-level bootstrap CI, paired
bootstrap differences between models. Study B: per stage precision, sensitivity, F1 and accuracy
(scikit-learn), confusion matrices, the staging paper's Tables 3-5 built from them, and per-patient
scores with McNemar tests and bootstrap CIs.

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
from sklearn.metrics import (accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score,
                             roc_curve)

from .files import pyplot, save_figure, write_text

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


def table_comparison(metrics: dict[str, dict], classes, simulated=()) -> pd.DataFrame:
    """Table 5: the ensemble against radiomics and (where given) the clinicians' TNM staging.

    ``simulated`` names the methods whose stages were generated, not measured (the synthetic
    cohort's TNM column is produced by a rule): their rows say so.
    """
    return pd.DataFrame([{"stage": c, "method": name, **_row(m, c), "simulated": name in set(simulated)}
                         for c in classes for name, m in metrics.items()])


def tnm_metrics(index: pd.DataFrame, test: pd.DataFrame, classes) -> dict | None:
    """Scores of the labels table's ``tnm_stage`` column on the test patches (None if not given)."""
    t = test.merge(index[["slice_id", "tnm_stage"]], on="slice_id", how="left")
    t = t[t["tnm_stage"].fillna("").astype(str).isin(list(classes))]
    if t.empty:
        return None
    return stage_metrics(t["label"], t["tnm_stage"], classes)


# --------------------------------------------------------------------------- study B: per patient

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


def accuracy_ci(correct, patients, strata, *, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of an accuracy from the stratified patient bootstrap (any unit per row)."""
    w = patient_weights(patients, strata, n_boot, seed)
    acc = (w * np.asarray(correct, float)).sum(1) / w.sum(1)
    return percentile_ci(acc, level)


def mcnemar_p(correct_a, correct_b) -> float:
    """Exact (binomial) McNemar test of two methods scored on the same units (statsmodels)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    return float(mcnemar(table, exact=True).pvalue)


def patient_table(preds: dict[str, pd.DataFrame], classes, *, tnm: dict[str, str] | None = None,
                  reference: str = "ensemble", tnm_simulated: bool = False, n_boot: int, seed: int,
                  level: float = 0.95) -> pd.DataFrame:
    """Study B per patient: every method's accuracy over test patients with a stratified patient
    bootstrap CI, and an exact McNemar test of ``reference`` (the ensemble) against it on the same
    patients (``mcnemar_p_holm``: Holm over the methods compared); the per-patch accuracy (the
    paper's unit) next to it.

    ``tnm`` maps patient -> the clinicians' TNM stage; ``tnm_simulated`` marks that row when the
    stage was generated by a rule (the synthetic cohort), not read by clinicians.
    """
    per_patient = {name: patient_predictions(p, classes).set_index("patient") for name, p in preds.items()}
    patch_acc = {name: float((predicted(p, classes) == p["label"].to_numpy()).mean()) for name, p in preds.items()}
    if reference not in per_patient:
        raise KeyError(f"reference method '{reference}' has no predictions")
    ref = per_patient[reference]
    truth = ref["label"]
    correct = {name: (pp["predicted"] == pp["label"]).reindex(truth.index) for name, pp in per_patient.items()}
    if tnm:
        first = next(iter(preds.values()))
        tnm_patches = first["patient"].map(tnm)
        given = tnm_patches.notna()
        if given.any():
            have = truth.index[truth.index.isin(list(tnm))]
            correct["TNM staging"] = pd.Series([tnm[p] == truth[p] for p in have], index=have).reindex(truth.index)
            patch_acc["TNM staging"] = float((tnm_patches[given] == first.loc[given, "label"]).mean())
    strata = truth.to_dict()
    rows = []
    for name, ok in correct.items():
        ok = ok.dropna().astype(bool)
        lo, hi = accuracy_ci(ok.to_numpy(), ok.index.to_numpy(), strata, n_boot=n_boot, seed=seed, level=level)
        p = float("nan") if name == reference else mcnemar_p(correct[reference][ok.index].astype(bool), ok)
        rows.append({"method": name, "n_patients": len(ok), "accuracy": float(ok.mean()), "ci_low": lo,
                     "ci_high": hi, "mcnemar_p": p, "reference": reference, "patch_accuracy": patch_acc[name],
                     "simulated": bool(tnm_simulated and name == "TNM staging")})
    from .stats import holm_by

    columns = ["method", "n_patients", "accuracy", "ci_low", "ci_high", "mcnemar_p", "mcnemar_p_holm", "reference",
               "patch_accuracy", "simulated"]
    return holm_by(pd.DataFrame(rows), [], p="mcnemar_p", out="mcnemar_p_holm")[columns]


def read_model_metrics(paths) -> dict[tuple[str, str, int], dict]:
    """Every classifier's ``metrics.json``, keyed by (net, fmt, frac) as its own fields say."""
    out = {}
    for path in paths:
        with open(path) as fh:
            m = json.load(fh)
        out[(m["net"], m["fmt"], int(m["frac"]))] = m
    return out
