"""False-positive rates and null bias of study A's primary endpoint (seg112 - full) when no format
has any effect, under the design the replicates really have (issue 30).

    .venv/bin/python benchmarks/false_positives.py [--sims 400] [--seed 0] [--scenario NAME] [--mixed 0]

Every scenario is null: the formats are exchangeable except in the variance the scenario names, and
that variance enters the figure of merit linearly (a model *misses* a patient -- gives its true
class no lift -- with its own miss rate; the AUC is an average over positives of placement values,
so it is linear in the miss rate and the expected AUC of every format is exactly the same). Score
columns are logits per class; a calibration shift adds to every score of one fold-model.

Scenarios (all 4 networks x 3 formats):
  binary, single split              -- one label per patient, 50% prevalence (the former benchmark)
  6 classes, rare, mixed labels     -- 6 classes, two with 3-4 patients, lesion patients with normal slices
  folds: format-dependent shifts    -- 4 folds x 3 repeats; each fold-model shifts its scores, SD 1.0
                                       for full vs 0.2 for the crops (issue 30: pooled AUC +0.043)
  folds: fold x format shared       -- 4 folds x 3 repeats; each fold's formats gain or lose for every
                                       network alike (one segmenter, one subset draw per fold): a miss
                                       rate +-0.3 (uniform), where the former primary rejects 21% at 0.05
  unequal network x format var      -- networks differ much more in full than in the crops
  all of it                         -- 6 classes, rare, mixed labels, folds, shifts, fold x format,
                                       unequal variance

Analyses, on the contrast seg112 - full of the aAUC (binary: the AUC):
  before: pooled, t=3           -- the former primary: pooled out-of-fold AUC of the declared
                                   replicate (repeat 0), OR-RRRC with the three-format error term
  after: within-fold, t=2, fold-shared variance
                                -- the primary now: within-fold AUC averaged over every repeat, OR-RRRC
                                   on seg112 and full alone (Hillis df), with the between-fold variance
                                   that the patients do not explain added (anapart.metrics.fold_shared;
                                   a single split has no folds: OR-RRRC t=2 alone)
  within-fold, t=2, patients and networks only
                                -- the same without the fold-shared variance (the primary of 6c9ede5)
  pooled, t=2 (sensitivity)     -- pooled AUC averaged over repeats, t=2
  fold-variance (sensitivity)   -- Nadeau-Bengio corrected resampled t over the R x K folds
  CAM OR-RRRC                   -- the Grad-CAM co-primary (mean score per network, format, patient)
  CAM mixed (--mixed N)         -- the mixed model on the first N data sets (slow; no p = no call)

The FOMs and their patient jackknife are computed here in closed form (vectorised: the AUC's
positive-negative pair sums per pair of patients, minus the left-out patient's row and column);
tests/metrics/test_false_positive_bench.py checks them against anapart.metrics.mrmc.or_analysis with
the library's within-fold and pooled FOMs. The OR tests themselves are the library's
(anapart.metrics.mrmc.or_test, mrmc_contrast.sub_design; anapart.metrics.replicates.corrected_resampled_t).
Prints per scenario and analysis: rejections at alpha 0.025 and 0.05 with Clopper-Pearson 95%
intervals, the mean null estimate (bias) and its SE, and data sets without a p-value.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from anapart.metrics.fold_shared import MIN_DF, add_fold_shared, fold_components
from anapart.metrics.intervals import clopper_pearson
from anapart.metrics.mrmc import jackknife_cov, or_test
from anapart.metrics.mrmc_contrast import sub_design
from anapart.metrics.replicates import corrected_resampled_t

NETS, FORMATS = ["n1", "n2", "n3", "n4"], ["seg112", "seg224", "full"]
A, B = 0, 2  # seg112 - full
BINARY = dict(counts=(20, 20), binary=True, slices=3, normal_share=0.0)
SIX = dict(counts=(12, 6, 4, 3, 4, 9), binary=False, slices=4, normal_share=0.25)

SCENARIOS = {
    "binary, single split": dict(**BINARY, folds=1, repeats=1, pf_sd=0.5, arch=(0.1, 0.1, 0.1),
                                 model=(0.1, 0.1, 0.1)),
    "6 classes, rare, mixed labels": dict(**SIX, folds=1, repeats=1, pf_sd=0.5, arch=(0.1, 0.1, 0.1),
                                          model=(0.1, 0.1, 0.1)),
    "folds: format-dependent shifts": dict(**{**BINARY, "counts": (30, 30)}, folds=4, repeats=3, pf_sd=0.3,
                                           arch=(0.05, 0.05, 0.05), model=(0.1, 0.1, 0.1),
                                           shift=(0.2, 0.2, 1.0)),
    "folds: fold x format shared": dict(**{**BINARY, "counts": (30, 30)}, folds=4, repeats=3, pf_sd=0.3,
                                        arch=(0.05, 0.05, 0.05), model=(0.05, 0.05, 0.05), fold_fmt=0.3),
    "unequal network x format var": dict(**BINARY, folds=1, repeats=1, pf_sd=0.3, arch=(0.04, 0.04, 0.25),
                                         model=(0.02, 0.02, 0.02)),
    "all of it": dict(**SIX, folds=4, repeats=3, pf_sd=0.3, arch=(0.04, 0.04, 0.2), model=(0.05, 0.05, 0.05),
                      shift=(0.2, 0.2, 1.0), fold_fmt=0.25, miss=0.5),
}


def _folds(rng, cls: np.ndarray, k: int) -> np.ndarray:
    """Patients dealt to k folds, stratified by class (shuffled within class, round robin)."""
    out = np.zeros(len(cls), int)
    start = 0
    for c in np.unique(cls):
        idx = rng.permutation(np.where(cls == c)[0])
        out[idx] = (start + np.arange(len(idx))) % k
        start += len(idx)
    return out


def simulate(rng, counts, binary, slices, normal_share, folds=1, repeats=1, pf_sd=0.5, arch=(0.1,) * 3,
             model=(0.1,) * 3, shift=(0.0,) * 3, fold_fmt=0.0, lift=1.5, miss=0.3):
    """One null data set: per repeat, fold assignment, and per (repeat, format, network) the logits
    of every slice for every class; CAM scores per (repeat, format, network, slice).

    A model misses each patient (no lift for its true class) with probability miss + arch + model
    (+ fold x format), each a centred uniform of the half-width given per format (never clipped at
    0 or 1 where the widths differ by format: clipping would move the mean miss rate); format-free
    patient effects and a patient x format effect (SD ``pf_sd``, same for every format) add to the lift."""
    width = np.asarray(arch) + np.asarray(model) + fold_fmt  # largest deviation of a miss rate, per format
    if len(set(width)) > 1 and not (miss - width.max() >= 0 and miss + width.max() <= 1):
        raise ValueError(f"miss {miss} +- {width.max():.2f} leaves [0, 1]: clipping would lower the AUC of the "
                         "format with the widest spread, a format effect in a null scenario")
    cls = np.repeat(np.arange(len(counts)), counts)  # patient class
    n_pat, n_cls = len(cls), len(counts)
    pat_of = np.repeat(np.arange(n_pat), slices)
    label = cls[pat_of].copy()
    if normal_share and not binary:  # lesion patients' first slices are normal
        first = np.tile(np.arange(slices), n_pat) < round(normal_share * slices)
        label[first & (cls[pat_of] != n_cls - 1)] = n_cls - 1
    n_sl = len(label)
    n_f, n_n = len(FORMATS), len(NETS)
    arch_m = rng.uniform(-1, 1, (n_f, n_n)) * np.asarray(arch)[:, None]  # per network x format, every replicate
    pat = rng.normal(0, 0.5, n_pat)
    pf = rng.normal(0, pf_sd, (n_pat, n_f))
    cam_pat, cam_pf = rng.normal(0, 0.08, n_pat), rng.normal(0, 0.06, (n_pat, n_f))
    cam_net = rng.normal(0, 0.04, n_n)
    cam_arch = rng.normal(0, 1, (n_f, n_n)) * 0.1 * np.asarray(arch)[:, None]
    fold = np.stack([_folds(rng, cls, folds) for _ in range(repeats)])  # repeats x patients
    logits = np.empty((repeats, n_f, n_n, n_sl, n_cls))
    cam = np.empty((repeats, n_f, n_n, n_sl))
    for r in range(repeats):
        fk = fold[r][pat_of]  # fold of each slice
        ff = rng.uniform(-fold_fmt, fold_fmt, (folds, n_f)) if fold_fmt else np.zeros((folds, n_f))
        mdl = rng.uniform(-1, 1, (folds, n_f, n_n)) * np.asarray(model)[None, :, None]
        sh = rng.normal(0, 1, (folds, n_f, n_n, n_cls)) * np.asarray(shift)[None, :, None, None]
        cam_m = rng.normal(0, 1, (folds, n_f, n_n)) * 0.1 * np.asarray(model)[None, :, None]
        for j in range(n_f):
            for i in range(n_n):
                p_miss = np.clip(miss + arch_m[j, i] + mdl[:, j, i] + ff[:, j], 0, 1)  # per fold
                hit = rng.random(n_pat) >= p_miss[fold[r]]
                gain = (lift + pat + pf[:, j]) * hit  # per patient
                x = rng.normal(0, 1, (n_sl, n_cls)) + sh[fk, j, i]
                x[np.arange(n_sl), label] += gain[pat_of]
                logits[r, j, i] = x
                cam[r, j, i] = (0.4 + cam_net[i] + cam_arch[j, i] + cam_m[fk, j, i] + cam_pat[pat_of]
                                + cam_pf[pat_of, j] + rng.normal(0, 0.08, n_sl))
    classes = [1] if binary else list(range(n_cls))
    return {"label": label, "pat_of": pat_of, "fold": fold, "logits": logits, "cam": cam, "classes": classes,
            "n_pat": n_pat}


def _pair_sums(x: np.ndarray, pos: np.ndarray, weight: np.ndarray, gp: np.ndarray, gn: np.ndarray) -> np.ndarray:
    """Per cell, the (patient, patient) sums of w * [1{x_pos > x_neg} + 1/2 1{tie}]: cells x P x P."""
    xp, xn = x[:, pos], x[:, ~pos]
    psi = (xp[:, :, None] > xn[:, None, :]) + 0.5 * (xp[:, :, None] == xn[:, None, :])
    return gp @ (psi * weight) @ gn.T


def foms(d: dict, within: bool, repeats=None) -> tuple[np.ndarray, np.ndarray]:
    """aAUC (mean one-vs-rest AUC over ``classes``) of every cell (format-major) and its
    leave-one-patient-out values (P x cells), each averaged over the repeats; ``within``: only
    positive-negative pairs of the same fold."""
    label, pat_of, n_pat = d["label"], d["pat_of"], d["n_pat"]
    reps = range(d["logits"].shape[0]) if repeats is None else repeats
    n_cells = d["logits"].shape[1] * d["logits"].shape[2]
    theta, jk = np.zeros(n_cells), np.zeros((n_pat, n_cells))
    for r in reps:
        fk = d["fold"][r][pat_of]
        x_all = d["logits"][r].reshape(n_cells, len(label), -1)
        for c in d["classes"]:
            pos = label == c
            gp = (pat_of[pos][None, :] == np.arange(n_pat)[:, None]).astype(float)
            gn = (pat_of[~pos][None, :] == np.arange(n_pat)[:, None]).astype(float)
            w = (fk[pos][:, None] == fk[~pos][None, :]).astype(float) if within else np.ones((pos.sum(), (~pos).sum()))
            s = _pair_sums(x_all[:, :, c], pos, w, gp, gn)  # cells x P x P
            n = gp @ w @ gn.T  # P x P
            tot, ntot = s.sum(axis=(1, 2)), n.sum()
            diag = np.einsum("ckk->ck", s)
            s_loo = tot[:, None] - s.sum(axis=2) - s.sum(axis=1) + diag  # cells x P
            n_loo = ntot - n.sum(axis=1) - n.sum(axis=0) + np.diag(n)
            theta += tot / ntot
            jk += (s_loo / n_loo[None, :]).T
    k = len(reps) * len(d["classes"])
    return theta / k, jk / k


def fold_contrasts(d: dict) -> np.ndarray:
    """Per (repeat, fold): network-averaged aAUC contrast seg112 - full on that fold's patients
    (classes the fold holds both ways)."""
    label, pat_of = d["label"], d["pat_of"]
    n_f, n_n = d["logits"].shape[1:3]
    out = []
    for r in range(d["logits"].shape[0]):
        fk = d["fold"][r][pat_of]
        for k in np.unique(fk):
            m = fk == k
            fom = np.zeros((n_f, n_n))
            for j in (A, B):
                for i in range(n_n):
                    vals = []
                    for c in d["classes"]:
                        pos = label[m] == c
                        if 0 < pos.sum() < m.sum():
                            x = d["logits"][r, j, i][m][:, c]
                            xp, xn = x[pos], x[~pos]
                            vals.append(((xp[:, None] > xn[None, :]) + 0.5 * (xp[:, None] == xn[None, :])).mean())
                    fom[j, i] = np.mean(vals)
            out.append(float((fom[A] - fom[B]).mean()))
    return np.array(out)


def _pair_row(theta: np.ndarray, jk: np.ndarray, keep, analysis: str = "rrrc", full: bool = False,
              convention: str = "reference"):
    """(estimate, p) of seg112 - full from the library's OR test on the formats ``keep``; ``full``:
    the whole pair row (se, df)."""
    t, cov = theta.reshape(len(FORMATS), len(NETS)), jackknife_cov(jk)
    mods = list(range(len(FORMATS)))
    if keep is not None:
        t, cov = sub_design(t, cov, keep)
        mods = keep
    res = or_test(t, cov, [FORMATS[m] for m in mods], NETS, convention=convention)[analysis]["pairs"]
    row = res[(res["modality_a"] == "seg112") & (res["modality_b"] == "full")].iloc[0]
    return row if full else (float(row["estimate"]), float(row["p"]))


def fold_shared(d: dict, folds: int) -> tuple[float, float]:
    """The primary now: within-fold t=2 OR-RRRC with the fold-shared variance added, as
    anapart.metrics.fold_shared does it (tau^2 from the folds' contrasts and each repeat's FRRC SE)."""
    row = _pair_row(*foms(d, within=True), [A, B], full=True)
    reps = d["logits"].shape[0]
    per_fold = fold_contrasts(d).reshape(reps, folds)
    case = [_pair_row(*foms(d, within=True, repeats=[r]), [A, B], "frrc", full=True, convention="mrmcaov")["se"] ** 2
            for r in range(reps)]
    comp = fold_components(per_fold, case)
    if comp["df"] < MIN_DF:
        return float(row["estimate"]), float(row["p"])
    new = add_fold_shared(float(row["estimate"]), float(row["se"]), float(row["df"]), comp)
    return float(row["estimate"]), new["p"]


def cam_or(d: dict) -> tuple[float, float]:
    """Grad-CAM co-primary: OR-RRRC t=2 on the mean score per (network, format, patient)."""
    pat_of, n_pat = d["pat_of"], d["n_pat"]
    g = (pat_of[None, :] == np.arange(n_pat)[:, None]).astype(float)
    g /= g.sum(axis=1, keepdims=True)
    means = np.einsum("rfns,ps->pfn", d["cam"], g) / d["cam"].shape[0]  # P x formats x nets
    x = means[:, [A, B], :].reshape(n_pat, -1)
    theta = x.mean(axis=0)
    loo = (x.sum(axis=0)[None, :] - x) / (n_pat - 1)
    res = or_test(theta.reshape(2, len(NETS)), jackknife_cov(loo), ["seg112", "full"], NETS)["rrrc"]["pairs"]
    return float(res["estimate"].iloc[0]), float(res["p"].iloc[0])


def cam_mixed(d: dict) -> float:
    from anapart.metrics.cam_stats import mixed_model, patient_means

    rows = []
    r_, f_, n_, s_ = d["cam"].shape
    for r in range(r_):
        for j in range(f_):
            for i in range(n_):
                rows.append(pd.DataFrame({"net": NETS[i], "fmt": FORMATS[j], "frac": 100, "patient": d["pat_of"],
                                          "cam": d["cam"][r, j, i]}))
    m = patient_means(pd.concat(rows, ignore_index=True), "cam")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, res, _, why = mixed_model(m, "cam", [("seg112", "full")], "full")
    return np.nan if why else res[("seg112", "full")][2]


def analyse(d: dict, folds: int, mixed: bool = False) -> dict:
    out = {}
    th, jk = foms(d, within=False, repeats=[0])
    out["before: pooled, t=3 (declared replicate)"] = _pair_row(th, jk, None)
    th, jk = foms(d, within=True)
    if folds > 1:
        out["after: within-fold, t=2, fold-shared variance (primary)"] = fold_shared(d, folds)
        out["within-fold, t=2, patients and networks only"] = _pair_row(th, jk, [A, B])
    else:
        out["after: within-fold, t=2, fold-shared variance (primary)"] = _pair_row(th, jk, [A, B])
    if folds > 1:
        th, jk = foms(d, within=False)
        out["pooled, t=2 (sensitivity)"] = _pair_row(th, jk, [A, B])
        fv = corrected_resampled_t(fold_contrasts(d), folds)
        out["fold-variance (sensitivity)"] = (fv["estimate"], fv["p"])
    out["CAM OR-RRRC (co-primary)"] = cam_or(d)
    if mixed:
        out["CAM mixed model (sensitivity)"] = (np.nan, cam_mixed(d))
    return out


def summarise(name: str, results: dict[str, list]) -> list[dict]:
    rows = []
    for k, v in results.items():
        est, p = np.asarray(v, float).T
        n = len(p)
        row = {"scenario": name, "analysis": k, "data_sets": n, "no_p_value": int(np.isnan(p).sum())}
        for a in (0.025, 0.05):
            rej = int((p < a).sum())
            lo, hi = clopper_pearson(rej, n)
            row.update({f"rate_{a}": rej / n, f"ci_low_{a}": lo, f"ci_high_{a}": hi})
        row["holds_0.025"] = bool(row["rate_0.025"] <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / n))
        row["mean_estimate"] = float(np.nanmean(est)) if np.isfinite(est).any() else np.nan
        row["se_mean"] = float(np.nanstd(est, ddof=1) / np.sqrt(np.isfinite(est).sum())) if np.isfinite(est).sum() > 1 \
            else np.nan
        rows.append(row)
    return rows


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="only these (default: all)")
    ap.add_argument("--mixed", type=int, default=0, help="also the CAM mixed model on the first N data sets")
    ap.add_argument("--out", help="write the table as CSV here")
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    for si, (name, params) in enumerate(SCENARIOS.items()):
        if args.scenario and name not in args.scenario:
            continue
        res: dict[str, list] = {}
        for s in range(args.sims):
            d = simulate(np.random.default_rng([args.seed, si, s]), **params)
            for k, v in analyse(d, params["folds"], mixed=s < args.mixed).items():
                res.setdefault(k, []).append(v)
        rows += summarise(name, res)
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"{args.sims} simulated data sets per scenario in {time.time() - t0:.0f} s")
    if args.out:
        table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
