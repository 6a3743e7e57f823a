"""``anapart-mrmc``: Obuchowski-Rockette-Hillis MRMC analysis of a long readings CSV, as JSON.

Why a CLI: the analysis needs only a table of readings (reader, modality, case, 0/1 truth, score),
so it can be checked on published data (e.g. Van Dyke) or run on any export without the workflow.
A design problem (not fully crossed, a missing column, a truth not 0/1) exits 2 with one line on
stderr naming the file; a test that cannot be computed prints p = null with its ``reason``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pandas as pd

from .mrmc import COV_METHODS, or_analysis

ANALYSES = {"rrrc": "random readers, random cases (Hillis df)", "frrc": "fixed readers, random cases",
            "rrfc": "random readers, fixed cases"}


def _plain(x):
    """JSON-safe: numpy scalars to Python, NaN and infinities to null (the ``reason`` says why)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, pd.DataFrame):
        return [_plain(r) for r in x.to_dict(orient="records")]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anapart-mrmc", description="Obuchowski-Rockette-Hillis MRMC analysis of a long readings CSV, printed as JSON.")
    p.add_argument("readings", help="CSV, one row per reading")
    for col in ("reader", "modality", "case", "truth", "score"):
        p.add_argument(f"--{col}", required=True, metavar="COL", help=f"column of the {col}")
    p.add_argument("--cov", choices=COV_METHODS, default="jackknife",
                   help="covariance of the FOMs: jackknife over cases (default), DeLong, or unbiased (Gallas 2007)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level of the CIs (default 0.05)")
    fixed = p.add_mutually_exclusive_group()
    fixed.add_argument("--fixed-readers", action="store_true", help="FRRC: conclusions for these readers only")
    fixed.add_argument("--fixed-cases", action="store_true", help="RRFC: conclusions for these cases only")
    return p


def report(fit: dict, analysis: str) -> dict:
    """The JSON document of one analysis of an :func:`or_analysis` result."""
    part = fit[analysis]
    test = dict(part["test"])
    comps = fit["components"]
    fom = fit["fom"]
    out = {
        "analysis": analysis.upper(), "description": ANALYSES[analysis], "design": fit["design"],
        "test": test,
        "pairs": part["pairs"],
        "modalities": part["modalities"],
        "fom": [{"modality": m, "reader": r, "fom": fom.loc[m, r]} for m in fom.index for r in fom.columns],
        "variance_components": comps,
    }
    if "readers" in part:
        out["reader_pairs"] = part["readers"]
    return _plain(out)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        data = pd.read_csv(args.readings)
    except (OSError, ValueError) as e:
        print(f"anapart-mrmc: {args.readings}: cannot read: {e}", file=sys.stderr)
        return 2
    analysis = "frrc" if args.fixed_readers else "rrfc" if args.fixed_cases else "rrrc"
    try:
        fit = or_analysis(data, reader=args.reader, modality=args.modality, case=args.case, truth=args.truth,
                          score=args.score, cov=args.cov, alpha=args.alpha)
    except ValueError as e:
        print(f"anapart-mrmc: {args.readings}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    json.dump({"file": args.readings, **report(fit, analysis)}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
