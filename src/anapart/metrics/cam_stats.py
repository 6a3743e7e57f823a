"""Statistics of the Grad-CAM scores of :mod:`anapart.partition.cam`: summaries, tests between formats, agreement.

Tests between formats use the right unit (:func:`cam_tests`): the co-primary is an OR-RRRC analysis
(:func:`or_tests`, unit ``OR-RRRC``) with the mean score per (network, format, patient) as the figure
of merit, networks the readers and patients the cases (jackknife over patients); it always answers.
Beside it: paired t-tests of model means (unit network), a mixed model on per-(patient, model)
means with random network, network x format and patient effects (the sensitivity analysis; no p
when the fit is not regular: 17-27% of null data sets), and the paper's pooled t-test on slices
(``paper``); p-values are Holm-adjusted. Reviewer scores (optional) are
compared with the automatic ones (:func:`agreement`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scipy.stats import t as t_dist

from anapart.metrics.cam_scores import SCORE_COLUMNS, binned
from anapart.metrics.mrmc import jackknife_cov, or_test
from anapart.metrics.stats import format_pairs, holm_by, per_model_table

TESTED = ("score_binned", "score_continuous", "corrected", "common_corrected")  # what the network-unit and mixed tests compare


def summarize(scores: dict[tuple[str, str, int], pd.DataFrame]) -> pd.DataFrame:
    """Mean ± SD per model (net, fmt, frac) of the raw, chance and chance-corrected CAM scores, in
    each format's own window and in the common window (maps without a bright pixel are left out;
    ``n_flat`` counts the maps flat over the whole input (:func:`anapart.metrics.cam_scores.flat_maps`),
    ``n_common_flat`` the maps flat inside the common window, NaN there)."""
    def row(s: pd.DataFrame) -> dict:
        right = int(_is_correct(s).sum()) if "correct" in s else np.nan
        flat = int(s["map_flat"].astype(str).str.lower().isin(["true", "1"]).sum()) if "map_flat" in s else np.nan
        s = s.reindex(columns=SCORE_COLUMNS).apply(pd.to_numeric, errors="coerce")
        ok = s["score_continuous"].notna()
        return {"n": int(ok.sum()), "n_correct": right, "n_flat": flat,
                "score_mean": s["score_continuous"].mean(), "score_sd": s["score_continuous"].std(ddof=1),
                "binned_mean": s["score_binned"].mean(), "binned_sd": s["score_binned"].std(ddof=1),
                "pointing_mean": s["pointing"].mean(),
                "chance_mean": s.loc[ok, "chance"].mean(),
                "corrected_mean": s["corrected"].mean(), "corrected_sd": s["corrected"].std(ddof=1),
                "n_common": int(s["common_score"].notna().sum()),
                "n_common_flat": int(s["common_score"].isna().sum()),
                "common_score_mean": s["common_score"].mean(),
                "common_chance_mean": s.loc[s["common_score"].notna(), "common_chance"].mean(),
                "common_corrected_mean": s["common_corrected"].mean(),
                "common_corrected_sd": s["common_corrected"].std(ddof=1)}

    return per_model_table(scores, row)


def _is_correct(s: pd.DataFrame) -> pd.Series:
    """The ``correct`` column as booleans, whether read back from CSV (True/False text) or not."""
    return s["correct"].astype(str).str.lower().isin(["true", "1"])


TEST_COLUMNS = ["unit", "frac", "score", "contrast", "fmt_a", "fmt_b", "estimate", "se", "ci_low", "ci_high",
                "ci_level", "statistic", "statistic_kind", "df", "p", "p_holm", "n", "note"]


def _row(unit, frac, score, a, b, **kw) -> dict:
    return {"unit": unit, "frac": frac, "score": score, "contrast": f"{a} - {b}", "fmt_a": a, "fmt_b": b, **kw}


def _fracs(frame: pd.DataFrame) -> str:
    return "+".join(str(f) for f in sorted(frame["frac"].unique(), reverse=True))


def format_ttests(scores: dict[tuple[str, str, int], pd.DataFrame], pairs, column: str = "score_binned") -> pd.DataFrame:
    """The paper's test: independent t-tests (pingouin) of per-slice scores between formats,
    networks pooled, per fraction, on each model's correctly classified slices (as the paper).
    Slices are not independent (the same slices in every format, several slices per patient, four
    networks), so these p-values are too small; kept as
    ``unit = paper`` to reproduce the paper, not to conclude from."""
    import pingouin as pg

    rows = []
    for frac in sorted({k[2] for k in scores}, reverse=True):
        pooled: dict[str, list] = {}
        for (net, fmt, f), s in scores.items():
            if f == frac:
                s = s[_is_correct(s)] if "correct" in s else s  # the paper's slices
                pooled.setdefault(fmt, []).append(pd.to_numeric(s[column], errors="coerce").dropna())
        pooled = {k: pd.concat(v) for k, v in pooled.items()}
        for a, b in pairs:
            xa, xb = pooled.get(a, pd.Series(dtype=float)), pooled.get(b, pd.Series(dtype=float))
            base = dict(estimate=xa.mean() - xb.mean(), statistic_kind="T", n=len(xa) + len(xb), p_holm=np.nan)
            if len(xa) < 2 or len(xb) < 2:
                rows.append(_row("paper", str(frac), column, a, b, statistic=np.nan, df=np.nan, p=np.nan,
                                 note="fewer than 2 scored slices in a format", **base))
                continue
            t = pg.ttest(xa, xb, paired=False).iloc[0]
            rows.append(_row("paper", str(frac), column, a, b, statistic=t["T"], df=t["dof"], p=t["p_val"],
                             note=f"independent t-test on slices, networks pooled (n {len(xa)} vs {len(xb)}); "
                                  "pseudo-replicated", **base))
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def network_ttests(summary: pd.DataFrame, pairs, scores=TESTED) -> pd.DataFrame:
    """Paired t-tests (pingouin) between formats with the model as the unit: each model's mean
    score, paired by (network, fraction); Holm-corrected over the format pairs of each score."""
    import pingouin as pg

    rows = []
    for score in scores:
        col = "binned_mean" if score == "score_binned" else {"score_continuous": "score_mean"}.get(score, f"{score}_mean")
        wide = summary.pivot_table(index=["net", "frac"], columns="fmt", values=col)
        for a, b in pairs:
            pair = wide[[a, b]].dropna() if {a, b} <= set(wide.columns) else pd.DataFrame(columns=[a, b])
            base = dict(statistic_kind="T", n=len(pair), estimate=float((pair[a] - pair[b]).mean()) if len(pair) else np.nan)
            if len(pair) < 2:
                rows.append(_row("network", _fracs(summary), score, a, b, statistic=np.nan, df=np.nan, p=np.nan,
                                 note="fewer than 2 (network, fraction) pairs with scores in both formats", **base))
                continue
            t = pg.ttest(pair[a].to_numpy(), pair[b].to_numpy(), paired=True).iloc[0]
            d = (pair[a] - pair[b]).to_numpy()
            half = t_dist.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            base.update(ci_low=d.mean() - half, ci_high=d.mean() + half)
            rows.append(_row("network", _fracs(summary), score, a, b, statistic=t["T"], df=t["dof"], p=t["p_val"],
                             note=f"paired by (network, fraction): {len(pair)} pairs of model means; test patients "
                                  "fixed (these models on these patients; the mixed rows test formats for other "
                                  "patients)", **base))
    return holm(pd.DataFrame(rows, columns=TEST_COLUMNS))


SPARSE_FROM = 200  # random-effect levels above which MixedLM's sparse solver is faster (same fit; 5x at 616 levels)


def patient_means(long: pd.DataFrame, value: str) -> pd.DataFrame:
    """Mean ``value`` per (patient, network, format, fraction), with its slice count ``n_slices``.

    The unit of :func:`mixed_model`: each model scores the test slices of every patient, so many
    slices of one patient under one model add no information about the model, only
    pseudo-replication (thousands of slice residuals would stand in for the few trained models).
    """
    d = long.dropna(subset=[value])
    g = d.groupby(["patient", "net", "fmt", "frac"], as_index=False, sort=True)
    return g[value].mean().merge(g.size().rename(columns={"size": "n_slices"}), on=["patient", "net", "fmt", "frac"])


def containment_df(data: pd.DataFrame) -> int:
    """Denominator df of a format contrast: (networks - 1) x (formats - 1), the df of the
    network x format stratum the contrast is judged against (SAS's containment method; exact for
    a balanced design, where the REML contrast is the repeated-measures one)."""
    return int((data["net"].nunique() - 1) * (data["fmt"].nunique() - 1))


BOUNDARY = 1e-4  # a variance component below this share of the total variance sits on the boundary (0)
# The components a format contrast is judged against. Network and patient main effects cancel out
# of a within-network, within-patient contrast (balanced design): their boundary is harmless.
JUDGED_BY = ("network:format", "model", "patient:format")


def mixed_model(data: pd.DataFrame, value: str, pairs, reference: str, patient_format: bool = True,
                alpha: float = 0.05):
    """``value ~ C(fmt) [+ C(frac)]`` with crossed random intercepts for network, trained model
    (network x format; and network x format x fraction when there are several fractions), patient
    and patient x format (statsmodels MixedLM, REML, lbfgs). Fit it on :func:`patient_means`.

    Each format is trained once per network, so a format contrast must be judged against how much
    trained models vary (the network x format component), not against slice or patient residuals:
    without that component a network x format deviation of SD 0.05 and no format effect at all
    gave z = -13.9 (p = 1e-43). Likewise a patient whose lesion is easier to localise in one format
    is so for every network: without ``(1|patient:format)`` such shared effects read as a format
    effect (8.5-15.5% false positives at alpha 0.05 in benchmarks/false_positives.py; 1.0-1.5% with it).
    statsmodels groups are independent blocks, so crossed effects are variance components inside
    one group that holds every row, the documented statsmodels idiom.

    Returns the fit, per format pair (estimate, t, p) of the fixed-effect contrast a - b (the
    fixed effects' covariance; p from t with :func:`containment_df` df, as the variance of the
    few models is estimated, not known), and why its p-values must not be read (empty when they
    may): a fit that did not converge, or a component the contrast is judged against
    (``JUDGED_BY``) on the boundary (below ``BOUNDARY`` of the total variance), where the REML fit
    is not a regular one and the contrast's standard error is not trustworthy. Other warnings are
    in the note.
    """
    import warnings

    import statsmodels.formula.api as smf

    d = data.dropna(subset=[value]).assign(one=1, fmt=lambda x: x["fmt"].astype(str),
                                           frac=lambda x: x["frac"].astype(str), net=lambda x: x["net"].astype(str))
    several = d["frac"].nunique() > 1
    d["net_fmt"] = d["net"] + ":" + d["fmt"]
    formula = f"{value} ~ C(fmt, Treatment(reference='{reference}'))" + (" + C(frac)" if several else "")
    vc = {"network": "0 + C(net)", "network:format": "0 + C(net_fmt)", "patient": "0 + C(patient)"}
    if patient_format:
        d["patient_fmt"] = d["patient"].astype(str) + ":" + d["fmt"]
        vc["patient:format"] = "0 + C(patient_fmt)"
    if several:
        d["model"] = d["net_fmt"] + ":" + d["frac"]
        vc["model"] = "0 + C(model)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        levels = sum(d[c].nunique() for c in ("net", "net_fmt", "patient", *(("model",) if several else ()),
                                              *(("patient_fmt",) if patient_format else ())))
        fit = smf.mixedlm(formula, d, groups="one", re_formula="0", vc_formula=vc,
                          use_sparse=levels > SPARSE_FROM).fit(reml=True, method=["lbfgs"])
    fe = fit.fe_params
    cov = fit.cov_params().loc[fe.index, fe.index].to_numpy()
    df = containment_df(d)

    def coef(fmt: str) -> np.ndarray:
        v = np.zeros(len(fe))
        name = f"C(fmt, Treatment(reference='{reference}'))[T.{fmt}]"
        if fmt != reference:
            v[list(fe.index).index(name)] = 1.0
        return v

    out = {}
    for a, b in pairs:
        L = coef(a) - coef(b)
        est, se = float(L @ fe.to_numpy()), float(np.sqrt(L @ cov @ L))
        t = est / se if se > 0 else np.nan
        ok = np.isfinite(t) and df > 0
        half = float(t_dist.ppf(1 - alpha / 2, df) * se) if ok else np.nan
        out[(a, b)] = (est, t, float(2 * t_dist.sf(abs(t), df)) if ok else np.nan, est - half, est + half)
    warned = []
    for w in caught:
        if "boundary" in str(w.message):
            continue  # judged below from the components themselves
        text = f"{type(w.message).__name__}: {str(w.message).splitlines()[0]}"
        if text not in warned:
            warned.append(text)
    return fit, out, warned, unreadable(fit, warned)


def unreadable(fit, warned=()) -> str:
    """Why a MixedLM fit's p-values must not be reported ('' when they may): no convergence, a
    Hessian that is not positive definite (the standard errors come from it), or a variance
    component on the boundary."""
    if not fit.converged:
        return "the REML fit did not converge"
    if any("positive definite" in w for w in warned):
        return "the REML fit's Hessian is not positive definite: its standard errors are not valid"
    comps = dict(zip(fit.model.exog_vc.names, np.asarray(fit.vcomp, float)))
    total = sum(comps.values()) + float(fit.scale)
    zero = [k for k, v in comps.items() if k in JUDGED_BY and (not np.isfinite(v) or v < BOUNDARY * total)]
    if zero:
        return (f"variance component {', '.join(zero)} on the boundary (~0): not a regular REML fit, its "
                "standard errors cannot be trusted")
    return ""


def mixed_tests(long: pd.DataFrame, pairs, scores=TESTED, alpha: float = 0.05) -> pd.DataFrame:
    """Format contrasts from :func:`mixed_model`, fitted on the per-(patient, model) means of the
    per-slice scores (``long`` has net, fmt, frac, patient and the score columns);
    Holm-corrected over the format pairs of each score."""
    rows = []
    order = [f for p in pairs for f in p]
    for score in scores:
        d = patient_means(long, score) if len(long) else pd.DataFrame(columns=["patient", "net", "fmt", "frac", score])
        enough = d["fmt"].nunique() >= 2 and d["net"].nunique() >= 2 and d["patient"].nunique() >= 2
        note, results = "", {}
        if enough:
            present = sorted(set(d["fmt"]), key=order.index)
            try:
                fit, results, warned, why = mixed_model(d, score, [p for p in pairs if {*p} <= set(present)],
                                                        present[-1], alpha=alpha)
                vcs = dict(zip(fit.model.exog_vc.names, np.asarray(fit.vcomp)))
                several = d["frac"].nunique() > 1
                note = (f"per-(patient, model) means of {int(d['n_slices'].sum())} slices; score ~ format"
                        f"{' + fraction' if several else ''} + (1|network) + (1|network:format)"
                        f"{' + (1|network:format:fraction)' if several else ''} + (1|patient) + "
                        f"(1|patient:format), REML; t with {containment_df(d)} df (containment); var "
                        + ", ".join(f"{k} {v:.3g}" for k, v in vcs.items())
                        + f", residual {fit.scale:.3g}; converged {fit.converged}"
                        + (f"; {'; '.join(warned)}" if warned else ""))
                if why:  # estimates kept, no p-value
                    note = f"no p-value: {why}; {note}"
                    results = {k: (v[0], np.nan, np.nan, np.nan, np.nan) for k, v in results.items()}
            except (np.linalg.LinAlgError, ValueError) as e:
                note = f"mixed model failed: {e}"
        else:
            note = "needs scores of at least 2 formats, 2 networks and 2 patients"
        for a, b in pairs:
            est, t, p, lo, hi = results.get((a, b), (np.nan,) * 5)
            n = int(d["fmt"].isin([a, b]).sum())
            rows.append(_row("mixed", _fracs(long) if len(long) else "", score, a, b, estimate=est, ci_low=lo,
                             ci_high=hi, statistic=t, se=est / t if t else np.nan, ci_level=1 - alpha,
                             statistic_kind="t", df=containment_df(d) if results else np.nan, p=p, n=n, note=note))
    return holm(pd.DataFrame(rows, columns=TEST_COLUMNS))


def holm(table: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p (statsmodels) within each (unit, frac, score) family of format pairs."""
    return holm_by(table, ["unit", "frac", "score"])


def or_tests(long: pd.DataFrame, pairs, scores=TESTED, alpha: float = 0.05) -> pd.DataFrame:
    """Grad-CAM format contrasts by OR-RRRC (unit ``OR-RRRC``): FOM of (network, format) = mean over
    patients of each patient's mean score (fractions averaged); networks readers, patients cases,
    jackknife over patients (exact for a mean); each pair on its own two formats (t = 2, Hillis df).
    No boundary to fall on: a p whenever 2 networks and 3 patients are scored in both formats.
    Patients without a score in every cell are left out (noted). Holm over a score's pairs."""
    rows = []
    for score in scores:
        d = patient_means(long, score) if len(long) else pd.DataFrame(columns=["patient", "net", "fmt", "frac", score])
        wide = d.pivot_table(index="patient", columns=["fmt", "net"], values=score, aggfunc="mean")
        for a, b in pairs:
            nets = sorted(set(d.loc[d["fmt"] == a, "net"]) & set(d.loc[d["fmt"] == b, "net"]))
            cols = [(f, n) for f in (a, b) for n in nets]
            w = wide.reindex(columns=pd.MultiIndex.from_tuples(cols)).dropna() if cols else pd.DataFrame()
            base = dict(statistic_kind="t", n=int(len(w)), ci_level=1 - alpha)
            dropped = int(len(wide) - len(w))
            if len(nets) < 2 or len(w) < 3:
                rows.append(_row("OR-RRRC", _fracs(long) if len(long) else "", score, a, b, estimate=np.nan,
                                 statistic=np.nan, df=np.nan, p=np.nan,
                                 note=f"needs >= 2 networks and >= 3 patients scored in both formats ({len(nets)}, "
                                      f"{len(w)})", **base))
                continue
            x = w.to_numpy(dtype=float)
            loo = (x.sum(axis=0)[None, :] - x) / (len(x) - 1)  # leave-one-patient-out means
            res = or_test(x.mean(axis=0).reshape(2, len(nets)), jackknife_cov(loo), [a, b], nets, alpha)["rrrc"]
            test, pr = res["test"], res["pairs"].iloc[0]
            note = (f"OR-RRRC: mean {score} per (network, format, patient); {len(nets)} networks (readers), {len(x)} "
                    f"patients (cases), jackknife over patients, Hillis df"
                    + (f"; {dropped} patient(s) without a score in every cell left out" if dropped else ""))
            ok = test["reason"] is None or np.isfinite(pr.p)
            rows.append(_row("OR-RRRC", _fracs(long), score, a, b, estimate=pr.estimate, se=pr.se,
                             ci_low=pr.ci_low, ci_high=pr.ci_high, statistic=pr.estimate / pr.se if pr.se > 0 else np.nan,
                             df=pr.df, p=pr.p if ok else np.nan,
                             note=note if ok else f"no p-value: {test['reason']}; {note}", **base))
    return holm(pd.DataFrame(rows, columns=TEST_COLUMNS))


def cam_tests(scores: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, formats,
              alpha: float = 0.05) -> pd.DataFrame:
    """All format comparisons of the CAM scores, each row labelled with its unit: ``network``
    (paired, model means), ``mixed`` (per-(patient, model) means, random network, network x format
    and patient effects), ``paper`` (the paper's pooled independent t-test on binned slice scores)."""
    pairs = format_pairs(formats)
    frames = [s.assign(net=net, fmt=fmt, frac=int(frac)) for (net, fmt, frac), s in scores.items() if len(s)]
    cols = ["net", "fmt", "frac", "slice_id", *SCORE_COLUMNS]
    long = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    long[SCORE_COLUMNS] = long[SCORE_COLUMNS].apply(pd.to_numeric, errors="coerce")
    long["patient"] = long["slice_id"].map(patient_of)
    if long["patient"].isna().any():
        raise KeyError(f"CAM scores of slice {long.loc[long['patient'].isna(), 'slice_id'].iloc[0]} are not in the manifest")
    out = pd.concat([or_tests(long, pairs, alpha=alpha), network_ttests(summarize(scores), pairs),
                     mixed_tests(long, pairs, alpha=alpha), format_ttests(scores, pairs)], ignore_index=True)
    out["ci_level"] = out["ci_level"].fillna(0.95)  # the network and paper rows: 95%
    return out[TEST_COLUMNS]


def read_reviewer_scores(folder) -> pd.DataFrame:
    """Human scores: one CSV per reviewer (file stem = reviewer) with net, fmt, frac, slice_id, score (0-1)."""
    frames = []
    for path in sorted(Path(folder).glob("*.csv")):
        df = pd.read_csv(path)
        missing = {"net", "fmt", "frac", "slice_id", "score"} - set(df.columns)
        if missing:
            raise ValueError(f"{path}: reviewer table lacks column(s) {sorted(missing)}")
        bad = df[~df["score"].between(0, 1)]
        if len(bad):
            raise ValueError(f"{path} line {bad.index[0] + 2}: score {bad['score'].iloc[0]} is outside 0-1")
        frames.append(df.assign(reviewer=path.stem, frac=df["frac"].astype(int)))
    if not frames:
        raise ValueError(f"{folder}: no reviewer CSV files")
    return pd.concat(frames, ignore_index=True)


def agreement(reviews: pd.DataFrame, auto: pd.DataFrame) -> pd.DataFrame:
    """Inter-rater agreement: ICC(2,1) (pingouin's ICC(A,1)) among reviewers, and each reviewer vs the automatic binned score
    (ICC(2,1) and quadratic-weighted kappa on the 0/0.25/…/1 scale), over the maps both scored."""
    import pingouin as pg
    from sklearn.metrics import cohen_kappa_score

    key = ["net", "fmt", "frac", "slice_id"]
    auto = auto.assign(reviewer="automatic", score=auto["score_binned"])[key + ["reviewer", "score"]].dropna()
    rows = []

    def icc(data: pd.DataFrame) -> float:
        data = data.assign(item=data[key].astype(str).agg("|".join, axis=1))
        full = data.groupby("item").filter(lambda g: g["reviewer"].nunique() == data["reviewer"].nunique())
        if full["item"].nunique() < 3:
            return float("nan")
        t = pg.intraclass_corr(data=full, targets="item", raters="reviewer", ratings="score")
        types = t.set_index("Type")["ICC"]
        return float(types.get("ICC(A,1)", types.get("ICC2", float("nan"))))  # two-way random, absolute, single

    reviewers = sorted(reviews["reviewer"].unique())
    if len(reviewers) > 1:
        rows.append({"comparison": "reviewers", "raters": ", ".join(reviewers), "icc2": icc(reviews),
                     "kappa_quadratic": float("nan"), "n_items": int(reviews.groupby(key).ngroups)})
    for r in reviewers:
        pair = pd.concat([reviews[reviews["reviewer"] == r][key + ["reviewer", "score"]], auto])
        both = pair.groupby(key).filter(lambda g: len(g) == 2)
        wide = both.pivot_table(index=key, columns="reviewer", values="score")
        kappa = float("nan")
        if len(wide) >= 2:
            kappa = float(cohen_kappa_score((wide[r].map(binned) * 4).round().astype(int),
                                            (wide["automatic"] * 4).round().astype(int),
                                            labels=[0, 1, 2, 3, 4], weights="quadratic"))
        rows.append({"comparison": f"{r} vs automatic", "raters": f"{r}, automatic", "icc2": icc(both),
                     "kappa_quadratic": kappa, "n_items": len(wide)})
    return pd.DataFrame(rows)
