"""What every network of one fold shares, in the variance of the replicates' primary contrast.

Why (issue 30 item 2): a fold has one segmenter, one set of crop windows and one 25%/50% subset
draw, shared by every network trained in it. Such a fold x format effect moves the fold's contrast
for all networks alike, so it is neither network x format spread (MS(T:R) cannot see it) nor
patient spread: the patient jackknife sees about (K - 1)/n of it, because it never retrains. Left
out, a fold x format SD that makes the former primary reject 16% at alpha 0.05 still makes the
within-fold primary reject 8.5-9.5% at 0.025 (``benchmarks/false_positives.py``).

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
each repeat redraws its folds and retrains). The jackknife itself sees (K - 1)/n of tau^2, so
tau^2_hat estimates tau^2 (1 - (K - 1)/n) and the sum of the two is unbiased. The df of the sum follow Satterthwaite (1946), tau^2_hat
with R (K - 1) df, so that with tau^2_hat = 0 the test is Hillis' exactly. The estimate also holds
the per-fold models' own noise averaged over networks, which MS(T:R) holds already: a small
double count, on the conservative side. Its check against the simulated truth is in
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


def excess_fold_variance(per_fold: np.ndarray, case_var: np.ndarray) -> float:
    """tau^2_hat = max(0, mean_r [S^2_r - K V_r]) from an R x K array of fold contrasts and the R
    patient-only variances V_r of each repeat's contrast; NaN when no repeat has two folds."""
    d = np.atleast_2d(np.asarray(per_fold, float))
    v = np.asarray(case_var, float).reshape(-1)
    r, k = d.shape
    if k < 2 or len(v) != r:
        return float("nan")
    terms = [d[i].var(ddof=1) - k * v[i] for i in range(r) if np.isfinite(d[i]).all() and np.isfinite(v[i])]
    return max(0.0, float(np.mean(terms))) if terms else float("nan")


def add_fold_shared(estimate: float, se: float, df: float, tau2: float, repeats: int, folds: int,
                    alpha: float = 0.05) -> dict:
    """The contrast's SE, Satterthwaite df, CI at 1 - alpha and p once tau2 / (R K) joins its
    variance (``df`` inf for FRRC's normal reference)."""
    c = tau2 / (repeats * folds)
    v = se ** 2 + c
    part_or = se ** 4 / df if np.isfinite(df) else 0.0
    part_f = c ** 2 / (repeats * (folds - 1))
    df_new = v ** 2 / (part_or + part_f) if part_or + part_f > 0 else np.inf
    se_new = float(np.sqrt(v))
    q = st.t.ppf(1 - alpha / 2, df_new) if np.isfinite(df_new) else st.norm.ppf(1 - alpha / 2)
    z = estimate / se_new
    p = 2 * (st.t.sf(abs(z), df_new) if np.isfinite(df_new) else st.norm.sf(abs(z)))
    return {"se": se_new, "df": float(df_new), "ci_low": estimate - q * se_new, "ci_high": estimate + q * se_new,
            "p": float(p)}


def repeat_case_variances(pooled: dict, patient_of: pd.Series, classes, figure: str,
                          interaction: tuple[str, str] | None) -> pd.DataFrame:
    """Per repeat (seeds averaged), fraction and contrast: the patient-only variance of the
    network-averaged within-fold contrast (FRRC SE squared: networks fixed, patients random)."""
    rows = []
    for r in sorted({rs[0] for rs in pooled}):
        stacked = stack_replicates({rs: m for rs, m in pooled.items() if rs[0] == r})
        figs = {figure: within_fold_figures(classes)[figure]}
        t = format_mrmc(stacked, patient_of, classes, figures=figs, estimator="within-fold", interaction=interaction,
                        interaction_figure=figure)
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
    repeats = len({rs[0] for rs in pooled})
    if folds < 2:
        return out
    per_fold = fold_contrasts(pooled, classes, interaction, figure)
    case = repeat_case_variances(pooled, patient_of, classes, figure, interaction)
    rows = out[(out["estimator"] == "within-fold") & (out["figure"] == figure) & (out["contrast"] != "all formats")]
    for i, row in rows.iterrows():
        d = per_fold.get((int(row["frac"]), row["contrast"]))
        v = case[(case["frac"] == int(row["frac"])) & (case["contrast"] == row["contrast"])].sort_values("repeat")
        if d is None or not np.isfinite(row["se"]) or not np.isfinite(row["estimate"]):
            continue
        tau2 = excess_fold_variance(d, v["v"].to_numpy())
        if not np.isfinite(tau2):
            continue
        df = row["df2"] if row["analysis"] == "RRRC" else np.inf
        new = add_fold_shared(row["estimate"], row["se"], df, tau2, repeats, folds, alpha)
        out.loc[i, ["se", "ci_low", "ci_high", "p", "df2"]] = [new["se"], new["ci_low"], new["ci_high"], new["p"],
                                                               new["df"]]
        if not is_interaction(row["contrast"]):  # the pair's own t = 2 test: F(1, df2) = t^2
            out.loc[i, ["statistic", "value", "p_global"]] = ["F" if np.isfinite(new["df"]) else "chi2",
                                                              (row["estimate"] / new["se"]) ** 2, new["p"]]
        why = f"{NOTE}: tau^2 = {tau2:.3g} over {repeats} x {folds} folds"
        out.loc[i, "reason"] = why if pd.isna(row["reason"]) else f"{row['reason']}; {why}"
    pairs = out[(out["estimator"] == "within-fold") & (out["figure"] == figure) & (out["contrast"] != "all formats")
                & ~out["contrast"].map(is_interaction)]
    if len(pairs):
        out.loc[pairs.index, "p_holm"] = holm_by(pairs, ["frac", "figure", "analysis"])["p_holm"]
    return out
