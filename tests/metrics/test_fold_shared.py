"""The fold-shared variance of the replicates' primary (anapart.metrics.fold_shared) against hand
computations, scipy, scikit-learn and a brute-force simulation whose true components are known."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from anapart.metrics.fold_shared import (add_fold_shared, excess_fold_variance, fold_components,
                                         with_fold_shared_variance)
from anapart.metrics.replicates import averaged_mrmc, pool_out_of_fold
from metrics.test_mrmc_formats import CLASSES, _preds
from metrics.test_replicates import _write_folds
from metrics.test_within_fold import replicated  # noqa: F401  (the module fixture)


def test_excess_fold_variance_by_hand():
    d = np.array([[0.1, 0.3, 0.2], [0.0, 0.4, 0.2]])  # R = 2 repeats x K = 3 folds
    # S^2 = 0.02 / 2 = 0.01 and 0.08 / 2 = 0.04; K V = 0.003 and 0.006
    assert excess_fold_variance(d, [0.001, 0.002]) == pytest.approx((0.007 + 0.034) / 2)
    assert excess_fold_variance(d, [0.004, 0.012]) == pytest.approx((-0.002 + 0.004) / 2)  # the mean, then max(0, .)
    assert excess_fold_variance(d, [0.01, 0.02]) == 0.0  # truncated at 0
    assert np.isnan(excess_fold_variance(d[:, :1], [0.001, 0.002]))  # one fold: no between-fold spread
    comp = fold_components(np.array([[0.1, np.nan, 0.2], [0.0, 0.4, 0.2]]), [0.001, 0.002])
    assert comp["repeats"] == 1 and comp["df"] == 2 and comp["ms"] == pytest.approx(0.04)  # a repeat with a gap drops


def test_add_fold_shared_by_hand():
    # R = 2, K = 3: ms = 0.004, v = 0.0004, tau^2 = 0.004 - 3 * 0.0004 = 0.0028; OR part se 0.03 on 6 df
    comp = {"tau2": 0.0028, "ms": 0.004, "v": 0.0004, "repeats": 2, "folds": 3, "df": 4}
    new = add_fold_shared(0.1, 0.03, 6, comp, alpha=0.05)
    v = 0.03 ** 2 + 0.0028 / 6
    # Satterthwaite over the random parts: the OR part (0.03^2, 6 df) and ms / (R K) (R (K - 1) = 4 df)
    df = v ** 2 / (0.03 ** 4 / 6 + (0.004 / 6) ** 2 / 4)
    assert new["se"] == pytest.approx(np.sqrt(v)) and new["df"] == pytest.approx(df)
    assert new["p"] == pytest.approx(2 * stats.t.sf(0.1 / np.sqrt(v), df))
    assert new["ci_low"] == pytest.approx(0.1 - stats.t.ppf(0.975, df) * np.sqrt(v))
    none = {**comp, "tau2": 0.0}
    same = add_fold_shared(0.1, 0.03, 6, none)  # nothing shared: Hillis' test exactly
    assert same["se"] == pytest.approx(0.03) and same["df"] == pytest.approx(6)
    z = add_fold_shared(0.1, 0.03, np.inf, none)  # FRRC, nothing shared: the normal test
    assert z["p"] == pytest.approx(2 * stats.norm.sf(0.1 / 0.03))
    # FRRC with one repeat: se^2 = V, so the variance is ms / K, a mean square of K - 1 df
    one = {"tau2": 0.004 - 3 * 0.0009, "ms": 0.004, "v": 0.0009, "repeats": 1, "folds": 3, "df": 2}
    frrc = add_fold_shared(0.1, 0.03, np.inf, one)
    assert frrc["se"] ** 2 == pytest.approx(0.004 / 3) and frrc["df"] == pytest.approx(2)


def _study(rng, n, reps, folds, tau, sigma):
    """Brute force at the level the estimator sees: n patients, each with a contrast x_i ~ N(0,
    sigma^2) that every repeat shares (the same patients), dealt to K folds per repeat; fold r,k adds
    f_rk ~ N(0, tau^2) to all of its patients. Returns the estimate, its patient-only SE and df (the
    jackknife of the mean, n - 1 df), the R x K fold contrasts and the R patient-only variances."""
    x = rng.normal(0, sigma, n)
    per_fold, case, y = np.empty((reps, folds)), np.empty(reps), np.zeros(n)
    for r in range(reps):
        fold = rng.permutation(np.arange(n) % folds)
        f = rng.normal(0, tau, folds)
        yr = x + f[fold]
        per_fold[r] = [yr[fold == k].mean() for k in range(folds)]
        loo = (yr.sum() - yr) / (n - 1)
        case[r] = (n - 1) / n * ((loo - loo.mean()) ** 2).sum()
        y += yr / reps
    loo = (y.sum() - y) / (n - 1)
    se = np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    return y.mean(), se, n - 1, per_fold, case


@pytest.mark.parametrize("reps, folds, tau, naive_floor", [(3, 4, 0.06, 0.1), (1, 4, 0.08, 0.1)])
def test_fold_shared_variance_recovers_the_simulated_tau2_and_holds_alpha(reps, folds, tau, naive_floor):
    """Brute force with known components: 3 repeats x 4 folds (the paper's plan) and a single repeat
    (3 between-fold df, the fewest the workflow accepts, tau^2 / K near the patients' variance)."""
    rng = np.random.default_rng(30 + reps)
    n, sigma, sims = 60, 0.15, 2000
    tau2, total, naive, fixed = [], [], [], []
    for _ in range(sims):
        est, se, df, per_fold, case = _study(rng, n, reps, folds, tau, sigma)
        comp = fold_components(per_fold, case)
        raw = comp["ms"] - folds * comp["v"]  # untruncated
        tau2.append(raw)
        total.append(se ** 2 + raw / (reps * folds))
        naive.append(2 * stats.t.sf(abs(est) / se, df) < 0.05)
        fixed.append(add_fold_shared(est, se, df, comp)["p"] < 0.05)
    # the simulated truth: the jackknife sees (K - 1) / n of tau^2, the excess the rest, the sum all
    sd = np.std(tau2) / np.sqrt(sims)
    assert abs(np.mean(tau2) - tau ** 2 * (1 - (folds - 1) / n)) < 3 * sd
    sd = np.std(total) / np.sqrt(sims)
    assert abs(np.mean(total) - (sigma ** 2 / n + tau ** 2 / (reps * folds))) < 3 * sd
    assert np.mean(naive) > naive_floor  # the patient jackknife alone misses the shared fold effects
    band = 3 * np.sqrt(0.05 * 0.95 / sims)
    assert abs(np.mean(fixed) - 0.05) < band  # two-sided: neither liberal nor needlessly conservative


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory):
    """2 repeats x 3 folds x 1 seed (4 between-fold df); for every network seg112 discriminates well in
    fold 0 and badly in fold 1: a fold x format effect shared by the networks."""
    preds, patient_of = _preds(seed=5, patients=8, nets=2)
    root = tmp_path_factory.mktemp("three")
    pooled = pool_out_of_fold(_write_folds(root, preds, folds=3, repeats=(0, 1), seeds=(0,)), folds=3)
    for models in pooled.values():
        for (net, fmt, frac), t in models.items():
            if fmt == "seg112":
                for c in CLASSES:
                    own = (t["label"] == c).to_numpy()
                    t.loc[own & (t["fold"] == 0).to_numpy(), f"p_{c}"] += 1.0
                    t.loc[~own & (t["fold"] == 1).to_numpy(), f"p_{c}"] += 1.0
    return pooled, patient_of


def test_with_fold_shared_variance_widens_the_within_fold_rows(three_folds):
    pooled, patient_of = three_folds
    avg = averaged_mrmc(pooled, patient_of, CLASSES)
    out = with_fold_shared_variance(avg, pooled, patient_of, CLASSES, folds=3)
    key = (avg.estimator == "within-fold") & (avg.figure == "aauc") & (avg.contrast == "full - seg112")
    before, after = avg[key].set_index("analysis"), out[key].set_index("analysis")
    frac = before.loc["RRRC", "frac"]
    # the oracle: per fold, each network's aAUC by scikit-learn, networks averaged (both repeats hold the
    # same predictions, so S^2 is the same in each)
    per_fold = []
    for k in range(3):
        vals = {}
        for (net, fmt, f), t in pooled[(0, 0)].items():
            g = t[t["fold"] == k]
            if f == frac:
                vals[(net, fmt)] = np.mean([roc_auc_score(g["label"] == c, g[f"p_{c}"]) for c in CLASSES
                                            if 0 < (g["label"] == c).sum() < len(g)])
        nets = sorted({n for n, _ in vals})
        per_fold.append(np.mean([vals[(n, "full")] - vals[(n, "seg112")] for n in nets]))
    ms = np.var(per_fold, ddof=1)
    # each repeat's patient-only variance: its own FRRC variance, untruncated (one repeat = the average)
    one = averaged_mrmc({(0, 0): pooled[(0, 0)]}, patient_of, CLASSES)
    v = one[(one.estimator == "within-fold") & (one.figure == "aauc") & (one.contrast == "full - seg112")
            & (one.analysis == "FRRC")]["se"].item() ** 2
    tau2 = ms - 3 * v
    assert tau2 > 0
    for analysis, df_or in (("RRRC", before.loc["RRRC", "df2"]), ("FRRC", np.inf)):
        se0 = before.loc[analysis, "se"]
        var = se0 ** 2 + tau2 / 6  # R K = 6
        df = var ** 2 / ((se0 ** 4 / df_or if np.isfinite(df_or) else 0) + (ms / 6) ** 2 / 4)  # R (K - 1) = 4
        assert after.loc[analysis, "estimate"] == before.loc[analysis, "estimate"]
        assert after.loc[analysis, "se"] ** 2 == pytest.approx(var)
        assert after.loc[analysis, "df2"] == pytest.approx(df)
        t = after.loc[analysis, "estimate"] / np.sqrt(var)
        assert after.loc[analysis, "p"] == pytest.approx(2 * stats.t.sf(abs(t), df))
        assert "fold-shared variance added: tau^2 = " in after.loc[analysis, "reason"]
    untouched = ~((out.estimator == "within-fold") & (out.figure == "aauc") & (out.contrast != "all formats"))
    assert out[untouched].equals(avg[untouched])


def test_one_repeat_of_two_folds_is_not_estimable_and_says_so(replicated):  # noqa: F811
    pooled, patient_of = replicated  # 1 repeat x 2 folds: 1 between-fold df
    avg = averaged_mrmc(pooled, patient_of, CLASSES)
    out = with_fold_shared_variance(avg, pooled, patient_of, CLASSES, folds=2)
    rows = (avg.estimator == "within-fold") & (avg.figure == "aauc") & (avg.contrast != "all formats")
    assert out.loc[rows, "reason"].str.contains("fold-shared variance not estimable: 1 repeat").all()
    for col in ("estimate", "se", "p", "df2", "ci_low", "ci_high"):
        assert out.loc[rows, col].equals(avg.loc[rows, col])
