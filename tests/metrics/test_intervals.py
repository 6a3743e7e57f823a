"""Exact intervals and paired tests (anapart.metrics.intervals) against independent formulas:
scipy's beta quantiles and binomtest, statsmodels, and DeLong's structural components by loops."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from anapart.metrics.intervals import auc_delong, clopper_pearson, mcnemar_exact, paired_delong, proportion, wilson


@pytest.mark.parametrize("k, n", [(14, 14), (0, 14), (7, 14), (13, 14), (1, 3), (40, 57)])
def test_clopper_pearson_is_the_beta_quantile_interval(k, n):
    lo, hi = clopper_pearson(k, n)
    ref_lo = stats.beta.ppf(0.025, k, n - k + 1) if k else 0.0
    ref_hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_all_correct_is_never_a_zero_width_interval():
    """14/14: the percentile bootstrap prints 1.000-1.000; the exact interval is 0.768-1.000
    (1 - 0.025 ** (1/14) by hand)."""
    p = proportion(14, 14)
    assert p["value"] == 1.0 and p["ci_high"] == 1.0
    assert p["ci_low"] == pytest.approx(0.025 ** (1 / 14), abs=1e-12) and p["ci_low"] == pytest.approx(0.768, abs=5e-4)


def test_wilson_matches_statsmodels():
    for k, n in [(14, 14), (3, 10), (0, 5)]:
        assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)


def test_exact_mcnemar_matches_statsmodels():
    rng = np.random.default_rng(0)
    a, b = rng.random(30) < 0.8, rng.random(30) < 0.6
    ours = mcnemar_exact(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert ours["p"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert (ours["a_only"], ours["b_only"]) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))


def _delong_by_loops(truth, x, y):
    """DeLong et al. (1988) by hand: placement values V10 (per positive) and V01 (per negative)."""
    pos, neg = [i for i, t in enumerate(truth) if t], [i for i, t in enumerate(truth) if not t]

    def psi(u, v):
        return 1.0 if u > v else 0.5 if u == v else 0.0

    comps = []
    for s in (x, y):
        v10 = [sum(psi(s[i], s[j]) for j in neg) / len(neg) for i in pos]
        v01 = [sum(psi(s[i], s[j]) for i in pos) / len(pos) for j in neg]
        comps.append((np.mean(v10), np.array(v10), np.array(v01)))
    (a1, x10, x01), (a2, y10, y01) = comps
    s10 = np.cov(np.vstack([x10, y10]))
    s01 = np.cov(np.vstack([x01, y01]))
    s = s10 / len(pos) + s01 / len(neg)
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    return a1 - a2, np.sqrt(var), np.sqrt(s[0, 0])


def test_paired_delong_matches_the_structural_components_by_hand():
    rng = np.random.default_rng(3)
    truth = np.r_[np.ones(9, int), np.zeros(11, int)]
    x = truth * 1.2 + rng.normal(size=20)
    y = truth * 0.4 + rng.normal(size=20) + 0.5 * x
    diff, se, se_x = _delong_by_loops(truth, x, y)
    t = paired_delong(truth, x, y)
    assert t["diff"] == pytest.approx(diff) and t["se"] == pytest.approx(se)
    assert t["p"] == pytest.approx(2 * stats.norm.sf(abs(diff) / se))
    assert auc_delong(truth, x)["se"] == pytest.approx(se_x)


def test_auc_interval_stays_inside_0_1_and_a_perfect_auc_is_not_certain():
    truth = np.r_[np.ones(6, int), np.zeros(8, int)]
    perfect = auc_delong(truth, 10 * truth + 0.1 * np.arange(14))
    # 6 positives, 8 negatives: as if 6 independent comparisons all came out right, 0.025 ** (1/6)
    assert perfect["value"] == 1.0 and perfect["ci_high"] == 1.0 and perfect["interval"].startswith("exact bound")
    assert perfect["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 6, 1)) and perfect["ci_low"] == pytest.approx(
        0.025 ** (1 / 6))
    reversed_ = auc_delong(truth, -10 * truth)  # every pair ordered wrong: AUC 0, 0.00-0.46
    assert reversed_["value"] == 0.0 and reversed_["ci_low"] == 0.0
    assert reversed_["ci_high"] == pytest.approx(stats.beta.ppf(0.975, 1, 6))
    rng = np.random.default_rng(1)
    a = auc_delong(truth, truth + rng.normal(size=14))
    assert 0 <= a["ci_low"] < a["value"] < a["ci_high"] <= 1 and a["interval"] == "DeLong (logit scale)"
    # the logit-scale Wald interval by hand from DeLong's SE
    logit, d = np.log(a["value"] / (1 - a["value"])), a["se"] / (a["value"] * (1 - a["value"]))
    z = stats.norm.ppf(0.975)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((1 / (1 + np.exp(-(logit - z * d))),
                                                        1 / (1 + np.exp(-(logit + z * d)))))


def test_two_perfect_aucs_give_no_zero_width_interval():
    truth = np.r_[np.ones(5, int), np.zeros(5, int)]
    t = paired_delong(truth, 10 * truth + np.arange(10), 10 * truth - np.arange(10))
    assert t["diff"] == 0 and t["se"] == 0 and np.isnan(t["ci_low"]) and np.isnan(t["ci_high"]) and t["p"] == 1.0


def test_paired_delong_needs_two_cases_of_each_kind():
    t = paired_delong(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.2]), np.array([0.8, 0.3, 0.1]))
    assert np.isnan(t["p"]) and np.isnan(t["se"]) and np.isnan(t["ci_low"])


def _brute_force_permutation_p(truth, a, b):
    """Every within-unit exchange of the two methods' ranks, each AUC by sklearn."""
    from itertools import product

    from sklearn.metrics import roc_auc_score

    ra, rb = stats.rankdata(a), stats.rankdata(b)
    obs = roc_auc_score(truth, ra) - roc_auc_score(truth, rb)
    diffs = []
    for swap in product([False, True], repeat=len(truth)):
        s = np.array(swap)
        diffs.append(roc_auc_score(truth, np.where(s, rb, ra)) - roc_auc_score(truth, np.where(s, ra, rb)))
    return obs, np.mean(np.abs(diffs) >= abs(obs) - 1e-12)


def test_paired_permutation_auc_equals_brute_force_enumeration():
    from anapart.metrics.intervals import paired_permutation_auc

    truth = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    a = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.5, 0.7, 0.1])
    b = np.array([10.0, 3.0, 2.0, 4.0, 1.0, 6.0, 5.0, 1.0])  # another scale, with ties
    obs, p = _brute_force_permutation_p(truth, a, b)
    got = paired_permutation_auc(truth, a, b)
    assert got["exact"] and got["n_permutations"] == 2 ** 8
    assert got["diff"] == pytest.approx(obs) and got["p"] == pytest.approx(p)
    assert 0 < p < 1 and got["diff"] != 0
    # random swaps instead of enumeration: the same p within Monte Carlo error
    mc = paired_permutation_auc(truth, a, b, n_perm=20000, exact_max=0, seed=1)
    assert not mc["exact"] and mc["p"] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 20000) + 1e-4)
    # identical methods: every swap gives 0, p = 1
    assert paired_permutation_auc(truth, a, a)["p"] == 1.0
