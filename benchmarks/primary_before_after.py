"""Study A's replicate primary before and after issue 30, on a finished run's predictions.

    .venv/bin/python benchmarks/primary_before_after.py [RESULTS] [--frac 25] [--a seg112] [--b full]

before: the former primary -- the pooled out-of-fold aAUC of the declared replicate (repeat 0,
        seed 0), one OR-RRRC over the three formats (the error term of all three), 95% CI;
after:  the rows of ``RESULTS/replicates/tables/mrmc_spread.csv`` (within-fold aAUC averaged over
        every repeat and seed, t = 2, fold-shared variance; its pooled and fold-variance sensitivity
        rows) and the primary row of ``RESULTS/tables/primary.csv``.
The classes and the number of folds come from the predictions themselves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from anapart.metrics.mrmc import or_analysis
from anapart.metrics.mrmc_formats import pooled_figures, readings
from anapart.metrics.replicates import pool_out_of_fold


def before(results: Path, frac: int, a: str, b: str) -> dict:
    paths = sorted(results.glob("replicates/r*/k*/s*/classify/*/*/f*/predictions.csv"))
    folds = len({p.parts[-7] for p in paths})
    pooled = pool_out_of_fold(paths, folds)
    manifest = pd.read_csv(results / "cohort" / "manifest.csv").set_index("slice_id")["patient"]
    models = pooled[(0, 0)]
    classes = sorted(c[2:] for c in next(iter(models.values())).columns if c.startswith("p_"))
    data = readings(models, manifest, frac)
    fit = or_analysis(data, reader="reader", modality="modality", case="case", truth="label", score=None,
                      fom=pooled_figures(classes)["aauc"], cov="jackknife", case_truth=False, alpha=0.05)
    pairs = fit["rrrc"]["pairs"]
    row = pairs[pairs["modality_a"].isin([a, b]) & pairs["modality_b"].isin([a, b])].iloc[0]
    sign = 1 if row["modality_a"] == a else -1
    lo, hi = sorted((sign * row["ci_low"], sign * row["ci_high"]))
    return {"analysis": "before: pooled, declared replicate (r0 s0), t=3", "estimate": sign * row["estimate"],
            "ci_low": lo, "ci_high": hi, "ci_level": 0.95, "p": row["p"], "df": row["df"],
            "patients": data["case"].nunique(), "folds": folds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default="results")
    ap.add_argument("--frac", type=int, default=25)
    ap.add_argument("--a", default="seg112")
    ap.add_argument("--b", default="full")
    args = ap.parse_args(argv)
    results = Path(args.results)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 80):
        print(pd.DataFrame([before(results, args.frac, args.a, args.b)]).to_string(index=False))
        spread = pd.read_csv(results / "replicates" / "tables" / "mrmc_spread.csv")
        keep = (spread["frac"] == args.frac) & (spread["figure"] == "aauc") & spread["contrast"].isin(
            [f"{args.a} - {args.b}", f"{args.b} - {args.a}"]) & spread["analysis"].isin(["RRRC", "corrected resampled t"])
        print(spread.loc[keep, ["estimator", "analysis", "contrast", "estimate", "se", "ci_low", "ci_high", "ci_level",
                                "p", "df2", "sd_over_repeats", "sd_over_seeds", "reason"]].to_string(index=False))
        prim = pd.read_csv(results / "tables" / "primary.csv")
        print(prim[["role", "estimator", "analysis", "contrast", "estimate", "ci_low", "ci_high", "ci_level", "p",
                    "alpha", "verdict"]].head(8).to_string(index=False))


if __name__ == "__main__":
    main()
