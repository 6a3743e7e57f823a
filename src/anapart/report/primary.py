"""The declared primary endpoint (``stats.primary``), shown first; everything else secondary.

Why: with a dozen tables of p-values, a reader cannot tell which contrast the study is about, and
Holm inside narrow families lets any one of them pass for the finding. The primary contrast is
declared in the config before the run (``seg112 - full`` of the aAUC at one training fraction, the
MRMC analysis with random networks and patients, on its own two formats). With replicates
(``replicates.folds >= 2``) the primary row is the within-fold figure of merit averaged over every
repeat and seed (``estimator`` within-fold; the pooled AUC and the fold-variance analyses are
``sensitivity`` rows beside it) and the single split's rows are supporting. The interpretability
endpoint (``stats.primary.cam_score``: Grad-CAM, OR-RRRC on the mean score per (network, format,
patient); the mixed model is its sensitivity row) is a second co-primary, and the data-cost
interaction (``stats.interaction: co-primary``) may be a third. The co-primaries share alpha by
Holm: ordered by p, the k-th is judged at alpha / (m - k + 1) while every one before it was shown;
each interval is at 1 - the alpha it is judged at (column ``ci_level``, recomputed from the
estimate, SE and df), so the ``verdict`` ("shown at alpha a" / "not shown at alpha a") can never
contradict it. Every other pairwise format contrast of the primary figure and analysis, at every
fraction, is secondary: one family, Holm over it (``p_holm_family``), 95% intervals, no verdict.
Every contrast reads the way the primary does (its first format first).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from anapart.metrics.contrasts import orient_contrast as orient  # the figures read contrasts the same way
from anapart.metrics.contrasts import turn
from anapart.metrics.mrmc_formats import is_interaction

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions: the Snakefile imports anapart.report.checklist, which
# imports this module, and a Snakefile's import must stay light.
NAN = float("nan")

COLUMNS = ["role", "endpoint", "source", "frac", "figure", "analysis", "contrast", "estimate", "ci_low", "ci_high",
           "p", "alpha", "p_holm_family", "sd_over_repeats", "sd_over_seeds", "n_replicates", "note",
           "ci_level", "verdict", "estimator", "se", "df"]
SINGLE, POOLED = "results/tables/mrmc.csv", "results/replicates/tables/mrmc_spread.csv"


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return NAN


def interval(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    """``estimate`` -/+ q se, q the (1 + level)/2 quantile of t(df) (normal when df is infinite)."""
    from scipy import stats

    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0 and df > 0):
        return NAN, NAN
    q = stats.norm.ppf((1 + level) / 2) if math.isinf(df) else stats.t.ppf((1 + level) / 2, df)
    return estimate - q * se, estimate + q * se


def _no_estimate(role: str, endpoint: str, source: str, figure: str, analysis: str, contrast: str, note: str,
                 **extra) -> dict:
    """A declared co-primary without an estimate: it stays in Holm's family, with no p."""
    return {"role": role, "endpoint": endpoint, "source": source, **extra, "figure": figure, "analysis": analysis,
            "contrast": contrast, "estimate": NAN, "p": NAN, "note": note}


def _row(r, source: str, role: str, endpoint: str, primary: str, note: str = "") -> dict:
    """One output row from a table row, turned to the primary's orientation (estimate and CI negated)."""
    if is_interaction(r["contrast"]):
        contrast, est, lo, hi = r["contrast"], r["estimate"], r["ci_low"], r["ci_high"]
    else:
        contrast, est, lo, hi = turn(r["contrast"], r["estimate"], r["ci_low"], r["ci_high"], primary)
    reason = r.get("reason")
    df = r.get("df2", r.get("df", NAN))
    return {"role": role, "endpoint": endpoint, "source": source, "frac": r["frac"], "figure": r["figure"],
            "analysis": r["analysis"], "contrast": contrast, "estimate": est, "ci_low": lo, "ci_high": hi, "p": r["p"],
            "sd_over_repeats": r.get("sd_over_repeats", NAN), "sd_over_seeds": r.get("sd_over_seeds", NAN),
            "n_replicates": r.get("n_replicates", NAN), "ci_level": _num(r.get("ci_level", 0.95)),
            "estimator": r.get("estimator", "single split"), "se": _num(r.get("se", NAN)), "df": _num(df),
            "verdict": "",
            "note": "; ".join(x for x in (reason if isinstance(reason, str) else "", note) if x)}


def holm_levels(ps: list[float], alpha: float) -> list[float]:
    """The alpha each of m co-primary endpoints is judged at by Holm: ordered by p, the k-th (k = 1..m)
    at alpha / (m - k + 1) while every one before it was shown; from the first not shown on, every
    later one at that first failing level (its p is larger, so it is not shown either). A missing p
    is judged last."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: (not math.isfinite(ps[i]), ps[i] if math.isfinite(ps[i]) else 0))
    levels, failed = [NAN] * m, None
    for k, i in enumerate(order):
        level = failed if failed is not None else alpha / (m - k)
        levels[i] = level
        if failed is None and not (math.isfinite(ps[i]) and ps[i] <= level):
            failed = level
    return levels


def verdict(p: float, lo: float, hi: float, level: float) -> str:
    """"shown at alpha a" / "not shown at alpha a" (no p: "no test"); the interval at 1 - a must agree."""
    if not math.isfinite(p):
        return "no test (no p-value)"
    shown = p <= level
    if math.isfinite(lo) and math.isfinite(hi) and shown == (lo <= 0 <= hi) and not math.isclose(p, level, rel_tol=1e-3):
        raise ValueError(f"internal check failed: p {p:.4g} and the {100 * (1 - level):g}% interval {lo:.4g} to "
                         f"{hi:.4g} disagree (the table's p, se and df do not describe one test)")
    return f"{'shown' if shown else 'not shown'} at alpha {level:.4g}"


def primary_table(mrmc: pd.DataFrame, primary: dict, *, spread: pd.DataFrame | None = None,
                  cam_tests: pd.DataFrame | None = None, alpha: float = 0.05,
                  interaction: str | None = None) -> pd.DataFrame:
    """The co-primary row(s) first, their sensitivity rows, then every secondary format contrast with
    Holm over its family.

    ``mrmc``: the single split's ``mrmc.csv``; ``spread``: the replicates' ``mrmc_spread.csv``
    (None without replicates: then the single split is the primary analysis; with it, the rows of
    ``estimator`` within-fold are primary and secondary, pooled and fold-variance sensitivity);
    ``cam_tests``: Grad-CAM tests (unit ``OR-RRRC`` the co-primary, ``mixed`` its sensitivity);
    ``interaction``: None, ``secondary`` or ``co-primary`` for the data-cost contrast
    (a - b)@min fraction - (a - b)@max fraction of the primary figure and analysis."""
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    frac, figure, analysis, contrast = (int(primary["fraction"]), primary["figure"], primary["analysis"],
                                        primary["contrast"])
    a, b = (s.strip() for s in contrast.split(" - "))
    replicated = spread is not None
    source = POOLED if replicated else SINGLE
    table = spread if replicated else mrmc
    est_col = "estimator" in table.columns

    def pairs_of(t, estimator=None):
        keep = (t["figure"] == figure) & (t["analysis"] == analysis) & (t["contrast"] != "all formats") \
            & ~t["contrast"].map(is_interaction)
        if estimator is not None and "estimator" in t.columns:
            keep &= t["estimator"] == estimator
        return t[keep]

    def is_primary(r) -> bool:
        return int(r["frac"]) == frac and {s.strip() for s in r["contrast"].split(" - ")} == {a, b}

    main_est = "within-fold" if replicated and est_col else None
    candidates = pairs_of(table, main_est)
    hit = candidates[[is_primary(r) for _, r in candidates.iterrows()]]
    note = ("within-fold AUCs averaged over every repeat and seed, patients the cases; SDs of the per-replicate "
            "estimates beside it" if replicated else
            "single split: conditional on one segmenter, one crop set, one training-subset draw and one seed")
    co: list[dict] = []  # the co-primary rows (Holm among them)
    sens: list[dict] = []
    if hit.empty:
        co.append(_no_estimate("primary", "discrimination", source, figure, analysis, contrast,
                               f"not in {source}: check stats.primary against the table's fractions and formats",
                               frac=frac))
    else:
        co.append(_row(hit.iloc[0], source, "primary", "discrimination", contrast, note))
    if replicated and est_col:  # the same contrast by the other estimators
        for name in ("pooled", "fold-variance"):
            t = table[(table["estimator"] == name) & (table["figure"] == figure)
                      & ((table["analysis"] == analysis) | (name == "fold-variance"))
                      & (table["contrast"] != "all formats") & ~table["contrast"].map(is_interaction)]
            t = t[[is_primary(r) for _, r in t.iterrows()]]
            if len(t):
                what = ("pooled out-of-fold AUC (one ROC curve over the K fold-models): leans towards the format "
                        "whose folds calibrate alike" if name == "pooled" else
                        "Nadeau-Bengio corrected resampled t over the R x K folds: holds what a fold's networks "
                        "share (segmenter, subset draw); networks fixed")
                sens.append(_row(t.iloc[0], source, "sensitivity", "discrimination", contrast, what))
    # the data-cost interaction of the primary figure and analysis
    inter = table[(table["figure"] == figure) & (table["analysis"] == analysis)
                  & table["contrast"].map(is_interaction)
                  & table["contrast"].astype(str).str.startswith(f"({a} - {b})@")]
    if main_est is not None:
        inter = inter[inter["estimator"] == main_est]
    inter_row = None
    if interaction and len(inter):
        inter_row = _row(inter.iloc[0], source, "primary (data cost)" if interaction == "co-primary"
                         else "secondary (data cost)", "format x fraction interaction", contrast,
                         "the data-cost claim: does the format difference shrink with more training data")
        if interaction == "co-primary":
            co.append(inter_row)
    elif interaction == "co-primary":  # declared but not estimated: it still counts in Holm's family
        co.append(_no_estimate("primary (data cost)", "format x fraction interaction", source, figure, analysis,
                               contrast, f"no interaction row for {figure} {analysis} in {source}: it needs two "
                               "fractions and the primary figure among the interaction figures"))
    cam_on = cam_tests is not None and bool(primary.get("cam_score"))
    if cam_on:
        cam = cam_tests[cam_tests["score"] == primary["cam_score"]]
        cam = cam[[{s.strip() for s in c.split(" - ")} == {a, b} for c in cam["contrast"]]]
        where = ("pooled Grad-CAM scores of every replicate" if replicated else "results/tables/cam_tests.csv")
        orr = cam[cam["unit"] == "OR-RRRC"]
        if orr.empty:
            co.append(_no_estimate("primary (interpretability)", f"Grad-CAM {primary['cam_score']}", where,
                                   primary["cam_score"], "OR-RRRC", contrast,
                                   f"no OR-RRRC row for {primary['cam_score']} {contrast}"))
        else:
            r = orr.iloc[0].to_dict()
            r.update(figure=primary["cam_score"], analysis="OR-RRRC", reason=r.get("note"),
                     estimator="patient means")
            co.append(_row(r, where, "primary (interpretability)", f"Grad-CAM {primary['cam_score']}", contrast,
                           "at cam.fractions (Grad-CAM maps only those models)"))
        mixed = cam[cam["unit"] == "mixed"]
        if len(mixed):
            r = mixed.iloc[0].to_dict()
            r.update(figure=primary["cam_score"], analysis="mixed model", reason=r.get("note"),
                     estimator="patient means")
            sens.append(_row(r, where, "sensitivity", f"Grad-CAM {primary['cam_score']}", contrast))
    # Holm across the co-primaries; intervals at the level each is judged at
    levels = holm_levels([_num(r["p"]) for r in co], alpha)
    for r, level in zip(co, levels):
        r["alpha"] = level
        _at_level(r, 1 - level)
        r["verdict"] = verdict(_num(r["p"]), _num(r["ci_low"]), _num(r["ci_high"]), level)
    for r in sens:  # beside the discrimination / Grad-CAM primary, at the level that one was judged at
        ref = next((c for c in co if c["endpoint"] == r["endpoint"]), co[0])
        _at_level(r, 1 - ref["alpha"])
    rows = co + sens
    if inter_row is not None and interaction != "co-primary":
        rows.append(inter_row)
    secondary = [_row(r, source, "secondary", "discrimination", contrast) for _, r in candidates.iterrows()
                 if not is_primary(r)]
    rows += secondary
    if replicated:  # the single split's contrasts, for comparison: not in the family
        rows += [_row(r, SINGLE, "single split (supporting)", "discrimination", contrast)
                 for _, r in pairs_of(mrmc).iterrows()]
    out = pd.DataFrame(rows, columns=COLUMNS)
    sec = (out["role"] == "secondary") & out["p"].notna()
    if sec.any():
        out.loc[sec, "p_holm_family"] = multipletests(out.loc[sec, "p"].astype(float), method="holm")[1]
    return out


def _at_level(r: dict, level: float) -> None:
    """The row's interval recomputed at ``level`` from its estimate, SE and df (kept when it is
    already at that level; emptied, with a note, when there is no SE to recompute it from)."""
    if math.isclose(_num(r.get("ci_level", NAN)), level):
        return
    lo, hi = interval(_num(r.get("estimate")), _num(r.get("se")), _num(r.get("df")), level)
    if not math.isfinite(lo) and math.isfinite(_num(r.get("ci_low"))):
        r["note"] = "; ".join(x for x in (r.get("note", ""), f"no SE: no {100 * level:g}% interval") if x)
    r["ci_low"], r["ci_high"], r["ci_level"] = lo, hi, level


def headline(table: pd.DataFrame, ci_level: float | None = None) -> str:
    """The primary result(s) in one sentence each, for the report's front page and the checklist:
    estimate, interval at the level judged (its ``ci_level``), p and the verdict."""
    parts = []
    for r in table[table["role"].str.startswith("primary")].itertuples():
        what = f"{r.contrast} ({r.figure}, {r.analysis}, {r.frac}% of the training set)"
        why = str(r.note).split(";")[0].removeprefix("no p-value: ") if isinstance(r.note, str) else ""
        if not math.isfinite(_num(r.estimate)):
            parts.append(f"{r.role}: {what}: no estimate ({why})")
            continue
        level = _num(getattr(r, "ci_level", NAN))  # a table from before ci_level: the caller's level
        level = level if math.isfinite(level) else (ci_level or 0.95)
        ci = (f", {100 * level:g}% CI {r.ci_low:+.3f} to {r.ci_high:+.3f}"
              if math.isfinite(_num(r.ci_low)) else "")
        p = f"p = {r.p:.3g}" if math.isfinite(_num(r.p)) else f"no p-value ({why})" if why else "no p-value"
        v = getattr(r, "verdict", "")
        v = f": {v}" if isinstance(v, str) and v else ""
        spread = "".join(f"; SD over {k} {float(v_):.3f}" for k, v_ in (("seeds", r.sd_over_seeds),
                                                                        ("repeats", r.sd_over_repeats))
                         if math.isfinite(_num(v_)))
        parts.append(f"{r.role}: {what} {r.estimate:+.3f}{ci}, {p}{v}{spread}")
    return ". ".join(parts) + "."


def front_page(text: str, template: str) -> str:
    """The report's front page: the primary result first, then the workflow's description."""
    return ("**Primary endpoint** (declared before the run in ``stats.primary``; "
            "``results/tables/primary.csv``): " + text.replace("*", "\\*") + " Every other comparison is "
            "secondary.\n\n" + template)
