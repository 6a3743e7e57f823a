"""The fold-shared variance of the replicates' primary (anapart.metrics.fold_shared) against hand
computations, scipy, scikit-learn and a brute-force simulation whose true components are known."""

import copy

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from anapart.metrics.fold_shared import add_fold_shared, excess_fold_variance, with_fold_shared_variance
from anapart.metrics.replicates import averaged_mrmc
from metrics.test_mrmc_formats import CLASSES
from metrics.test_within_fold import replicated  # noqa: F401  (the module fixture)


def test_excess_fold_variance_by_hand():
    d = np.array([[0.1, 0.3, 0.2], [0.0, 0.4, 0.2]])  # R = 2 repeats x K = 3 folds
    # S^2 = 0.02 / 2 = 0.01 and 0.08 / 2 = 0.04; K V = 0.003 and 0.006
    assert excess_fold_variance(d, [0.001, 0.002]) == pytest.approx((0.007 + 0.034) / 2)
    assert excess_fold_variance(d, [0.01, 0.02]) == 0.0  # truncated at 0
    assert np.isnan(excess_fold_variance(d[:, :1], [0.001, 0.002]))  # one fold: no between-fold spread


def test_add_fold_shared_by_hand():
    new = add_fold_shared(0.1, 0.03, 6, 0.0024, repeats=2, folds=3, alpha=0.05)
    v = 0.03 ** 2 + 0.0024 / 6
    df = v ** 2 / (0.03 ** 4 / 6 + (0.0024 / 6) ** 2 / 4)  # Satterthwaite: tau^2 with R (K - 1) = 4 df
    assert new["se"] == pytest.approx(np.sqrt(v)) and new["df"] == pytest.approx(df)
    assert new["p"] == pytest.approx(2 * stats.t.sf(0.1 / np.sqrt(v), df))
    assert new["ci_low"] == pytest.approx(0.1 - stats.t.ppf(0.975, df) * np.sqrt(v))
    same = add_fold_shared(0.1, 0.03, 6, 0.0, repeats=2, folds=3)  # nothing shared: Hillis' test exactly
    assert same["se"] == pytest.approx(0.03) and same["df"] == pytest.approx(6)
    z = add_fold_shared(0.1, 0.03, np.inf, 0.0, repeats=2, folds=3)  # FRRC, nothing shared: the normal test
    assert z["p"] == pytest.approx(2 * stats.norm.sf(0.1 / 0.03))


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


def test_excess_fold_variance_recovers_the_simulated_tau2_and_holds_alpha():
    rng = np.random.default_rng(30)
    n, reps, folds, tau, sigma = 60, 3, 4, 0.06, 0.15
    tau2, total, naive, fixed = [], [], [], []
    for _ in range(1500):
        est, se, df, per_fold, case = _study(rng, n, reps, folds, tau, sigma)
        t2 = excess_fold_variance(per_fold, case)
        raw = np.mean([per_fold[r].var(ddof=1) - folds * case[r] for r in range(reps)])  # untruncated
        tau2.append(raw)
        total.append(se ** 2 + raw / (reps * folds))
        naive.append(2 * stats.t.sf(abs(est) / se, df) < 0.05)
        fixed.append(add_fold_shared(est, se, df, t2, reps, folds)["p"] < 0.05)
    # the simulated truth: the jackknife sees (K - 1) / n of tau^2, the excess the rest, the sum all
    sd = np.std(tau2) / np.sqrt(len(tau2))
    assert abs(np.mean(tau2) - tau ** 2 * (1 - (folds - 1) / n)) < 3 * sd
    sd = np.std(total) / np.sqrt(len(total))
    assert abs(np.mean(total) - (sigma ** 2 / n + tau ** 2 / (reps * folds))) < 3 * sd
    assert np.mean(naive) > 0.1  # the patient jackknife alone misses the shared fold effects
    assert np.mean(fixed) < 0.05 + 2 * np.sqrt(0.05 * 0.95 / len(fixed))


def test_with_fold_shared_variance_widens_the_within_fold_rows(replicated):  # noqa: F811
    pooled, patient_of = replicated
    pooled = copy.deepcopy(pooled)
    for models in pooled.values():  # for every network, seg112 discriminates well in fold 0, badly in fold 1
        for (net, fmt, frac), t in models.items():
            if fmt == "seg112":
                for c in CLASSES:
                    own = (t["label"] == c).to_numpy()
                    t.loc[own & (t["fold"] == 0).to_numpy(), f"p_{c}"] += 1.0
                    t.loc[~own & (t["fold"] == 1).to_numpy(), f"p_{c}"] += 1.0
    avg = averaged_mrmc(pooled, patient_of, CLASSES)
    out = with_fold_shared_variance(avg, pooled, patient_of, CLASSES, folds=2)
    key = (avg.estimator == "within-fold") & (avg.figure == "aauc") & (avg.contrast == "full - seg112")
    before = avg[key].set_index("analysis")
    after = out[key].set_index("analysis")
    frac = before.loc["RRRC", "frac"]
    # the oracle: per fold, each network's aAUC by scikit-learn, seeds averaged, networks averaged
    per_fold = []
    for k in (0, 1):
        vals = {}
        for (r, s), models in pooled.items():
            for (net, fmt, f), t in models.items():
                g = t[t["fold"] == k]
                if f == frac:
                    a = np.mean([roc_auc_score(g["label"] == c, g[f"p_{c}"]) for c in CLASSES])
                    vals.setdefault((net, fmt), []).append(a)
        nets = sorted({n for n, _ in vals})
        per_fold.append(np.mean([np.mean(vals[(n, "full")]) - np.mean(vals[(n, "seg112")]) for n in nets]))
    # one repeat: its patient-only variance is the averaged analysis' own FRRC variance
    tau2 = max(0.0, np.var(per_fold, ddof=1) - 2 * before.loc["FRRC", "se"] ** 2)
    assert tau2 > 0
    for analysis in ("RRRC", "FRRC"):
        assert after.loc[analysis, "estimate"] == before.loc[analysis, "estimate"]
        assert after.loc[analysis, "se"] ** 2 == pytest.approx(before.loc[analysis, "se"] ** 2 + tau2 / 2)
        assert "fold-shared variance added" in after.loc[analysis, "reason"]
        t = after.loc[analysis, "estimate"] / after.loc[analysis, "se"]
        assert after.loc[analysis, "p"] == pytest.approx(2 * stats.t.sf(abs(t), after.loc[analysis, "df2"]))
    untouched = ~((out.estimator == "within-fold") & (out.figure == "aauc") & (out.contrast != "all formats"))
    assert out[untouched].equals(avg[untouched])
