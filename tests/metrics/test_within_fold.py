"""Within-fold AUC, replicates averaged, and the corrected resampled t (anapart.metrics.mrmc_formats,
anapart.metrics.replicates) against brute force over pairs, scikit-learn and hand computation."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from anapart.metrics.mrmc_formats import pooled_figures, within_fold_auc, within_fold_figures
from anapart.metrics.replicates import (averaged_mrmc, corrected_resampled_t, fold_variance, pool_out_of_fold,
                                        replicate_summary)
from metrics.test_mrmc_formats import CLASSES, _preds
from metrics.test_replicates import _write_folds


def _brute(truth, score, fold):
    """Mean of 1{pos > neg} + 1/2 1{tie} over every positive-negative pair of the same fold."""
    vals = [(score[i] > score[j]) + 0.5 * (score[i] == score[j])
            for i, j in itertools.product(range(len(truth)), repeat=2)
            if truth[i] and not truth[j] and fold[i] == fold[j]]
    return float(np.mean(vals))


def test_within_fold_auc_counts_only_same_fold_pairs():
    rng = np.random.default_rng(1)
    n = 40
    fold = rng.integers(0, 3, n)
    truth = rng.random(n) < np.where(fold == 0, 0.2, 0.6)  # unequal n1k n0k: a plain mean of fold AUCs differs
    score = np.round(truth + rng.normal(0, 1, n) + 2.0 * fold, 1)  # ties and fold shifts
    assert within_fold_auc(truth, score, fold) == pytest.approx(_brute(truth, score, fold), abs=1e-12)
    plain = np.mean([roc_auc_score(truth[fold == k], score[fold == k]) for k in range(3)])
    assert abs(plain - _brute(truth, score, fold)) > 1e-3
    # a calibration shift between folds lowers the pooled AUC, never the within-fold one
    assert roc_auc_score(truth, score) < within_fold_auc(truth, score, fold) - 0.02
    rep = np.repeat([0, 1], n // 2)
    expect = np.mean([_brute(truth[rep == g], score[rep == g], fold[rep == g]) for g in (0, 1)])
    assert within_fold_auc(truth, score, fold, rep) == pytest.approx(expect, abs=1e-12)


def test_corrected_resampled_t_by_hand():
    d = np.array([0.03, -0.01, 0.05, 0.02, 0.00, 0.04])  # R = 2 repeats x K = 3 folds
    res = corrected_resampled_t(d, folds=3, alpha=0.05)
    s2 = sum((x - d.mean()) ** 2 for x in d) / 5
    se = np.sqrt((1 / 6 + 1 / 2) * s2)  # n_test / n_train = 1 / (K - 1)
    assert res["se"] == pytest.approx(se) and res["df"] == 5
    assert res["p"] == pytest.approx(2 * stats.t.sf(d.mean() / se, 5))
    assert res["ci_low"] == pytest.approx(d.mean() - stats.t.ppf(0.975, 5) * se)
    assert np.isnan(corrected_resampled_t(d[:1], folds=3)["p"])


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    preds, patient_of = _preds(seed=4, patients=8, nets=2)
    root = tmp_path_factory.mktemp("folds")
    pooled = pool_out_of_fold(_write_folds(root, preds, folds=2, seeds=(0, 1)), folds=2)
    return pooled, patient_of


def test_averaged_analysis_is_the_mean_over_replicates_of_within_fold_aaucs(replicated):
    """The primary estimate: per network and format, sklearn's AUC on each fold, weighted n1k n0k,
    per class then averaged, then over replicates; seg112 - full averaged over networks."""
    pooled, patient_of = replicated
    def wf(table):
        out = []
        for c in CLASSES:
            num = den = 0.0
            for _, g in table.groupby("fold"):
                y = g["label"] == c
                if 0 < y.sum() < len(y):
                    num += roc_auc_score(y, g[f"p_{c}"]) * y.sum() * (~y).sum()
                    den += y.sum() * (~y).sum()
            out.append(num / den)
        return np.mean(out)

    fom = {}
    for net, fmt in itertools.product(["net0", "net1"], ["full", "seg112"]):
        fom[net, fmt] = np.mean([wf(models[(net, fmt, 100)]) for models in pooled.values()])
    expect = np.mean([fom[n, "seg112"] - fom[n, "full"] for n in ("net0", "net1")])
    table = averaged_mrmc(pooled, patient_of, CLASSES)
    row = table[(table.figure == "aauc") & (table.analysis == "RRRC") & (table.estimator == "within-fold")
                & (table.contrast == "full - seg112")].iloc[0]
    assert -row["estimate"] == pytest.approx(expect, abs=1e-12)
    pooled_row = table[(table.figure == "aauc") & (table.analysis == "RRRC") & (table.estimator == "pooled")
                       & (table.contrast == "full - seg112")].iloc[0]
    sk = {k: np.mean([np.mean([roc_auc_score(m[k]["label"] == c, m[k][f"p_{c}"]) for c in CLASSES])
                      for m in pooled.values()]) for k in [(n, f, 100) for n in ("net0", "net1") for f in ("full", "seg112")]}
    exp_pooled = np.mean([sk[(n, "full", 100)] - sk[(n, "seg112", 100)] for n in ("net0", "net1")])
    assert pooled_row["estimate"] == pytest.approx(exp_pooled, abs=1e-12)
    assert (table["ci_level"] == 0.95).all()


def test_fold_variance_rows_by_hand(replicated):
    pooled, _ = replicated
    fv = fold_variance(pooled, CLASSES, folds=2)
    row = fv[fv.contrast == "full - seg112"].iloc[0]
    d = []
    for k in (0, 1):
        per_net = []
        for n in ("net0", "net1"):
            v = {}
            for f in ("full", "seg112"):
                seeds = []
                for (r, s), models in pooled.items():
                    g = models[(n, f, 100)]
                    g = g[g.fold == k]
                    seeds.append(np.mean([roc_auc_score(g.label == c, g[f"p_{c}"]) for c in CLASSES
                                          if 0 < (g.label == c).sum() < len(g)]))
                v[f] = np.mean(seeds)
            per_net.append(v["full"] - v["seg112"])
        d.append(np.mean(per_net))
    assert row["estimate"] == pytest.approx(np.mean(d))
    assert row["se"] == pytest.approx(np.sqrt((1 / 2 + 1) * np.var(d, ddof=1)))
    assert row["estimator"] == "fold-variance"


def test_figures_carry_their_classes():
    assert within_fold_figures(CLASSES)["aauc"].classes == tuple(CLASSES)
    assert pooled_figures(CLASSES)["auc_a"].classes == ["a"]


def test_interaction_row_is_the_difference_of_differences_of_mean_aaucs():
    """(seg112 - full)@25 - (seg112 - full)@100 of network-averaged aAUCs (scikit-learn), and each
    pair analysed on its own two formats (its df2 is not the three-format global df2)."""
    from anapart.metrics.mrmc_formats import format_mrmc

    p100, patient_of = _preds(seed=6, patients=8, nets=2, frac=100)
    p25, _ = _preds(seed=7, patients=8, nets=2, frac=25, effect={"full": 0.2, "seg112": 1.2, "seg224": 0.5})
    preds = {**p100, **p25}
    table = format_mrmc(preds, patient_of, CLASSES, interaction=("seg112", "full"))
    aauc = {k: np.mean([roc_auc_score(v["label"] == c, v[f"p_{c}"]) for c in CLASSES]) for k, v in preds.items()}
    diff = {f: np.mean([aauc[(n, "seg112", f)] - aauc[(n, "full", f)] for n in ("net0", "net1")]) for f in (25, 100)}
    rows = table[table["contrast"] == "(seg112 - full)@25 - (seg112 - full)@100"]
    assert set(rows["analysis"]) == {"RRRC", "FRRC"} and (rows["frac"] == 25).all()
    assert rows["estimate"].to_numpy() == pytest.approx([diff[25] - diff[100]] * 2, abs=1e-12)
    assert rows["p"].between(0, 1).all() and rows["p_holm"].isna().all()
    rr = table[(table.figure == "aauc") & (table.analysis == "RRRC") & (table.frac == 100)]
    glob = rr[rr.contrast == "all formats"]["df2"].item()
    assert (rr[rr.contrast != "all formats"]["df2"] != glob).all()


def test_replicate_summary_puts_the_per_replicate_spread_beside_the_averaged_rows(replicated):
    from anapart.metrics.replicates import replicate_mrmc

    pooled, patient_of = replicated
    per = replicate_mrmc(pooled, patient_of, CLASSES)
    avg = averaged_mrmc(pooled, patient_of, CLASSES)
    fv = fold_variance(pooled, CLASSES, folds=2)
    out = replicate_summary(avg, per, fv, primary=(0, 0))
    assert set(out["estimator"]) == {"within-fold", "pooled", "fold-variance"}
    key = (out.figure == "aauc") & (out.analysis == "RRRC") & (out.contrast == "full - seg112")
    main = out[key & (out.estimator == "within-fold")].iloc[0]
    reps = per[(per.figure == "aauc") & (per.analysis == "RRRC") & (per.contrast == "full - seg112")]["estimate"]
    assert main["mean_over_replicates"] == pytest.approx(reps.mean()) and main["n_replicates"] == 2
    # the averaged FOM is linear in the replicates' FOMs: its contrast is their mean too
    assert main["estimate"] == pytest.approx(reps.mean(), abs=1e-12)
    assert out[key & (out.estimator == "pooled")]["n_replicates"].isna().all()
