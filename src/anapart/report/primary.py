"""The one declared primary endpoint (``stats.primary``), shown first; everything else secondary.

Why: with a dozen tables of p-values, a reader cannot tell which contrast the study is about, and
Holm inside narrow families lets any one of them pass for the finding. The primary contrast is
declared in the config before the run (``seg112 - full`` of the aAUC at one training fraction, the
MRMC analysis with random networks and patients); it gets its estimate, 95% CI and unadjusted p
(one test, no multiplicity). With replicates (``replicates.folds >= 2``) the pooled out-of-fold
analysis of the declared replicate is the primary row, and the single split's is secondary. The
interpretability endpoint (``stats.primary.cam_score``, the mixed model of ``cam_tests.csv``) is a
co-primary of its own kind, stated beside it. Every other pairwise format contrast of the primary
figure and analysis, at every fraction, is secondary: one family, Holm over it (``p_holm_family``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions: the Snakefile imports anapart.report.checklist, which
# imports this module, and a Snakefile's import must stay light.
NAN = float("nan")

COLUMNS = ["role", "endpoint", "source", "frac", "figure", "analysis", "contrast", "estimate", "ci_low", "ci_high",
           "p", "p_holm_family", "sd_over_repeats", "sd_over_seeds", "n_replicates", "note"]


def _oriented(table: pd.DataFrame, contrast: str) -> pd.DataFrame:
    """Rows of ``contrast`` ("a - b"); rows of "b - a" turned round (estimate and CI negated)."""
    import pandas as pd

    a, b = (s.strip() for s in contrast.split(" - "))
    same = table[table["contrast"] == f"{a} - {b}"]
    flip = table[table["contrast"] == f"{b} - {a}"].copy()
    if len(flip):
        est = -flip["estimate"]
        lo, hi = -flip["ci_high"], -flip["ci_low"]
        flip = flip.assign(estimate=est, ci_low=lo, ci_high=hi, contrast=f"{a} - {b}")
        for col in ("mean_over_replicates",):
            if col in flip:
                flip[col] = -flip[col]
    return pd.concat([same, flip])


def _pairs(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["contrast"] != "all formats"]


def primary_table(mrmc: pd.DataFrame, primary: dict, *, spread: pd.DataFrame | None = None,
                  cam_tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """The primary row(s) first, then every secondary format contrast with Holm over the family.

    ``mrmc``: the single split's ``mrmc.csv``; ``spread``: the replicates' ``mrmc_spread.csv``
    (None without replicates); ``cam_tests``: ``cam_tests.csv`` (None without Grad-CAM)."""
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    frac, figure, analysis, contrast = (int(primary["fraction"]), primary["figure"], primary["analysis"],
                                        primary["contrast"])
    rows = []

    def take(table, source, role, endpoint, note=""):
        sel = _oriented(table[(table["frac"] == frac) & (table["figure"] == figure)
                              & (table["analysis"] == analysis)], contrast)
        if sel.empty:
            rows.append({"role": role, "endpoint": endpoint, "source": source, "frac": frac, "figure": figure,
                         "analysis": analysis, "contrast": contrast,
                         "note": f"not in {source}: check stats.primary against the table's fractions and formats"})
            return
        r = sel.iloc[0]
        reason = r.get("reason")
        rows.append({"role": role, "endpoint": endpoint, "source": source, "frac": frac, "figure": figure,
                     "analysis": analysis, "contrast": contrast, "estimate": r["estimate"], "ci_low": r["ci_low"],
                     "ci_high": r["ci_high"], "p": r["p"], "sd_over_repeats": r.get("sd_over_repeats", NAN),
                     "sd_over_seeds": r.get("sd_over_seeds", NAN),
                     "n_replicates": r.get("n_replicates", NAN),
                     "note": "; ".join(x for x in (reason if isinstance(reason, str) else "", note) if x)})

    replicated = spread is not None
    take(spread if replicated else mrmc, "results/replicates/tables/mrmc_spread.csv" if replicated
         else "results/tables/mrmc.csv", "primary", "discrimination",
         "pooled out-of-fold predictions of the declared replicate; SDs over the other replicates beside it"
         if replicated else "single split")
    if cam_tests is not None and primary.get("cam_score"):
        cam = cam_tests[(cam_tests["unit"] == "mixed") & (cam_tests["score"] == primary["cam_score"])]
        sel = _oriented(cam.assign(ci_low=NAN, ci_high=NAN), contrast)
        r = sel.iloc[0] if len(sel) else None
        rows.append({"role": "primary (interpretability)", "endpoint": f"Grad-CAM {primary['cam_score']}",
                     "source": "results/tables/cam_tests.csv", "frac": r["frac"] if r is not None else NAN,
                     "figure": primary["cam_score"], "analysis": "mixed model", "contrast": contrast,
                     "estimate": r["estimate"] if r is not None else NAN, "p": r["p"] if r is not None else NAN,
                     "note": (r["note"] if r is not None else f"no mixed-model row for {primary['cam_score']}")})
    if replicated:  # the single split's result of the same contrast, as a secondary
        take(mrmc, "results/tables/mrmc.csv", "secondary", "discrimination", "single split")
    family = _pairs(mrmc[(mrmc["figure"] == figure) & (mrmc["analysis"] == analysis)])
    done = {(frac, c) for c in (contrast, " - ".join(reversed(contrast.split(" - "))))} if not replicated else set()
    family = family[[(int(f), c) not in done for f, c in zip(family["frac"], family["contrast"])]]
    for r in family.itertuples():
        rows.append({"role": "secondary", "endpoint": "discrimination", "source": "results/tables/mrmc.csv",
                     "frac": int(r.frac), "figure": figure, "analysis": analysis, "contrast": r.contrast,
                     "estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p,
                     "note": r.reason if isinstance(r.reason, str) else ""})
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
