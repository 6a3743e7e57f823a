"""Obuchowski-Rockette (OR) multi-reader multi-case (MRMC) analysis with Hillis' denominator df.

Why: here the "readers" are trained networks, the "modalities" image formats and the "cases"
patients, fully crossed. A format comparison must generalise over both the networks one could have
trained and the patients one could have sampled, and must use the correlation that reading the
same patients induces between figures of merit (FOMs). The OR model does this from the FOM of
every (modality, reader) and the case-sampling covariance matrix of those FOMs.

Cases are *case units*: a patient contributes all of its rows (slices), and the jackknife leaves
out a whole unit. The FOM is the empirical AUC of a binary truth, or any callable of one cell's rows
(e.g. :func:`mean_ovr_auc`, the 6-class "aAUC").

Formulas, and the conventions copied (averaging of Cov1-3, single-modality df, FRRC and RRFC forms,
variance components), with no new statistics:
- Obuchowski NA, Rockette HE (1995), Commun Stat Simul Comput 24:285-308 (the OR model).
- Hillis SL, Obuchowski NA, Schartz KM, Berbaum KS (2005), Stat Med 24:1579-1607, and Hillis SL
  (2007), Stat Med 26:596-619 (denominator df, max(Cov2 - Cov3, 0)).
- DeLong ER, DeLong DM, Clarke-Pearson DL (1988), Biometrics 44:837-845 (structural components).
- Gallas BD, Pennello GA, Myers KJ (2007), JOSA A 24:B70-B80 (unbiased U-statistic covariance).
- R package MRMCaov (Smith, Hillis, Pesce): R/summary.R, R/mrmc_tests.R, R/utils.R (vcov_comps),
  R/jackknife.R, R/DeLong.R, R/unbiased.R; RJafroc (Chakraborty): UtilORVarComponentsFactorial and
  "The RJafroc Book", chapter "Obuchowski Rockette Applications" (dataset02 = Van Dyke 1993).
The Van Dyke numbers published there are the oracle of tests/metrics/test_mrmc.py.

Choices where those sources differ: CIs are not clipped to [0, 1] (MRMCaov clips; a caller's FOM
need not be bounded); the FRRC denominator Var - Cov1 + (r-1)(Cov2 - Cov3) has no max() (MRMCaov;
RJafroc takes max(Cov2 - Cov3, 0)); a reader's FRRC difference uses that difference's own variance
(for two modalities the same as their 2 (Var_j - Cov1_j)).
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

COV_METHODS = ("jackknife", "delong", "unbiased")


def empirical_auc(truth, score) -> float:
    """Wilcoxon/Mann-Whitney AUC of binary ``truth`` vs ``score``, ties 1/2; NaN if a class is empty."""
    truth = np.asarray(truth).astype(bool)
    n1 = int(truth.sum())
    n0 = truth.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(np.asarray(score, dtype=float))  # midranks count ties 1/2
    return float((ranks[truth].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def mean_ovr_auc(label: str, prob_columns: dict) -> Callable[[pd.DataFrame], float]:
    """FOM: mean over classes of the one-vs-rest empirical AUC of ``label == class`` vs its probability
    column (``prob_columns``: class -> column). Carries ``classes`` so the fit checks each is present."""
    def fom(frame: pd.DataFrame) -> float:
        y = frame[label].to_numpy()
        return float(np.mean([empirical_auc(y == c, frame[col].to_numpy()) for c, col in prob_columns.items()]))

    fom.classes = tuple(prob_columns)
    fom.__name__ = "mean one-vs-rest AUC"
    return fom


def _levels(col: pd.Series) -> list:
    values = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(col)]  # plain in messages
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _few(items, n: int = 3) -> str:
    items = list(items)
    return "; ".join(map(str, items[:n])) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def check_design(data: pd.DataFrame, reader: str, modality: str, case: str, truth: str | None,
                 score: str | None, classes=None, case_truth: bool = True) -> tuple[list, list, list]:
    """Modalities, readers, cases of a fully crossed design, or ValueError naming what is missing.

    Fully crossed: every reader reads every case unit in every modality (a unit may have several rows;
    row counts may differ between cells). ``case_truth``: the truth is a property of the case unit,
    so all its rows agree; otherwise each cell must hold the same truths for a unit. Each class must
    occur in >= 2 units, or leaving one out would leave the FOM undefined."""
    cols = [c for c in (reader, modality, case, truth, score) if c is not None]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not found (columns: {list(data.columns)})")
    for c in cols:
        if data[c].isna().any():
            raise ValueError(f"column {c!r} has {int(data[c].isna().sum())} empty value(s)")
    if score is not None:
        s = pd.to_numeric(data[score], errors="coerce")
        if not np.isfinite(s.to_numpy(dtype=float)).all():
            raise ValueError(f"score column {score!r} has non-numeric or infinite values")
    modalities, readers, cases = _levels(data[modality]), _levels(data[reader]), _levels(data[case])
    present = set(zip(data[modality], data[reader]))
    absent = [f"reader {r} has no rows for modality {m}" for m in modalities for r in readers if (m, r) not in present]
    if absent:
        raise ValueError(f"not fully crossed: {_few(absent)}")
    if len(readers) < 2:
        raise ValueError(f"modality {_few(modalities)} has only one reader ({readers[0]}): OR needs >= 2 readers")
    full = pd.MultiIndex.from_product([modalities, readers, cases])
    counts = data.groupby([modality, reader, case], sort=False).size().reindex(full)
    holes = [f"case {c} missing for reader {r} x modality {m}" for m, r, c in counts.index[counts.isna()]]
    if holes:
        raise ValueError(f"not fully crossed: {len(holes)} (modality, reader, case) cell(s) empty: {_few(holes)}")
    if truth is None:
        return modalities, readers, cases
    if case_truth:
        n_truth = data.groupby(case)[truth].nunique()
        bad = [f"case {c}: {sorted(map(str, pd.unique(data.loc[data[case] == c, truth])))}"
               for c in n_truth.index[n_truth > 1]]
    else:
        per_cell = data.groupby([case, modality, reader])[truth].agg(lambda s: tuple(sorted(s)))
        n_sets = per_cell.groupby(level=0).nunique()
        bad = [f"case {c}" for c in n_sets.index[n_sets > 1]]
    if bad:
        raise ValueError(f"truth disagrees between rows of the same case: {_few(bad)}")
    units = data.groupby(truth)[case].nunique()
    for c in classes if classes is not None else []:
        n = int(units.get(c, 0))
        if n < 2:
            what = "absent: no case has" if n == 0 else "in only one case unit, which the jackknife would drop:"
            raise ValueError(f"class {c!r} {what} truth {c!r}; each class needs >= 2 case units")
    return modalities, readers, cases


def jackknife_cov(theta_jk: np.ndarray) -> np.ndarray:
    """(n-1)/n * sum_k (theta_(-k) - mean)(theta_(-k) - mean)^T over the n leave-one-unit-out rows."""
    n = theta_jk.shape[0]
    d = theta_jk - theta_jk.mean(axis=0)
    return (n - 1) / n * d.T @ d


def _psi(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def delong_cov(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """DeLong covariance of the empirical AUCs of the columns of ``scores`` (cases x cells), one row
    per case: S10/n1 + S01/n0 from the placement values (structural components), ddof 1."""
    truth = np.asarray(truth).astype(bool)
    pos, neg = scores[truth], scores[~truth]
    v10 = np.stack([_psi(pos[:, j], neg[:, j]).mean(axis=1) for j in range(scores.shape[1])], axis=1)
    v01 = np.stack([_psi(pos[:, j], neg[:, j]).mean(axis=0) for j in range(scores.shape[1])], axis=1)
    return np.atleast_2d(np.cov(v10, rowvar=False)) / len(pos) + np.atleast_2d(np.cov(v01, rowvar=False)) / len(neg)


def unbiased_cov(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Unbiased covariance of the empirical AUCs (Gallas et al. 2007): E[A_i A_j] expanded over pairs
    of (positive, negative) pairs sharing both, only the positive, only the negative or neither case;
    each moment estimated by its U-statistic, minus the unbiased estimate of A_i A_j. Can be < 0."""
    truth = np.asarray(truth).astype(bool)
    pos, neg = scores[truth], scores[~truth]
    n1, n0 = len(pos), len(neg)
    n = n1 * n0
    psi = np.stack([_psi(pos[:, j], neg[:, j]) for j in range(scores.shape[1])])  # cells x n1 x n0
    flat = psi.reshape(len(psi), -1)
    rows, cols, tot = psi.sum(axis=2), psi.sum(axis=1), flat.sum(axis=1)
    z, p, q, s = flat @ flat.T, rows @ rows.T, cols @ cols.T, np.outer(tot, tot)
    m11 = z / n  # same positive, same negative
    m10 = (p - z) / (n * (n0 - 1))  # same positive, different negatives
    m01 = (q - z) / (n * (n1 - 1))  # different positives, same negative
    m00 = (s - p - q + z) / (n * (n1 - 1) * (n0 - 1))  # disjoint pairs: estimates A_i A_j
    return (m11 + (n0 - 1) * m10 + (n1 - 1) * m01 + (n1 - 1) * (n0 - 1) * m00) / n - m00


def _p_of(stat: float, df1: float, df2: float) -> float:
    if np.isinf(df2):  # F(df1, inf) = chi2(df1) / df1
        return float(stats.chi2.sf(stat * df1, df1))
    return float(stats.f.sf(stat, df1, df2))


def _ci(est, se, df, alpha):
    q = stats.norm.ppf(1 - alpha / 2) if df is None else stats.t.ppf(1 - alpha / 2, df)
    return est - q * se, est + q * se


def _nan_test(statistic: str, df1, reason: str) -> dict:
    return {"statistic": statistic, "value": np.nan, "df1": df1, "df2": np.nan, "p": np.nan, "reason": reason}


def or_test(theta: np.ndarray, cov: np.ndarray, modalities, readers, alpha: float = 0.05) -> dict:
    """OR analysis of FOMs ``theta`` (modalities x readers) with ``cov`` over cells in modality-major
    order: variance components and the RRRC (Hillis df), FRRC and RRFC tests, pairwise differences
    of reader-averaged FOMs and single-modality CIs. NaN p (with ``reason``) where undefined."""
    t, r = theta.shape
    mi, ri = np.divmod(np.arange(t * r), r)
    same_m, same_r = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]

    def avg(mask):
        return float(cov[mask].mean()) if mask.any() else np.nan

    var, cov1, cov2, cov3 = avg(same_m & same_r), avg(~same_m & same_r), avg(same_m & ~same_r), avg(~same_m & ~same_r)
    grand, mt, mr = theta.mean(), theta.mean(axis=1), theta.mean(axis=0)
    ms_r = t * ((mr - grand) ** 2).sum() / (r - 1)
    ms_t = r * ((mt - grand) ** 2).sum() / (t - 1) if t > 1 else np.nan
    resid = theta - mt[:, None] - mr[None, :] + grand
    ms_tr = (resid ** 2).sum() / ((t - 1) * (r - 1)) if t > 1 else np.nan
    ms_t, ms_r, ms_tr = float(ms_t), float(ms_r), float(ms_tr)
    comps = {"MS(T)": ms_t, "MS(R)": ms_r, "MS(T:R)": ms_tr, "Var": var, "Cov1": cov1, "Cov2": cov2, "Cov3": cov3,
             **{f"rho{k}": c / var if var > 0 else np.nan for k, c in enumerate((cov1, cov2, cov3), 1)},
             "var_R": (ms_r - ms_tr) / t - cov1 + cov3, "var_TR": ms_tr - var + cov1 + (cov2 - cov3)}
    per = pd.DataFrame({"modality": modalities, "fom": mt,
                        "MS(R)": theta.var(axis=1, ddof=1),
                        "Var": [avg(same_m & same_r & (mi[:, None] == i)) for i in range(t)],
                        "Cov2": [avg(same_m & ~same_r & (mi[:, None] == i)) for i in range(t)]})
    pairs = list(itertools.combinations(range(t), 2))
    pair_cols = {"modality_a": [modalities[a] for a, _ in pairs], "modality_b": [modalities[b] for _, b in pairs],
                 "estimate": [mt[a] - mt[b] for a, b in pairs]}
    one = "one modality: nothing to compare" if t < 2 else None

    def pair_table(se, df):
        tab = pd.DataFrame(pair_cols)
        tab["se"], tab["df"] = se, np.inf if df is None else df
        tab["ci_low"], tab["ci_high"] = _ci(tab["estimate"], se, df, alpha)
        z = tab["estimate"] / se
        tab["p"] = 2 * (stats.norm.sf(abs(z)) if df is None else stats.t.sf(abs(z), df))
        return tab

    def mod_table(v, df):
        tab = per[["modality", "fom"]].copy()
        tab["se"] = np.sqrt(np.where(v > 0, v, np.nan) / r)
        tab["df"] = np.inf if df is None else df
        tab["ci_low"], tab["ci_high"] = _ci(tab["fom"], tab["se"], df, alpha)
        return tab

    # random readers, random cases (Hillis 2007)
    den = ms_tr + r * max(cov2 - cov3, 0.0) if t > 1 else np.nan
    if one or not den > 0:
        rrrc = _nan_test("F", t - 1, one or f"denominator MS(T:R) + r*max(Cov2-Cov3,0) = {den:.3g} is not > 0")
    else:
        df2 = den ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1))) if ms_tr > 0 else np.inf
        rrrc = {"statistic": "F", "value": float(ms_t / den), "df1": t - 1, "df2": float(df2),
                "p": _p_of(ms_t / den, t - 1, df2),
                "reason": "MS(T:R) = 0: df2 infinite" if np.isinf(df2) else None}
    ms_ri = per["MS(R)"].to_numpy()
    v = ms_ri + r * np.maximum(per["Cov2"].to_numpy(), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # MS(R)_i = 0: df infinite (or v = 0: no CI)
        df_i = np.where(ms_ri > 0, v ** 2 / (ms_ri ** 2 / (r - 1)), np.inf)
    rrrc_se = np.sqrt(2 / r * den) if rrrc["reason"] is None or np.isinf(rrrc["df2"]) else np.nan
    out = {"components": comps, "per_modality": per,
           "rrrc": {"test": rrrc, "pairs": pair_table(rrrc_se, rrrc["df2"]), "modalities": mod_table(v, df_i)}}

    # fixed readers, random cases: chi-square, normal CIs
    den_f = var - cov1 + (r - 1) * (cov2 - cov3) if t > 1 else np.nan
    if one or not den_f > 0:
        frrc = _nan_test("chi2", t - 1, one or f"denominator Var - Cov1 + (r-1)(Cov2-Cov3) = {den_f:.3g} is not > 0")
    else:
        x2 = (t - 1) * ms_t / den_f
        frrc = {"statistic": "chi2", "value": float(x2), "df1": t - 1, "df2": np.inf,
                "p": float(stats.chi2.sf(x2, t - 1)), "reason": None}
    v_f = per["Var"].to_numpy() + (r - 1) * np.maximum(per["Cov2"].to_numpy(), 0.0)
    rows = []
    for j, (a, b) in itertools.product(range(r), pairs):
        ia, ib = a * r + j, b * r + j
        d_var = cov[ia, ia] + cov[ib, ib] - 2 * cov[ia, ib]  # this difference's own variance
        se = np.sqrt(d_var) if d_var > 0 else np.nan
        lo, hi = _ci(theta[a, j] - theta[b, j], se, None, alpha)
        rows.append({"reader": readers[j], "modality_a": modalities[a], "modality_b": modalities[b],
                     "estimate": theta[a, j] - theta[b, j], "se": se, "ci_low": lo, "ci_high": hi,
                     "p": 2 * stats.norm.sf(abs((theta[a, j] - theta[b, j]) / se))})
    out["frrc"] = {"test": frrc, "pairs": pair_table(np.sqrt(2 / r * den_f) if frrc["reason"] is None else np.nan,
                                                     None),
                   "modalities": mod_table(v_f, None), "readers": pd.DataFrame(rows)}

    # random readers, fixed cases: the conventional two-way ANOVA of the FOMs
    if one or not ms_tr > 0:
        rrfc = _nan_test("F", t - 1, one or "MS(T:R) = 0: no reader x modality variation to test against")
    else:
        rrfc = {"statistic": "F", "value": float(ms_t / ms_tr), "df1": t - 1, "df2": (t - 1) * (r - 1),
                "p": _p_of(ms_t / ms_tr, t - 1, (t - 1) * (r - 1)), "reason": None}
    out["rrfc"] = {"test": rrfc,
                   "pairs": pair_table(np.sqrt(2 / r * ms_tr) if rrfc["reason"] is None else np.nan, (t - 1) * (r - 1)),
                   "modalities": mod_table(per["MS(R)"].to_numpy(), r - 1)}
    return out


def or_analysis(data: pd.DataFrame, *, reader: str = "reader", modality: str = "modality", case: str = "case",
                truth: str | None = "truth", score: str | None = "score",
                fom: Callable[[pd.DataFrame], float] | None = None, cov: str = "jackknife", classes=None,
                case_truth: bool = True, alpha: float = 0.05) -> dict:
    """OR-Hillis analysis of a long table (one row per reading; a case unit may have several rows).

    ``fom``: None for the empirical AUC of 0/1 ``truth`` vs ``score``, else a callable of one
    (modality, reader) cell's rows; ``classes`` (or ``fom.classes``) must each occur in >= 2 units.
    ``cov``: 'jackknife' over case units (any FOM), 'delong' or 'unbiased' (binary AUC, one row per
    case unit and cell). Returns plain dicts and DataFrames: ``fom`` (modalities x readers),
    ``cov``, ``jackknife`` (leave-one-unit-out FOMs, or None), ``components``, ``per_modality`` and
    ``rrrc`` / ``frrc`` / ``rrfc`` each with ``test``, ``pairs``, ``modalities``."""
    if cov not in COV_METHODS:
        raise ValueError(f"cov must be one of {COV_METHODS}, not {cov!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    binary = fom is None
    if binary:
        if truth is None or score is None:
            raise ValueError("the empirical AUC needs a truth and a score column")
        if truth in data.columns and not set(pd.unique(data[truth])) <= {0, 1}:
            odd = sorted(map(str, set(pd.unique(data[truth])) - {0, 1}))
            raise ValueError(f"truth column {truth!r} must be 0/1, found {_few(odd)}")
        if truth in data.columns:
            data = data.assign(**{truth: data[truth].astype(int)})  # bool or 0.0/1.0 -> 0/1
        classes = (0, 1)
        fom = lambda f: empirical_auc(f[truth].to_numpy(), f[score].to_numpy())  # noqa: E731
    elif cov != "jackknife":
        raise ValueError(f"cov={cov!r} is defined only for the binary empirical AUC; use cov='jackknife'")
    classes = classes if classes is not None else getattr(fom, "classes", None)
    modalities, readers, cases = check_design(data, reader, modality, case, truth, score, classes, case_truth)
    codes = pd.Categorical(data[case], categories=cases).codes
    index = data.groupby([modality, reader], sort=False).indices
    cells = [(m, rd) for m in modalities for rd in readers]
    frames = [(data.iloc[index[c]], codes[index[c]]) for c in cells]
    theta = np.array([fom(f) for f, _ in frames], dtype=float)
    if not np.isfinite(theta).all():
        bad = [c for c, v in zip(cells, theta) if not np.isfinite(v)]
        raise ValueError(f"FOM not finite for (modality, reader) {_few(bad)}")
    jk = None
    if cov == "jackknife":
        theta_jk = np.array([[fom(f[k_codes != k]) for f, k_codes in frames] for k in range(len(cases))])
        if not np.isfinite(theta_jk).all():
            k = int(np.where(~np.isfinite(theta_jk).all(axis=1))[0][0])
            raise ValueError(f"FOM undefined when case {cases[k]} is left out")
        jk = pd.DataFrame(theta_jk, index=pd.Index(cases, name=case), columns=pd.MultiIndex.from_tuples(cells))
        covm = jackknife_cov(theta_jk)
    else:
        n_rows = data.groupby([modality, reader, case]).size()
        if n_rows.max() > 1:
            raise ValueError(f"cov={cov!r} needs one row per case unit and cell; case "
                             f"{n_rows.idxmax()[2]} has {n_rows.max()}: use cov='jackknife'")
        wide = data.pivot(index=case, columns=[modality, reader], values=score).loc[cases, cells]
        t_case = data.groupby(case)[truth].first().loc[cases].to_numpy()
        covm = (delong_cov if cov == "delong" else unbiased_cov)(t_case, wide.to_numpy(dtype=float))
    res = or_test(theta.reshape(len(modalities), len(readers)), covm, modalities, readers, alpha)
    res.update({
        "design": {"modalities": modalities, "readers": readers, "n_cases": len(cases), "n_rows": len(data),
                   "cov_method": cov, "fom": getattr(fom, "__name__", "fom") if not binary else "empirical AUC",
                   "alpha": alpha},
        "fom": pd.DataFrame(theta.reshape(len(modalities), len(readers)), index=pd.Index(modalities, name=modality),
                            columns=pd.Index(readers, name=reader)),
        "cov": pd.DataFrame(covm, index=pd.MultiIndex.from_tuples(cells), columns=pd.MultiIndex.from_tuples(cells)),
        "jackknife": jk})
    return res
