"""The one declared primary endpoint (``stats.primary``), shown first; everything else secondary.

Why: with a dozen tables of p-values, a reader cannot tell which contrast the study is about, and
Holm inside narrow families lets any one of them pass for the finding. The primary contrast is
declared in the config before the run (``seg112 - full`` of the aAUC at one training fraction, the
MRMC analysis with random networks and patients); it gets its estimate, 95% CI and p. With
replicates (``replicates.folds >= 2``) the pooled out-of-fold analysis of the declared replicate is
the primary row, and the single split's rows are supporting. The interpretability endpoint
(``stats.primary.cam_score``, the Grad-CAM mixed model) is the second primary endpoint; the two
share alpha (Bonferroni, each at alpha / 2, column ``alpha``). Every other pairwise format contrast
of the primary figure and analysis, at every fraction, is secondary: one family, Holm over it
(``p_holm_family``). Every contrast reads the way the primary does (its first format first).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from anapart.metrics.contrasts import orient_contrast as orient  # the figures read contrasts the same way
from anapart.metrics.contrasts import turn

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions: the Snakefile imports anapart.report.checklist, which
# imports this module, and a Snakefile's import must stay light.
NAN = float("nan")

COLUMNS = ["role", "endpoint", "source", "frac", "figure", "analysis", "contrast", "estimate", "ci_low", "ci_high",
           "p", "alpha", "p_holm_family", "sd_over_repeats", "sd_over_seeds", "n_replicates", "note"]
SINGLE, POOLED = "results/tables/mrmc.csv", "results/replicates/tables/mrmc_spread.csv"


def _row(r, source: str, role: str, endpoint: str, primary: str, note: str = "") -> dict:
    """One output row from a table row, turned to the primary's orientation (estimate and CI negated)."""
    contrast, est, lo, hi = turn(r["contrast"], r["estimate"], r["ci_low"], r["ci_high"], primary)
    reason = r.get("reason")
    return {"role": role, "endpoint": endpoint, "source": source, "frac": r["frac"], "figure": r["figure"],
            "analysis": r["analysis"], "contrast": contrast, "estimate": est, "ci_low": lo, "ci_high": hi, "p": r["p"], "sd_over_repeats": r.get("sd_over_repeats", NAN),
            "sd_over_seeds": r.get("sd_over_seeds", NAN), "n_replicates": r.get("n_replicates", NAN),
            "note": "; ".join(x for x in (reason if isinstance(reason, str) else "", note) if x)}


def primary_table(mrmc: pd.DataFrame, primary: dict, *, spread: pd.DataFrame | None = None,
                  cam_tests: pd.DataFrame | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """The primary row(s) first, then every secondary format contrast with Holm over its family.

    ``mrmc``: the single split's ``mrmc.csv``; ``spread``: the replicates' ``mrmc_spread.csv``
    (None without replicates: then the single split is the primary analysis); ``cam_tests``: the
    Grad-CAM tests of the same analysis (the single split's ``cam_tests.csv``, or the declared
    replicate's rows of the replicates' one). The primary source's other pairwise contrasts of
    the primary figure and analysis, at every fraction, are the secondary family (Holm,
    ``p_holm_family``); with replicates the single split's contrasts are listed as supporting rows,
    outside the family. With a Grad-CAM endpoint the two primary endpoints share ``alpha``
    (Bonferroni: each is judged at alpha / 2)."""
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    frac, figure, analysis, contrast = (int(primary["fraction"]), primary["figure"], primary["analysis"],
                                        primary["contrast"])
    a, b = (s.strip() for s in contrast.split(" - "))
    replicated = spread is not None
    source = POOLED if replicated else SINGLE
    table = spread if replicated else mrmc

    def pairs_of(t):
        return t[(t["figure"] == figure) & (t["analysis"] == analysis) & (t["contrast"] != "all formats")]

    def is_primary(r) -> bool:
        return int(r["frac"]) == frac and {s.strip() for s in r["contrast"].split(" - ")} == {a, b}

    cam_on = cam_tests is not None and bool(primary.get("cam_score"))
    each = alpha / 2 if cam_on else alpha
    rows, secondary = [], []
    candidates = pairs_of(table)
    hit = candidates[[is_primary(r) for _, r in candidates.iterrows()]]
    note = ("pooled out-of-fold predictions of the declared replicate; SDs over the other replicates beside it"
            if replicated else "single split")
    if hit.empty:
        rows.append({"role": "primary", "endpoint": "discrimination", "source": source, "frac": frac,
                     "figure": figure, "analysis": analysis, "contrast": contrast, "estimate": NAN, "p": NAN,
                     "note": f"not in {source}: check stats.primary against the table's fractions and formats"})
    else:
        rows.append(_row(hit.iloc[0], source, "primary", "discrimination", contrast, note))
    rows[-1]["alpha"] = each
    if cam_on:
        cam = cam_tests[(cam_tests["unit"] == "mixed") & (cam_tests["score"] == primary["cam_score"])]
        cam = cam[[{s.strip() for s in c.split(" - ")} == {a, b} for c in cam["contrast"]]]
        where = "the declared replicate's pooled Grad-CAM scores" if replicated else "results/tables/cam_tests.csv"
        if cam.empty:
            rows.append({"role": "primary (interpretability)", "endpoint": f"Grad-CAM {primary['cam_score']}",
                         "source": where, "figure": primary["cam_score"], "analysis": "mixed model",
                         "contrast": contrast, "estimate": NAN, "p": NAN, "alpha": each,
                         "note": f"no mixed-model row for {primary['cam_score']} {contrast}"})
        else:
            r = cam.iloc[0].to_dict()
            r.update(figure=primary["cam_score"], analysis="mixed model", reason=r.get("note"))
            row = _row(r, where, "primary (interpretability)", f"Grad-CAM {primary['cam_score']}", contrast,
                       "at cam.fractions (Grad-CAM maps only those models)")
            rows.append({**row, "alpha": each})
    for _, r in candidates.iterrows():
        if not is_primary(r):
            secondary.append(_row(r, source, "secondary", "discrimination", contrast))
    rows += secondary
    if replicated:  # the single split's contrasts, for comparison: not in the family
        rows += [_row(r, SINGLE, "single split (supporting)", "discrimination", contrast)
                 for _, r in pairs_of(mrmc).iterrows()]
    out = pd.DataFrame(rows, columns=COLUMNS)
    sec = (out["role"] == "secondary") & out["p"].notna()
    if sec.any():
        out.loc[sec, "p_holm_family"] = multipletests(out.loc[sec, "p"].astype(float), method="holm")[1]
    return out


def headline(table: pd.DataFrame, ci_level: float = 0.95) -> str:
    """The primary result in one sentence, for the report's front page and the checklist."""
    parts = []
    for r in table[table["role"].str.startswith("primary")].itertuples():
        what = f"{r.contrast} ({r.figure}, {r.analysis}, {r.frac}% of the training set)"
        why = str(r.note).split(";")[0].removeprefix("no p-value: ") if isinstance(r.note, str) else ""
        if not math.isfinite(float(r.estimate)):
            parts.append(f"{r.role}: {what}: no estimate ({why})")
            continue
        ci = (f", {int(round(100 * ci_level))}% CI {r.ci_low:+.3f} to {r.ci_high:+.3f}"
              if math.isfinite(float(r.ci_low)) else "")
        p = f"p = {r.p:.3g}" if math.isfinite(float(r.p)) else f"no p-value ({why})" if why else "no p-value"
        share = float(getattr(r, "alpha", NAN))
        if math.isfinite(share) and share < 0.05 and math.isfinite(float(r.p)):
            p += f" (judged at alpha {share:g}: two primary endpoints)"
        spread = "".join(f"; SD over {k} {float(v):.3f}" for k, v in (("seeds", r.sd_over_seeds),
                                                                      ("repeats", r.sd_over_repeats))
                         if math.isfinite(float(v)))
        parts.append(f"{r.role}: {what} {r.estimate:+.3f}{ci}, {p}{spread}")
    return ". ".join(parts) + "."


def front_page(text: str, template: str) -> str:
    """The report's front page: the primary result first, then the workflow's description."""
    return ("**Primary endpoint** (declared before the run in ``stats.primary``; "
            "``results/tables/primary.csv``): " + text.replace("*", "\\*") + " Every other comparison is "
            "secondary.\n\n" + template)
