"""The general OR contrast and the t = 2 analysis of two modalities, against Van Dyke (published),
the global F (sum of squared orthonormal-contrast statistics) and a refit on the two modalities' data."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from anapart.metrics.mrmc import or_analysis, or_test
from anapart.metrics.mrmc_contrast import or_contrast, sub_design

from metrics.test_mrmc import published, vandyke, vandyke_fit  # noqa: F401 (fixtures)


def test_pair_contrast_reproduces_van_dyke(vandyke_fit):
    """c = (1, -1): the published RRRC CI -0.0880 to 0.0004, p 0.0517 (F 4.456 = t^2, df 15.26), and
    the RJafroc book's FRRC CI."""
    fit = vandyke_fit
    res = or_contrast(fit["fom"].to_numpy(), fit["cov"].to_numpy(), [1, -1])
    rr = res["rrrc"]
    published(rr["ci_low"], "-0.0880")
    published(rr["ci_high"], "0.0004")
    published(rr["p"], "0.0517")
    published(rr["df"], "15.26")
    published((rr["estimate"] / rr["se"]) ** 2, "4.456")
    fr = res["frrc"]
    assert fr["ci_low"] == pytest.approx(-0.080485914, rel=1e-6) and fr["ci_high"] == pytest.approx(-0.0071147303,
                                                                                                     rel=1e-6)


def _design(t=3, r=4, seed=3):
    rng = np.random.default_rng(seed)
    theta = 0.8 + rng.normal(0, 0.03, (t, r))
    mi, ri = np.divmod(np.arange(t * r), r)
    same_m, same_r = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]
    a = rng.normal(size=(t * r, t * r))
    cov = 1e-3 * np.select([same_m & same_r, same_r, same_m], [1.0, 0.45, 0.5], 0.3) + a @ a.T * 1e-6
    return theta, cov


@pytest.mark.parametrize("t", [3, 4])
def test_orthonormal_contrasts_add_up_to_the_global_tests(t):
    """Over an orthonormal basis c_1..c_{t-1} of contrasts, sum_k r (c_k' theta_bar)^2 = (t-1) MS(T),
    so mean_k t_k^2 is the global RRRC F and sum_k z_k^2 the global FRRC chi2 (Van Dyke-checked):
    fails if c'c, 1/r or the denominator of the contrast variance is wrong."""
    theta, cov = _design(t=t)
    basis = np.linalg.qr(np.vstack([np.ones(t), np.eye(t)[:-1]]).T)[0][:, 1:].T  # orthonormal, _|_ 1
    # and a scaled copy: the variance must scale with c'c
    for scale in (1.0, 3.0):
        rows = [or_contrast(theta, cov, scale * c) for c in basis]
        glob = or_test(theta, cov, list(range(t)), list(range(4)))
        f = np.mean([(x["rrrc"]["estimate"] / x["rrrc"]["se"]) ** 2 for x in rows])
        assert f == pytest.approx(glob["rrrc"]["test"]["value"], rel=1e-10)
        assert rows[0]["rrrc"]["df"] == pytest.approx(glob["rrrc"]["test"]["df2"])
        chi2 = np.sum([(x["frrc"]["estimate"] / x["frrc"]["se"]) ** 2 for x in rows])
        assert chi2 == pytest.approx(glob["frrc"]["test"]["value"], rel=1e-10)


def test_interaction_variance_by_hand():
    """2 x 2 cells (t = 4), c = (1, -1, -1, 1): (c'c / r)[MS(T:R) + r max(Cov2 - Cov3, 0)] from the
    components computed by hand (two-way residual mean square, cell covariance averages)."""
    theta, cov = _design(t=4, r=3, seed=5)
    t, r = theta.shape
    resid = theta - theta.mean(1, keepdims=True) - theta.mean(0, keepdims=True) + theta.mean()
    ms_tr = (resid ** 2).sum() / ((t - 1) * (r - 1))
    c2 = np.mean([cov[i * r + j, i * r + k] for i in range(t) for j in range(r) for k in range(r) if j != k])
    c3 = np.mean([cov[i * r + j, h * r + k] for i in range(t) for h in range(t) for j in range(r) for k in range(r)
                  if i != h and j != k])
    c = np.array([1, -1, -1, 1])
    res = or_contrast(theta, cov, c)["rrrc"]
    var = 4 / r * (ms_tr + r * max(c2 - c3, 0))
    assert res["estimate"] == pytest.approx(theta[0].mean() - theta[1].mean() - theta[2].mean() + theta[3].mean())
    assert res["se"] == pytest.approx(np.sqrt(var), rel=1e-12)
    df = (ms_tr + r * max(c2 - c3, 0)) ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1)))
    assert res["df"] == pytest.approx(df)
    assert res["p"] == pytest.approx(2 * stats.t.sf(abs(res["estimate"]) / np.sqrt(var), df))


def test_two_modalities_of_three_use_their_own_error_term():
    """The t = 2 analysis of a pair (sub_design) equals or_analysis refitted on the two modalities'
    readings alone, and differs from the three-format pooled error term."""
    rng = np.random.default_rng(0)
    truth = np.arange(30) % 2
    noise = {"a": 0.2, "b": 1.5, "c": 0.2}  # unequal reader x modality variation
    rows = []
    for r, m, c in itertools.product(range(4), "abc", range(30)):
        rows.append({"reader": r, "modality": m, "case": c, "truth": truth[c],
                     "score": truth[c] * (1 + noise[m] * np.sin(3 * r + ord(m))) + rng.normal()})
    data = pd.DataFrame(rows)
    fit = or_analysis(data)
    theta, cov = sub_design(fit["fom"].to_numpy(), fit["cov"].to_numpy(), [0, 1])
    mine = or_test(theta, cov, ["a", "b"], [0, 1, 2, 3])["rrrc"]["pairs"].iloc[0]
    refit = or_analysis(data[data.modality != "c"])["rrrc"]["pairs"].iloc[0]
    for k in ("estimate", "se", "df", "ci_low", "ci_high", "p"):
        assert mine[k] == pytest.approx(refit[k], rel=1e-10)
    pooled = fit["rrrc"]["pairs"].iloc[0]
    assert pooled["df"] != pytest.approx(mine["df"]) and pooled["se"] != pytest.approx(mine["se"])
    cont = or_contrast(theta, cov, [1, -1])["rrrc"]
    assert cont["se"] == pytest.approx(mine["se"]) and cont["p"] == pytest.approx(mine["p"])


def test_contrast_weights_must_sum_to_zero():
    theta, cov = _design()
    with pytest.raises(ValueError, match="sum to 0"):
        or_contrast(theta, cov, [1, 0, 0])
    with pytest.raises(ValueError, match="3 weights"):
        or_contrast(theta, cov, [1, -1])


@pytest.mark.parametrize("convention", ["reference", "mrmcaov"])
def test_pair_contrast_frrc_matches_the_pairwise_test_when_cov2_is_below_cov3(convention):
    """Cov2 < Cov3 (same-modality cells less alike than unrelated ones): the reference convention puts
    max(Cov2 - Cov3, 0) = 0 in the FRRC denominator, MRMCaov's keeps the negative difference; the
    contrast c = (1, -1) must give or_test's pairwise FRRC interval in either."""
    rng = np.random.default_rng(5)
    t, r = 2, 4
    theta = 0.8 + rng.normal(0, 0.03, (t, r))
    mi, ri = np.divmod(np.arange(t * r), r)
    same_m, same_r = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]
    cov = 1e-3 * np.select([same_m & same_r, same_r, same_m], [1.0, 0.45, 0.2], 0.3)
    glob = or_test(theta, cov, [0, 1], list(range(r)), convention=convention)
    c = glob["components"]
    assert c["Cov2"] < c["Cov3"]
    pair = glob["frrc"]["pairs"].iloc[0]
    fr = or_contrast(theta, cov, [1, -1], convention=convention)["frrc"]
    assert fr["se"] == pytest.approx(pair["se"], rel=1e-10)
    # by hand: Var(diff) = (2 / r) [Var - Cov1 + (r - 1) d], d = 0 (reference) or Cov2 - Cov3 (mrmcaov)
    d = 0.0 if convention == "reference" else c["Cov2"] - c["Cov3"]
    assert fr["se"] ** 2 == pytest.approx(2 / r * (c["Var"] - c["Cov1"] + (r - 1) * d), rel=1e-10)
