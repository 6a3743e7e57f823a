"""False-positive rates of study A's tests of formats when there is no format effect at all, but
patient x format effects are shared by every network (a patient whose lesion one crop happens to
frame well is framed well for all four networks) and each trained model deviates on its own
(network x format). This is the situation of one shared test set and one training run per model;
tests that take patients or models as fixed cannot see it (issue 26).

    .venv/bin/python benchmarks/false_positives.py [--sims 200] [--seed 0]

Tests, each at alpha 0.05 on the contrast seg112 - full:
  AUC  network paired t  -- paired t over networks of each model's AUC (the ANOVA/post-hoc family:
                            test patients fixed)
  AUC  MRMC RRRC / FRRC  -- Obuchowski-Rockette, Hillis df, jackknife over patients
                            (anapart.metrics.mrmc.or_analysis)
  CAM  network paired t  -- paired t over networks of each model's mean CAM score (cam_tests.csv
                            unit network)
  CAM  mixed, former     -- the mixed model without (1|patient:format), p always reported
  CAM  mixed, now        -- with (1|patient:format); no p-value for a fit that did not converge or
                            has a judged variance component on the boundary (counted as "no call")
Prints one line per test: rejections / data sets, the rate and its Clopper-Pearson 95% interval.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from anapart.metrics.cam_stats import mixed_model, patient_means
from anapart.metrics.intervals import clopper_pearson
from anapart.metrics.mrmc import empirical_auc, or_analysis

NETS, FORMATS = ["n1", "n2", "n3", "n4"], ["seg112", "seg224", "full"]


# (patient x format SD, network x format SD) of the AUC scores and of the CAM scores: from
# model-dominated to patient-dominated; the network-unit tests fail as the shared part grows.
SCENARIOS = {
    "models vary most": dict(pf_sd=0.5, nf_sd=0.3, cam_pf=0.06, cam_nf=0.03),
    "patients x format dominate": dict(pf_sd=1.0, nf_sd=0.05, cam_pf=0.10, cam_nf=0.01),
    # the replicates' primary analysis: 4 folds, each patient predicted by its fold's models, each
    # fold's models with their own network x format deviations, all patients pooled as cases
    # each fold's models also shift every score of their fold (a calibration difference), which is
    # what distorts a pooled cross-validated AUC
    "pooled out-of-fold, 4 folds": dict(pf_sd=0.5, nf_sd=0.3, cam_pf=0.06, cam_nf=0.03, folds=4, shift_sd=0.5),
}


def simulate(rng, patients=24, slices=3, pf_sd=0.5, nf_sd=0.3, cam_pf=0.06, cam_nf=0.03, signal=1.0, folds=1,
             shift_sd=0.0):
    """Slice scores of a binary lesion-vs-normal task and CAM scores, no format effect anywhere.
    ``folds`` > 1: patients are dealt to folds stratified by class (each fold holds both), patient p
    is scored by its fold's models, each with its own network x format deviations and an overall
    score shift of SD ``shift_sd`` (pooled out-of-fold predictions)."""
    truth = np.arange(patients) % 2
    pat = rng.normal(0, 0.7, patients)
    pf = rng.normal(0, pf_sd, (patients, len(FORMATS)))  # shared by every network
    nf = rng.normal(0, nf_sd, (folds, len(NETS), len(FORMATS)))  # one trained model's own deviation
    shift = rng.normal(0, shift_sd, (folds, len(NETS), len(FORMATS))) if shift_sd else np.zeros_like(nf)
    fold_of = (np.arange(patients) // 2) % folds  # truth alternates, so every fold has both classes
    cam_pat = rng.normal(0, 0.08, patients)
    cam_pf = rng.normal(0, cam_pf, (patients, len(FORMATS)))
    cam_nf = rng.normal(0, cam_nf, (folds, len(NETS), len(FORMATS)))
    cam_net = rng.normal(0, 0.04, len(NETS))
    rows = []
    for i, net in enumerate(NETS):
        for j, fmt in enumerate(FORMATS):
            for p in range(patients):
                for k in range(slices):
                    f = fold_of[p]
                    score = signal * truth[p] + pat[p] * 0.5 + pf[p, j] + nf[f, i, j] * (2 * truth[p] - 1) \
                        + shift[f, i, j] + rng.normal(0, 1)
                    cam = 0.4 + cam_net[i] + cam_nf[f, i, j] + cam_pat[p] + cam_pf[p, j] + rng.normal(0, 0.08)
                    rows.append((net, fmt, f"P{p:02d}", truth[p], score, cam))
    return pd.DataFrame(rows, columns=["net", "fmt", "patient", "truth", "score", "cam"])


def auc_tests(d: pd.DataFrame) -> dict:
    auc = d.groupby(["net", "fmt"]).apply(lambda g: empirical_auc(g["truth"].to_numpy(), g["score"].to_numpy()),
                                          include_groups=False).unstack()
    out = {"AUC network paired t": stats.ttest_rel(auc["seg112"], auc["full"]).pvalue}
    res = or_analysis(d, reader="net", modality="fmt", case="patient", truth="truth", score="score")
    for a in ("rrrc", "frrc"):
        pairs = res[a]["pairs"]
        row = pairs[((pairs["modality_a"] == "full") & (pairs["modality_b"] == "seg112"))
                    | ((pairs["modality_a"] == "seg112") & (pairs["modality_b"] == "full"))].iloc[0]
        out[f"AUC MRMC {a.upper()}"] = row["p"]
    return out


def cam_tests(d: pd.DataFrame) -> dict:
    means = d.groupby(["net", "fmt"])["cam"].mean().unstack()
    out = {"CAM network paired t": stats.ttest_rel(means["seg112"], means["full"]).pvalue}
    m = patient_means(d.assign(frac=100), "cam")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, old, _, _ = mixed_model(m, "cam", [("seg112", "full")], "full", patient_format=False)
        fit, new, _, why = mixed_model(m, "cam", [("seg112", "full")], "full")
    out["CAM mixed, former"] = old[("seg112", "full")][2]
    out["CAM mixed, now"] = np.nan if why else new[("seg112", "full")][2]
    return out


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="only these (default: all)")
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    for name, params in SCENARIOS.items():
        if args.scenario and name not in args.scenario:
            continue
        ps: dict[str, list] = {}
        for s in range(args.sims):
            d = simulate(np.random.default_rng([args.seed, s]), **params)
            for k, v in {**auc_tests(d), **cam_tests(d)}.items():
                ps.setdefault(k, []).append(v)
        for k, v in ps.items():
            v = np.asarray(v, float)
            rej, called = int((v < 0.05).sum()), int(np.isfinite(v).sum())
            lo, hi = clopper_pearson(rej, len(v))
            rows.append({"scenario": name, "test": k, "rejections": rej, "data_sets": len(v), "rate": rej / len(v),
                         "ci_low": lo, "ci_high": hi, "no_p_value": len(v) - called})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"{args.sims} simulated data sets per scenario in {time.time() - t0:.0f} s")
    return table


if __name__ == "__main__":
    main()
