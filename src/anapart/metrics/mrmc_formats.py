"""Study A's formats as a multi-reader multi-case (MRMC) study: the trained networks are the
readers, the test patients the cases, the image formats (full, seg112, seg224) the modalities.

Why: a format comparison must hold for other networks one could have trained *and* other patients
one could have sampled, with the correlation that scoring the same patients induces between
models. The network-level paired tests (:mod:`anapart.metrics.stats`) treat the test set as fixed;
the per-network bootstrap treats the model as fixed. The Obuchowski-Rockette analysis with Hillis'
df (:func:`anapart.metrics.mrmc.or_analysis`) has both random sources: random networks and random
patients (``RRRC``, the primary analysis) and, for a conclusion about these networks only, fixed
networks (``FRRC``). Per training fraction and figure of merit -- each model's aAUC (mean
one-vs-rest AUC over the classes) and each class's one-vs-rest AUC -- the global test of "no format
effect" and every pairwise format difference with its 95% CI; covariances by the jackknife over
patients (a patient left out with all of their slices). ``p_holm``: Holm over the format pairs of
one (fraction, figure, analysis). A design the analysis cannot take (a class in fewer than two test
patients, fewer than two networks) gets a row with its reason and no p-value.

Each pairwise contrast is the OR analysis of its two formats alone (t = 2: Hillis 2007; Boik 1981):
the error term MS(T:R) and the covariances of three formats pooled assume every format varies
equally across networks, and with the paper's own 25% aAUCs that made the primary SE ~27% too
small (df 6 instead of 3). The three-format global test stays as its own row (``all formats``).
The data-cost claim is one contrast (``interaction``): an OR analysis of the four (format,
fraction) cells of two formats at the smallest and the largest fraction with the contrast
(a - b)@min - (a - b)@max (:func:`anapart.metrics.mrmc_contrast.or_contrast`).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from anapart.metrics.mrmc import empirical_auc, mean_ovr_auc, or_analysis, or_test
from anapart.metrics.mrmc_contrast import or_contrast, sub_design
from anapart.metrics.stats import holm_by

COLUMNS = ["frac", "figure", "analysis", "estimator", "contrast", "estimate", "se", "ci_low", "ci_high", "p", "p_holm",
           "statistic", "value", "df1", "df2", "p_global", "n_networks", "n_patients", "ci_level", "reason"]
ANALYSES = {"rrrc": "RRRC (random networks, random patients)", "frrc": "FRRC (these networks, random patients)"}


def class_auc(label: str, cls: str, column: str):
    """FOM: the one-vs-rest AUC of ``label == cls`` vs the probability column of ``cls``."""
    def fom(frame: pd.DataFrame) -> float:
        return empirical_auc(frame[label].to_numpy() == cls, frame[column].to_numpy())

    fom.classes = [cls]
    return fom


def interaction_label(a: str, b: str, low: int, high: int) -> str:
    """The data-cost contrast as it reads in the tables: ``(a - b)@low - (a - b)@high``."""
    return f"({a} - {b})@{low} - ({a} - {b})@{high}"


def is_interaction(contrast: str) -> bool:
    return "@" in str(contrast)


def parse_interaction(contrast: str) -> tuple[str, str, int, int] | None:
    """``(a, b, low, high)`` of a contrast written by :func:`interaction_label`; None for any other."""
    m = re.fullmatch(r"\((\S+) - (\S+)\)@(\d+) - \(\1 - \2\)@(\d+)", str(contrast).strip())
    return (m.group(1), m.group(2), int(m.group(3)), int(m.group(4))) if m else None


def figure_name(figure: str) -> str:
    """A figure of merit as a reader names it: ``aauc`` -> aAUC; ``auc_<class>`` as it is."""
    return "aAUC" if figure == "aauc" else str(figure)


def default_figures(classes) -> dict:
    """Figure name -> FOM of one (format, network) cell's rows: the aAUC and each class's AUC."""
    return {"aauc": mean_ovr_auc("label", {c: f"p_{c}" for c in classes}),
            **{f"auc_{c}": class_auc("label", c, f"p_{c}") for c in classes}}


def readings(preds: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, frac: int) -> pd.DataFrame:
    """The long table of one fraction: one row per (network, format, test slice), its patient, label
    and class probabilities."""
    parts = [p.assign(reader=net, modality=fmt, case=p["slice_id"].map(patient_of).to_numpy())
             for (net, fmt, f), p in sorted(preds.items()) if f == frac]
    return pd.concat(parts, ignore_index=True)


def format_mrmc(preds: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, classes,
                alpha: float = 0.05, figures: dict | None = None, estimator: str = "single split",
                interaction: tuple[str, str] | None = None, interaction_figure: str = "aauc",
                convention: str = "reference") -> pd.DataFrame:
    """One row per (fraction, figure of merit, analysis, format pair), plus a row per fraction,
    figure and analysis whose ``contrast`` is ``all formats`` (the global test), and with
    ``interaction`` = (a, b) the data-cost contrast per figure and analysis (``frac`` = the smallest
    fraction; of ``interaction_figure`` only). ``figures``: name -> FOM (default
    :func:`default_figures`); ``estimator`` labels how the FOM pools predictions (single split,
    within-fold, pooled). CIs at 1 - ``alpha`` (``ci_level``). ``convention``: the FRRC forms of the
    pairs and the interaction (:func:`anapart.metrics.mrmc.or_test`)."""
    rows = []
    fracs = sorted({k[2] for k in preds}, reverse=True)
    figures = figures if figures is not None else default_figures(classes)
    level = 1 - alpha
    for frac, (figure, fom) in itertools.product(fracs, figures.items()):
        data = readings(preds, patient_of, frac)
        base = {"frac": int(frac), "figure": figure, "estimator": estimator, "ci_level": level,
                "n_networks": int(data["reader"].nunique()), "n_patients": int(data["case"].nunique())}
        try:
            result = or_analysis(data, reader="reader", modality="modality", case="case", truth="label",
                                 score=None, fom=fom, cov="jackknife", case_truth=False, alpha=alpha)
        except ValueError as e:  # every row of this design, each with the reason and no number
            formats = sorted(data["modality"].unique())
            for analysis in ANALYSES:
                for contrast in ["all formats", *(f"{a} - {b}" for a, b in itertools.combinations(formats, 2))]:
                    rows.append({**base, "analysis": analysis.upper(), "contrast": contrast, "reason": str(e)})
            continue
        mods, readers = result["design"]["modalities"], result["design"]["readers"]
        theta, cov = result["fom"].to_numpy(), result["cov"].to_numpy()
        for analysis in ANALYSES:
            test = result[analysis]["test"]
            rows.append({**base, "analysis": analysis.upper(), "statistic": test["statistic"], "value": test["value"],
                         "df1": test["df1"], "df2": test["df2"], "p_global": test["p"], "reason": test["reason"],
                         "contrast": "all formats", "p": test["p"]})
        for ia, ib in itertools.combinations(range(len(mods)), 2):  # each pair on its own two formats
            own = or_test(*sub_design(theta, cov, [ia, ib]), [mods[ia], mods[ib]], readers, alpha, convention)
            for analysis in ANALYSES:
                test, pr = own[analysis]["test"], own[analysis]["pairs"].iloc[0]
                rows.append({**base, "analysis": analysis.upper(), "statistic": test["statistic"],
                             "value": test["value"], "df1": test["df1"], "df2": test["df2"], "p_global": test["p"],
                             "reason": test["reason"], "contrast": f"{pr.modality_a} - {pr.modality_b}",
                             "estimate": pr.estimate, "se": pr.se, "ci_low": pr.ci_low, "ci_high": pr.ci_high,
                             "p": pr.p if test["reason"] is None or np.isfinite(pr.p) else np.nan})
    if interaction is not None and len(fracs) >= 2:
        chosen = {k: v for k, v in figures.items() if k == interaction_figure}
        rows += _interaction_rows(preds, patient_of, chosen, interaction, min(fracs), max(fracs), alpha, estimator,
                                  convention)
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_holm"])
    pairs = table[(table["contrast"] != "all formats") & ~table["contrast"].map(is_interaction)]
    held = holm_by(pairs, ["frac", "figure", "analysis"]) if len(pairs) else pairs.assign(p_holm=np.nan)
    table = table.join(held["p_holm"])
    return table[COLUMNS]


def _interaction_rows(preds, patient_of, figures, formats, low, high, alpha, estimator,
                      convention: str = "reference") -> list[dict]:
    """(a - b)@low - (a - b)@high per figure: one OR analysis whose modalities are the four
    (format, fraction) cells, readers the networks, contrast (1, -1, -1, 1)."""
    a, b = formats
    cells = [(a, low), (b, low), (a, high), (b, high)]
    parts = [p.assign(reader=net, modality=f"{fmt}@{f}", case=p["slice_id"].map(patient_of).to_numpy())
             for (net, fmt, f), p in sorted(preds.items()) if (fmt, f) in cells]
    label = interaction_label(a, b, low, high)
    rows = []
    if not parts:
        return rows
    data = pd.concat(parts, ignore_index=True)
    for figure, fom in figures.items():
        base = {"frac": int(low), "figure": figure, "estimator": estimator, "ci_level": 1 - alpha,
                "contrast": label, "n_networks": int(data["reader"].nunique()),
                "n_patients": int(data["case"].nunique())}
        try:
            fit = or_analysis(data, reader="reader", modality="modality", case="case", truth="label", score=None,
                              fom=fom, cov="jackknife", case_truth=False, alpha=alpha)
        except ValueError as e:
            rows += [{**base, "analysis": k.upper(), "reason": str(e)} for k in ANALYSES]
            continue
        order = fit["design"]["modalities"]
        weight = {f"{a}@{low}": 1.0, f"{b}@{low}": -1.0, f"{a}@{high}": -1.0, f"{b}@{high}": 1.0}
        res = or_contrast(fit["fom"].to_numpy(), fit["cov"].to_numpy(), [weight[m] for m in order], alpha, convention)
        for k in ANALYSES:
            r = res[k]
            rows.append({**base, "analysis": k.upper(), "statistic": "t" if k == "rrrc" else "z", "df1": 1,
                         "df2": r["df"], "estimate": r["estimate"], "se": r["se"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"], "p": r["p"], "reason": r["reason"]})
    return rows


def _grouped_auc(truth: np.ndarray, score: np.ndarray, fold: np.ndarray) -> float:
    """Sum_k n1k n0k AUC_k / sum_k n1k n0k: the AUC over positive-negative pairs of the same fold."""
    num = den = 0.0
    for k in np.unique(fold):
        m = fold == k
        t = truth[m]
        n1 = int(t.sum())
        n0 = int(m.sum()) - n1
        if n1 and n0:
            num += empirical_auc(t, score[m]) * n1 * n0
            den += n1 * n0
    return num / den if den else float("nan")


def within_fold_auc(truth, score, fold, replicate=None) -> float:
    """Within-fold AUC of pooled out-of-fold predictions, averaged over replicates.

    Why: pooling K fold-models' scores on one ROC curve ranks a positive of fold 1 against a
    negative of fold 2, so calibration differences *between* folds lower the pooled AUC -- most for
    the least stable format, which biases a format contrast (issue 30: +0.043 under the null).
    Counting only positive-negative pairs of the same fold (the n1k n0k-weighted mean of the fold
    AUCs) removes that term (Bradley 1997, Pattern Recognit 30:1145; Parker et al. 2007, BMC Bioinf
    8:245; Airola et al. 2011, Comput Stat Data Anal 55:1828; LeDell et al. 2015, Electron J Stat
    9:1583). ``replicate``: one label per row (repeat, seed); each replicate's within-fold AUC, then
    their plain mean (the patients are the same in every replicate, so none is picked)."""
    truth, score, fold = np.asarray(truth, bool), np.asarray(score, float), np.asarray(fold)
    if replicate is None:
        return _grouped_auc(truth, score, fold)
    replicate = np.asarray(replicate)
    return float(np.mean([_grouped_auc(truth[replicate == g], score[replicate == g], fold[replicate == g])
                          for g in np.unique(replicate)]))


def _replicate_codes(frame: pd.DataFrame):
    cols = [c for c in ("repeat", "seed") if c in frame]
    if not cols:
        return None
    return frame[cols].astype(str).agg(":".join, axis=1).to_numpy() if len(cols) > 1 else frame[cols[0]].to_numpy()


def within_fold_figures(classes) -> dict:
    """The :func:`default_figures` with within-fold AUCs (rows need ``fold``, and ``repeat``/``seed``
    when several replicates are pooled): per class, then averaged over classes for the aAUC."""
    def class_fom(cls):
        def fom(frame: pd.DataFrame) -> float:
            return within_fold_auc(frame["label"].to_numpy() == cls, frame[f"p_{cls}"].to_numpy(),
                                   frame["fold"].to_numpy(), _replicate_codes(frame))
        fom.classes = [cls]
        return fom

    per_class = {c: class_fom(c) for c in classes}

    def aauc(frame: pd.DataFrame) -> float:
        return float(np.mean([f(frame) for f in per_class.values()]))

    aauc.classes = tuple(classes)
    aauc.__name__ = "within-fold mean one-vs-rest AUC"
    return {"aauc": aauc, **{f"auc_{c}": f for c, f in per_class.items()}}


def pooled_figures(classes) -> dict:
    """The :func:`default_figures` of pooled out-of-fold predictions, averaged over replicates: the
    pooled AUC of each replicate (one ROC curve over its K fold-models), then the mean over
    replicates. A sensitivity analysis: it leans towards the format whose folds calibrate alike."""
    def per_rep(fom):
        def f(frame: pd.DataFrame) -> float:
            codes = _replicate_codes(frame)
            if codes is None:
                return fom(frame)
            return float(np.mean([fom(frame[codes == g]) for g in np.unique(codes)]))
        f.classes = getattr(fom, "classes", None)
        return f

    return {k: per_rep(v) for k, v in default_figures(classes).items()}
