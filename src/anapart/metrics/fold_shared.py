"""What every network of one fold shares, in the variance of the replicates' primary contrast.

Why (issue 30 item 2): a fold has one segmenter, one set of crop windows and one 25%/50% subset
draw, shared by every network trained in it. Such a fold x format effect moves the fold's contrast
for all networks alike, so it is neither network x format spread (MS(T:R) cannot see it) nor
patient spread: the patient jackknife sees about (K - 1)/n of it, because it never retrains. Left
out, a fold x format effect at which the former primary rejected 15% at alpha 0.025 still made the
within-fold primary reject 7.6% (``benchmarks/RESULTS.md``).

The component is estimated by the method of moments from the R x K fold-level contrasts d_rk
(networks averaged, seeds averaged). Within a repeat the K folds hold disjoint patients and their
own models, so with d_rk = delta + a + f_rk + e_rk (a: the networks' shared format effect, the
same in every fold; f_rk the fold-shared effect, variance tau^2; e_rk the fold's patients, variance
v_rk)

    E S^2_r = tau^2 + mean_k v_rk,   S^2_r = sum_k (d_rk - d_r.)^2 / (K - 1),

and mean_k v_rk = K Var(d_r) for equal folds, where Var(d_r) is the patient-only (networks fixed:
FRRC) variance of repeat r's within-fold contrast. Hence

    tau^2_hat = max(0, mean_r [S^2_r - K V_r]),

and the contrast averaged over R x K folds gains tau^2_hat / (R K) (the folds' f_rk are independent:
each repeat redraws its folds and retrains; within a repeat the folds' segmenters share (K - 2)/K of
their training data, so the inference is conditional on the training pool, as in Bengio & Grandvalet
2004: the Nadeau-Bengio row covers that case). The jackknife itself sees (K - 1)/n of tau^2, so
tau^2_hat estimates tau^2 (1 - (K - 1)/n) and the sum of the two is unbiased. The df follow
Satterthwaite (1946): the variance used is se^2 - mean V_r / R + mean S^2_r / (R K), whose random
parts are the MS(T:R) share of se^2 (Hillis' df) and the between-fold mean square, R (K - 1) df; with
tau^2_hat = 0 the test is Hillis' exactly, and with fewer than 3 between-fold df nothing is added and
the row says the variance was not estimable. The folds are weighted equally here, while the
within-fold AUC weights them by their pairs: exact for stratified, near-equal folds. The estimate
also holds the per-fold models' own noise (training seeds) averaged over networks, which MS(T:R)
holds already: a double count of sigma_m^2 / (J R K), conservative, as large as the models' noise.
Its check against the simulated truth is in
``tests/metrics/test_fold_shared.py``; its error rate in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from anapart.metrics.mrmc_formats import format_mrmc, is_interaction, within_fold_figures
from anapart.metrics.replicates import fold_contrasts, stack_replicates
from anapart.metrics.stats import holm_by

NOTE = "fold-shared variance added"
ZERO = "fold-shared variance estimated at 0"
SKIPPED = "fold-shared variance not estimable"
MIN_DF = 3  # between-fold df below which tau^2 is not estimated (one or two df: no usable interval)


def fold_components(per_fold: np.ndarray, case_var: np.ndarray) -> dict:
    """From an R x K array of fold contrasts and the R patient-only variances V_r of each repeat's
    contrast: ``ms`` = mean_r S^2_r, ``v`` = mean_r V_r, ``tau2`` = max(0, ms - K v), ``repeats``
    used (those with every fold and V_r finite), ``folds`` K and ``df`` = repeats x (K - 1), the df
    of ``ms``."""
    d = np.atleast_2d(np.asarray(per_fold, float))
    v = np.asarray(case_var, float).reshape(-1)
    r, k = d.shape
    used = [i for i in range(r) if i < len(v) and np.isfinite(d[i]).all() and np.isfinite(v[i])] if k >= 2 else []
    if not used:
        return {"tau2": float("nan"), "ms": float("nan"), "v": float("nan"), "repeats": 0, "folds": k, "df": 0}
    ms = float(np.mean([d[i].var(ddof=1) for i in used]))
    vv = float(np.mean([v[i] for i in used]))
    return {"tau2": max(0.0, ms - k * vv), "ms": ms, "v": vv, "repeats": len(used), "folds": k,
            "df": len(used) * (k - 1)}


def excess_fold_variance(per_fold: np.ndarray, case_var: np.ndarray) -> float:
    """tau^2_hat = max(0, mean_r [S^2_r - K V_r]) (:func:`fold_components`); NaN when no repeat has
    two folds."""
    return fold_components(per_fold, case_var)["tau2"]


def add_fold_shared(estimate: float, se: float, df: float, comp: dict, alpha: float = 0.05) -> dict:
    """The contrast's SE, df, CI at 1 - alpha and p once tau2 / (R K) joins its variance (``df`` inf
    for FRRC's normal reference; ``comp`` from :func:`fold_components`).

    Satterthwaite: the variance used is se^2 - v / R + ms / (R K); its random parts are the OR part
    (se^4 / df = the MS(T:R) term's share, as in Hillis' df) and the between-fold mean square ms,
    with R (K - 1) df; v is a patient variance, its df those of the patients (treated as known, as
    Hillis treats the covariances). With tau2 = 0 the test is the OR test exactly."""
    reps, k = comp["repeats"], comp["folds"]
    if not comp["tau2"] > 0:
        v, df_new = se ** 2, df
    else:
        v = se ** 2 + comp["tau2"] / (reps * k)
        part_or = se ** 4 / df if np.isfinite(df) else 0.0
        part_f = (comp["ms"] / (reps * k)) ** 2 / comp["df"]
        df_new = v ** 2 / (part_or + part_f)
    se_new = float(np.sqrt(v))
    q = st.t.ppf(1 - alpha / 2, df_new) if np.isfinite(df_new) else st.norm.ppf(1 - alpha / 2)
    z = estimate / se_new
    p = 2 * (st.t.sf(abs(z), df_new) if np.isfinite(df_new) else st.norm.sf(abs(z)))
    return {"se": se_new, "df": float(df_new), "ci_low": estimate - q * se_new, "ci_high": estimate + q * se_new,
            "p": float(p)}


def repeat_case_variances(pooled: dict, patient_of: pd.Series, classes, figure: str,
                          interaction: tuple[str, str] | None) -> pd.DataFrame:
    """Per repeat (seeds averaged), fraction and contrast: the patient-only variance of the
    network-averaged within-fold contrast (FRRC SE squared: networks fixed, patients random), without
    the reference convention's max(Cov2 - Cov3, 0), which would raise V_r and lower tau^2."""
    rows = []
    for r in sorted({rs[0] for rs in pooled}):
        stacked = stack_replicates({rs: m for rs, m in pooled.items() if rs[0] == r})
        figs = {figure: within_fold_figures(classes)[figure]}
        t = format_mrmc(stacked, patient_of, classes, figures=figs, estimator="within-fold", interaction=interaction,
                        interaction_figure=figure, convention="mrmcaov")  # untruncated: no max(Cov2 - Cov3, 0)
        t = t[(t["analysis"] == "FRRC") & (t["contrast"] != "all formats")]
        rows += [{"repeat": r, "frac": int(x.frac), "contrast": x.contrast, "v": float(x.se) ** 2}
                 for x in t.itertuples()]
    return pd.DataFrame(rows, columns=["repeat", "frac", "contrast", "v"])


def with_fold_shared_variance(averaged: pd.DataFrame, pooled: dict, patient_of: pd.Series, classes, folds: int,
                              figure: str = "aauc", interaction: tuple[str, str] | None = None,
                              alpha: float = 0.05) -> pd.DataFrame:
    """``averaged`` (:func:`anapart.metrics.replicates.averaged_mrmc`) with the within-fold rows of
    ``figure`` (pairs and the interaction, RRRC and FRRC) widened by the fold-shared variance:
    se, df2, CI and p recomputed, the estimate unchanged, tau^2_hat in ``reason``. Other rows (the
    global test, per-class figures, the pooled sensitivity) are returned as they were."""
    out = averaged.copy()
    if folds < 2:
        return out
    per_fold = fold_contrasts(pooled, classes, interaction, figure)
    case = repeat_case_variances(pooled, patient_of, classes, figure, interaction)
    rows = out[(out["estimator"] == "within-fold") & (out["figure"] == figure) & (out["contrast"] != "all formats")]
    for i, row in rows.iterrows():
        d = per_fold.get((int(row["frac"]), row["contrast"]))
        v = case[(case["frac"] == int(row["frac"])) & (case["contrast"] == row["contrast"])].sort_values("repeat")
        comp = fold_components(d, v["v"].to_numpy()) if d is not None else {"df": 0, "repeats": 0, "tau2": np.nan}
        if not (np.isfinite(row["se"]) and np.isfinite(row["estimate"])):
            continue
        if comp["df"] < MIN_DF or not np.isfinite(comp["tau2"]):
            why = (f"{SKIPPED}: {comp['repeats']} repeat(s) x (K - 1) = {comp['df']} between-fold df (< {MIN_DF}); "
                   "the interval is conditional on these folds' segmenters and subset draws")
        else:
            df = row["df2"] if row["analysis"] == "RRRC" else np.inf
            new = add_fold_shared(row["estimate"], row["se"], df, comp, alpha)
            out.loc[i, ["se", "ci_low", "ci_high", "p", "df2"]] = [new["se"], new["ci_low"], new["ci_high"], new["p"],
                                                                   new["df"]]
            finite = np.isfinite(new["df"])
            if not is_interaction(row["contrast"]):  # the pair's own t = 2 test: F(1, df2) = t^2
                out.loc[i, ["statistic", "value", "p_global"]] = ["F" if finite else "chi2",
                                                                  (row["estimate"] / new["se"]) ** 2, new["p"]]
            else:
                out.loc[i, "statistic"] = "t" if finite else "z"
            what = NOTE if comp["tau2"] > 0 else ZERO  # zero: the folds vary no more than their patients explain
            why = (f"{what}: tau^2 = {comp['tau2']:.3g} over {comp['repeats']} x {comp['folds']} folds "
                   f"({comp['df']} between-fold df)")
        out.loc[i, "reason"] = why if pd.isna(row["reason"]) else f"{row['reason']}; {why}"
    pairs = out[(out["estimator"] == "within-fold") & (out["figure"] == figure) & (out["contrast"] != "all formats")
                & ~out["contrast"].map(is_interaction)]
    if len(pairs):
        out.loc[pairs.index, "p_holm"] = holm_by(pairs, ["frac", "figure", "analysis"])["p_holm"]
    return out
