"""``anapart-mrmc``: Obuchowski-Rockette-Hillis MRMC analysis of a long readings CSV, as JSON; and
``anapart-mrmc power``: power and sample size of a planned study from a pilot (:mod:`.power`).

Why a CLI: the analysis needs only a table of readings (reader, modality, case, 0/1 truth, score),
so it can be checked on published data (e.g. Van Dyke) or run on any export without the workflow.
A design problem (not fully crossed, a missing column, a truth not 0/1 or empty, a non-numeric score,
a duplicated reading, no rows) exits 2 with one line on stderr naming the file (rows are named by
their line in the file, the header being line 1); a test that cannot be computed prints p = null
with its ``reason``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pandas as pd

from .mrmc import CONVENTIONS, COV_METHODS, check_design, or_analysis
from .power import ANALYSES as POWER_ANALYSES
from .power import Components, cases_for_power, power

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
    p.add_argument("--convention", choices=CONVENTIONS, default="reference",
                   help="FRRC forms: reference (Hillis' OR-DBM MRMC, RJafroc: max(Cov2-Cov3,0), per-reader "
                        "2(Var_j-Cov1_j); default) or mrmcaov (no max, each pair's own variance)")
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


def _read(path: str) -> pd.DataFrame:
    """The readings, rows indexed by their line in the file (header = line 1)."""
    try:
        data = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError("empty file: no header and no readings") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read: {' '.join(str(e).split())}") from None
    data.index = pd.RangeIndex(2, len(data) + 2, name="line")
    return data


def _fail(where: str, e: Exception) -> int:
    print(f"anapart-mrmc: {where}: {' '.join(str(e).split())}", file=sys.stderr)
    return 2


def _fit(args, data: pd.DataFrame, **kw) -> dict:
    cols = dict(reader=args.reader, modality=args.modality, case=args.case, truth=args.truth, score=args.score)
    check_design(data, **cols, one_row_per_reading=True)  # a duplicated reading is an error here
    return or_analysis(data, **cols, cov=args.cov, **kw)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["power"]:
        return power_main(argv[1:])
    args = _parser().parse_args(argv)
    analysis = "frrc" if args.fixed_readers else "rrfc" if args.fixed_cases else "rrrc"
    try:
        fit = _fit(args, _read(args.readings), alpha=args.alpha, convention=args.convention)
    except ValueError as e:
        return _fail(args.readings, e)
    json.dump({"file": args.readings, "convention": args.convention, **report(fit, analysis)}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


# ------------------------------------------------------------------ anapart-mrmc power

def _power_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anapart-mrmc power",
        description="Power, or the smallest number of cases for a target power, of a two-modality MRMC study "
                    "planned from a pilot's Obuchowski-Rockette components (Hillis, Obuchowski & Berbaum 2011). "
                    "From a pilot's readings CSV, or from --components FILE.json.")
    p.add_argument("readings", nargs="?", help="pilot CSV, one row per reading (or give --components)")
    for col in ("reader", "modality", "case", "truth", "score"):
        p.add_argument(f"--{col}", metavar="COL", help=f"column of the {col} (with a readings CSV)")
    p.add_argument("--components", metavar="FILE.json",
                   help='the pilot\'s OR components: {"var_tr", "var", "cov1", "cov2", "cov3", "cases"} (K* cases)')
    p.add_argument("--readers", type=int, required=True, metavar="J", help="readers of the planned study")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--cases", type=int, metavar="K", help="cases of the planned study: its power")
    size.add_argument("--target-power", type=float, metavar="P", help="the smallest K reaching power P")
    p.add_argument("--effect", type=float, metavar="D",
                   help="difference of reader-averaged FOMs to detect (default: the pilot's observed A - B)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    p.add_argument("--analysis", choices=[*POWER_ANALYSES, "ALL"], type=str.upper,
                   default="ALL", help="RRRC, FRRC, RRFC or all (default)")
    p.add_argument("--modalities", nargs=2, metavar=("A", "B"),
                   help="the two modalities compared (needed when the pilot has more than two)")
    p.add_argument("--cov", choices=COV_METHODS, default="jackknife", help="covariance of the pilot's FOMs")
    p.add_argument("--max-cases", type=int, default=5000, metavar="N",
                   help="largest K searched for --target-power (default 5000)")
    return p


def _levels_as_in(col: pd.Series, names) -> list:
    """The command line's modality names as the column's values (numbers stay numbers)."""
    by_text = {str(v): v for v in pd.unique(col)}
    missing = [n for n in names if n not in by_text]
    if missing:
        raise ValueError(f"modality {', '.join(missing)} not in column {col.name!r} "
                         f"(values: {sorted(by_text)})")
    return [by_text[n] for n in names]


def power_main(argv) -> int:
    p = _power_parser()
    args = p.parse_args(argv)
    if args.analysis == "ALL":
        args.analysis = "all"
    if (args.readings is None) == (args.components is None):
        p.error("give a pilot readings CSV or --components FILE.json (one of them)")
    if args.components is not None and args.effect is None:
        p.error("--components needs --effect (there is no observed difference without the readings)")
    if args.readings is not None:
        need = [f"--{c}" for c in ("reader", "modality", "case", "truth", "score") if getattr(args, c) is None]
        if need:
            p.error(f"with a readings CSV give {' '.join(need)}")
    where = args.readings or args.components
    pilot = {}
    try:
        if args.components is not None:
            try:
                with open(args.components) as fh:
                    raw = json.load(fh)
            except (OSError, ValueError) as e:
                raise ValueError(f"cannot read: {' '.join(str(e).split())}") from None
            if not isinstance(raw, dict):
                raise ValueError("components: expected a JSON object")
            comp = Components.from_dict(raw)
            effect = args.effect
        else:
            data = _read(args.readings)
            if args.modalities is not None and args.modality in data.columns:
                pair = _levels_as_in(data[args.modality], args.modalities)
                data = data[data[args.modality].isin(pair)]
            fit = _fit(args, data)
            mods = fit["design"]["modalities"]
            if len(mods) != 2:
                raise ValueError(f"the pilot has {len(mods)} modalities ({mods}): choose two with --modalities A B")
            a, b = (pair if args.modalities is not None else mods)
            comp = Components.from_fit(fit)
            fom = fit["fom"].mean(axis=1)
            observed = float(fom.loc[a] - fom.loc[b])
            effect = observed if args.effect is None else args.effect
            pilot = {"file": args.readings, "modalities": [a, b], "readers": len(fit["design"]["readers"]),
                     "cases": fit["design"]["n_cases"], "cov_method": args.cov,
                     "fom": {str(a): float(fom.loc[a]), str(b): float(fom.loc[b])}, "observed_effect": observed}
        analyses = list(POWER_ANALYSES) if args.analysis == "all" else [args.analysis]
        rows = []
        for a in analyses:
            if args.cases is not None:
                r = power(comp, args.readers, args.cases, effect, args.alpha, a)
                rows.append({k: r[k] for k in ("analysis", "statistic", "power", "ncp", "df2", "critical_value",
                                               "reason")})
            else:
                r = cases_for_power(comp, args.readers, args.target_power, effect, args.alpha, a, args.max_cases)
                rows.append({k: v for k, v in r.items() if k not in ("readers", "target_power", "effect", "alpha",
                                                                      "max_cases")})
    except ValueError as e:
        return _fail(where, e)
    out = {"pilot": pilot or {"components_file": args.components}, "components": comp.as_dict(),
           "readers": args.readers, **({"cases": args.cases} if args.cases is not None else
                                       {"target_power": args.target_power, "max_cases": args.max_cases}),
           "effect": effect, "alpha": args.alpha, "analyses": rows}
    json.dump(_plain(out), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
