"""MRMC power and sample size against independent oracles: the RJafroc book's published Van Dyke
sample sizes, a hand computation of the noncentral F by numerical integration, brute-force Monte Carlo
of the OR test on simulated figures of merit and on simulated reader studies; McNemar sample size
(Connor 1987) against the exact power by enumeration and a published example."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from anapart.metrics.intervals import mcnemar_p
from anapart.metrics.mrmc import delong_cov, empirical_auc, or_analysis
from anapart.metrics.mrmc_cli import main
from anapart.metrics.power import (Components, cases_for_power, mcnemar_connor, mcnemar_exact_power,
                                   power, power_table)

ORACLE = Path("shared/oracles/mrmc/vandyke.csv")


@pytest.fixture(scope="module")
def vandyke() -> pd.DataFrame:
    """The Van Dyke oracle in or above the repository, or beside the main checkout of a git worktree
    (as tests/metrics/test_mrmc.py finds it)."""
    here = Path(__file__).resolve()
    starts = [here]
    for parent in here.parents:
        git = parent / ".git"
        if git.is_file() and git.read_text().startswith("gitdir:"):
            starts.append(Path(git.read_text().split(":", 1)[1].strip()).parents[2])
            break
    for start in starts:
        for p in [start, *start.parents]:
            if (p / ORACLE).is_file():
                return pd.read_csv(p / ORACLE)
    pytest.skip(f"oracle {ORACLE} not found")

# The Van Dyke OR components printed in the oracle README (jackknife, K* = 114 cases).
README = {"ms_tr": 0.000551, "var": 0.0008023, "cov1": 0.0003466, "cov2": 0.0003441, "cov3": 0.0002390}


@pytest.fixture(scope="module")
def pilot(vandyke):
    fit = or_analysis(vandyke, modality="treatment", score="rating")
    fom = fit["fom"].mean(axis=1)
    return Components.from_fit(fit), float(fom.iloc[0] - fom.iloc[1])


def test_vandyke_sample_sizes_published_in_the_rjafroc_book(pilot):
    """Chakraborty, "The RJafroc Book" / RJafroc vignette SampleSizeROC (dataset02 = Van Dyke, J = 10,
    observed effect, 80% power): RRRC K = 163, FRRC K = 133 (RJafroc's F(1, K-1)), RRFC K = 53."""
    comp, d = pilot
    assert cases_for_power(comp, 10, 0.8, d, analysis="RRRC")["cases"] == 163
    assert cases_for_power(comp, 10, 0.8, d, analysis="RRFC")["cases"] == 53
    assert cases_for_power(comp, 10, 0.8, d, analysis="FRRC", frrc_df="cases-1")["cases"] == 133
    chi2 = cases_for_power(comp, 10, 0.8, d, analysis="FRRC")  # the chi-square test: infinite df, fewer cases
    assert chi2["cases"] == 131 and chi2["df2"] == math.inf
    # and the smallest: one case fewer falls short
    for a, k in (("RRRC", 163), ("RRFC", 53)):
        assert power(comp, 10, k - 1, d, analysis=a)["power"] < 0.8 <= power(comp, 10, k, d, analysis=a)["power"]


def _ncf_sf_by_integration(x, df1, df2, ncp):
    """P(F' > x), F' = (chi'2(df1, ncp)/df1) / (chi2(df2)/df2), integrating the noncentral chi-square's
    tail over the central chi-square density (independent of scipy's ncf)."""
    f = lambda u: stats.ncx2.sf(x * df1 * u / df2, df1, ncp) * stats.chi2.pdf(u, df2)  # noqa: E731
    return integrate.quad(f, 0, np.inf, limit=200)[0]


def test_rrrc_power_by_hand_from_the_readme_components():
    """J = 10, K = 100 from the README's components, every step written out."""
    c = README
    var_tr = c["ms_tr"] - c["var"] + c["cov1"] + max(c["cov2"] - c["cov3"], 0)  # Hillis 2011 eq. 9
    comp = Components(var_tr, c["var"], c["cov1"], c["cov2"], c["cov3"], 114)
    J, K, d, s = 10, 100, 0.0438, 114 / 100
    D = var_tr + s * (c["var"] - c["cov1"] + 9 * (c["cov2"] - c["cov3"]))
    df2 = D ** 2 / ((var_tr + s * (c["var"] - c["cov1"] - (c["cov2"] - c["cov3"]))) ** 2 / 9)
    ncp = J * d ** 2 / 2 / D
    crit = stats.f.ppf(0.95, 1, df2)
    by_hand = _ncf_sf_by_integration(crit, 1, df2, ncp)
    assert by_hand == pytest.approx(stats.ncf.sf(crit, 1, df2, ncp), abs=1e-7)
    got = power(comp, J, K, d)
    assert got["ncp"] == pytest.approx(ncp, rel=1e-12) and got["df2"] == pytest.approx(df2, rel=1e-12)
    assert got["critical_value"] == pytest.approx(crit, rel=1e-10)
    assert got["power"] == pytest.approx(by_hand, abs=1e-6)
    assert 0.6 < got["power"] < 0.65  # 0.626 from the full-precision components (test above's pilot)
    # FRRC: noncentral chi-square(1); RRFC: F(1, J - 1) -- by integration as well
    D_f = s * (c["var"] - c["cov1"] + 9 * (c["cov2"] - c["cov3"]))
    x = stats.chi2.ppf(0.95, 1)
    z = math.sqrt(J * d ** 2 / 2 / D_f)  # chi'2(1, ncp) = (Z + sqrt(ncp))^2
    assert power(comp, J, K, d, analysis="FRRC")["power"] == pytest.approx(
        stats.norm.sf(math.sqrt(x) - z) + stats.norm.cdf(-math.sqrt(x) - z), abs=1e-9)
    D_r = var_tr + s * (c["var"] - c["cov1"] - (c["cov2"] - c["cov3"]))
    crit_r = stats.f.ppf(0.95, 1, 9)
    assert power(comp, J, K, d, analysis="RRFC")["power"] == pytest.approx(
        _ncf_sf_by_integration(crit_r, 1, 9, J * d ** 2 / 2 / D_r), abs=1e-6)


def test_truncation_and_max_are_applied():
    """Negative VarTR counts as 0; Cov2 < Cov3 as Cov2 - Cov3 = 0 (Hillis 2011)."""
    base = Components(0.0, 0.002, 0.001, 0.0005, 0.0005, 50)
    assert power(Components(-0.01, 0.002, 0.001, 0.0005, 0.0005, 50), 5, 80, 0.05) == power(base, 5, 80, 0.05)
    low = Components(0.0, 0.002, 0.001, 0.0002, 0.0009, 50)  # Cov2 < Cov3
    for a in ("RRRC", "FRRC", "RRFC"):
        assert power(low, 5, 80, 0.05, analysis=a)["ncp"] == pytest.approx(power(base, 5, 80, 0.05, analysis=a)["ncp"])


def _simulate_or(comp, J, K, d, n, seed, var_tr=True):
    """n studies' FOMs from the OR model at (J, K): reader, reader x modality and case-sampling
    errors with the components scaled by K*/K; the OR statistics with the (known) covariances."""
    rng = np.random.default_rng(seed)
    s, t = comp.cases / K, 2
    mi, ri = np.divmod(np.arange(t * J), J)
    sm, sr = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]
    cov = s * np.where(sm & sr, comp.var, np.where(sr, comp.cov1, np.where(sm, comp.cov2, comp.cov3)))
    eps = rng.multivariate_normal(np.zeros(t * J), cov, size=n).reshape(n, t, J)
    theta = (np.array([d / 2, -d / 2])[None, :, None] + rng.normal(0, 0.05, (n, 1, J))
             + (rng.normal(0, math.sqrt(comp.var_tr), (n, t, J)) if var_tr else 0) + eps)
    g, mt, mr = theta.mean((1, 2)), theta.mean(2), theta.mean(1)
    ms_t = J * ((mt - g[:, None]) ** 2).sum(1)
    ms_tr = ((theta - mt[:, :, None] - mr[:, None, :] + g[:, None, None]) ** 2).sum((1, 2)) / (J - 1)
    c23 = s * max(comp.cov2 - comp.cov3, 0)
    den = ms_tr + J * c23
    p_rrrc = stats.f.sf(ms_t / den, 1, den ** 2 / (ms_tr ** 2 / (J - 1)))
    p_frrc = stats.chi2.sf(ms_t / (s * (comp.var - comp.cov1) + (J - 1) * c23), 1)
    return p_rrrc, p_frrc


@pytest.mark.parametrize("J, K, d", [(5, 80, 0.05), (8, 200, 0.04)])
def test_power_matches_monte_carlo_of_the_or_model(J, K, d):
    """20000 simulated studies from the OR model with known components: the RRRC rejection rate (with
    Hillis' df estimated in each study) within 3 SE + 0.01 (Satterthwaite) of the predicted power; the
    FRRC (readers fixed: no reader x modality term) within 3 SE."""
    comp = Components(var_tr=0.0004, var=0.0016, cov1=0.0007, cov2=0.0006, cov3=0.0003, cases=40)
    n = 20000
    p_rrrc, _ = _simulate_or(comp, J, K, d, n, seed=J)
    pw = power(comp, J, K, d)["power"]
    se = math.sqrt(pw * (1 - pw) / n)
    assert abs((p_rrrc < 0.05).mean() - pw) < 3 * se + 0.01
    _, p_frrc = _simulate_or(comp, J, K, d, n, seed=J + 1, var_tr=False)
    pf = power(comp, J, K, d, analysis="FRRC")["power"]
    assert abs((p_frrc < 0.05).mean() - pf) < 3 * math.sqrt(pf * (1 - pf) / n)


def _reader_study(rng, J, K):
    """One simulated reader study: binormal scores with random reader and reader x modality separations
    and case, case x modality and case x reader effects (Roe-Metz-like); cases x (modality-major) cells."""
    truth = np.arange(K) % 2
    sep = np.array([1.3, 0.9])[:, None] + rng.normal(0, 0.25, (1, J)) + rng.normal(0, 0.2, (2, J))
    x = (truth[:, None, None] * sep[None] + rng.normal(0, 0.7, (K, 1, 1)) + rng.normal(0, 0.5, (K, 2, 1))
         + rng.normal(0, 0.5, (K, 1, J)) + rng.normal(0, 0.6, (K, 2, J)))
    return truth, x.reshape(K, 2 * J)


def _or_pieces(truth, x, J):
    theta = np.array([empirical_auc(truth, x[:, i]) for i in range(2 * J)]).reshape(2, J)
    cov = delong_cov(truth, x)
    mi, ri = np.divmod(np.arange(2 * J), J)
    sm, sr = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]
    v, c1, c2, c3 = (cov[m].mean() for m in (sm & sr, ~sm & sr, sm & ~sr, ~sm & ~sr))
    g, mt, mr = theta.mean(), theta.mean(1), theta.mean(0)
    ms_t = J * ((mt - g) ** 2).sum()
    ms_tr = ((theta - mt[:, None] - mr[None, :] + g) ** 2).sum() / (J - 1)
    return theta, v, c1, c2, c3, ms_t, ms_tr


def test_power_from_simulated_pilots_matches_simulated_studies():
    """Pilots of 4 readers x 40 cases give the components (averaged over 200 pilots, as the pilot's
    expectation); the power they predict for 5 readers x 160 cases matches the rejection rate of 600
    simulated studies of that size (within 3 SE + 0.03: Satterthwaite and the pilots' own error)."""
    rng = np.random.default_rng(1)
    Jp, Kp, J, K = 4, 40, 5, 160
    comps, effects = [], []
    for _ in range(200):
        theta, v, c1, c2, c3, _, ms_tr = _or_pieces(*_reader_study(rng, Jp, Kp), Jp)
        comps.append([ms_tr - v + c1 + max(c2 - c3, 0), v, c1, c2, c3])
        effects.append(theta.mean(1) @ [1, -1])
    comp = Components(*np.mean(comps, 0), cases=Kp)
    predicted = power(comp, J, K, float(np.mean(effects)))["power"]
    n = 600
    rejected = 0
    for _ in range(n):
        _, v, c1, c2, c3, ms_t, ms_tr = _or_pieces(*_reader_study(rng, J, K), J)
        den = ms_tr + J * max(c2 - c3, 0)
        rejected += stats.f.sf(ms_t / den, 1, den ** 2 / (ms_tr ** 2 / (J - 1))) < 0.05
    se = math.sqrt(predicted * (1 - predicted) / n)
    assert 0.3 < predicted < 0.9
    assert abs(rejected / n - predicted) < 3 * se + 0.03


def test_rrrc_power_is_not_monotone_and_unreachable_targets_say_so():
    """VarTR dominates: more cases cannot reach 90% with 3 readers; the best power and its K are given,
    and the K -> infinity limit (VarTR alone, F(1, J-1)) bounds it."""
    comp = Components(var_tr=0.002, var=0.004, cov1=0.002, cov2=0.0015, cov3=0.0005, cases=30)
    res = cases_for_power(comp, 3, 0.9, 0.05, max_cases=2000)
    assert res["reachable"] is False and res["cases"] is None
    grid = power(comp, 3, np.arange(2, 2001), 0.05)["power"]
    assert res["max_power"] == pytest.approx(grid.max()) and res["at_cases"] == 2 + int(np.argmax(grid))
    assert res["at_cases"] < 2000  # a maximum inside the range: power falls again as df2 -> J - 1
    assert grid[-1] < grid.max()
    limit = stats.ncf.sf(stats.f.ppf(0.95, 1, 2), 1, 2, 3 * 0.05 ** 2 / 2 / 0.002)
    assert res["power_as_cases_grow"] == pytest.approx(limit) and grid[-1] == pytest.approx(limit, abs=2e-3)
    # zero effect: power = alpha everywhere, never 80%
    assert power(comp, 5, 100, 0.0)["power"] == pytest.approx(0.05)
    assert cases_for_power(comp, 5, 0.8, 0.0, max_cases=50)["reachable"] is False


def test_power_table_matches_single_calls():
    comp = Components(0.0002, 0.0008, 0.00035, 0.00034, 0.00024, 114)
    tab = power_table(comp, [4, 10], [50, 100], 0.04)
    assert len(tab) == 4
    for r in tab.itertuples():
        assert r.power == pytest.approx(power(comp, r.readers, r.cases, 0.04)["power"])


def test_connor_sample_size_by_hand_and_against_exact_power():
    """Connor (1987): n = [z_.975 sqrt(psi) + z_.8 sqrt(psi - delta^2)]^2 / delta^2; at that n the exact
    conditional McNemar power (by enumeration) is near the target (the normal approximation)."""
    p10, p01 = 0.2, 0.05
    psi, delta = 0.25, 0.15
    n = (1.959963985 * math.sqrt(psi) + 0.841621234 * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2
    res = mcnemar_connor(p10, p01, 0.8)
    assert res["n"] == math.ceil(n) == 85
    exact = mcnemar_exact_power(res["n"], p10, p01)
    assert 0.74 < exact < 0.86
    # the exact power by Monte Carlo of the exact test: same number
    rng = np.random.default_rng(0)
    cells = rng.multinomial(res["n"], [p10, p01, 1 - psi], size=20000)
    k, m = np.minimum(cells[:, 0], cells[:, 1]), cells[:, 0] + cells[:, 1]
    p = np.minimum(1.0, 2 * stats.binom.cdf(k, m, 0.5))  # the exact test's p, vectorised
    assert (p <= 0.05).mean() == pytest.approx(exact, abs=3 * math.sqrt(exact * (1 - exact) / 20000))
    assert mcnemar_connor(0.1, 0.1)["reachable"] is False


def test_mid_p_mcnemar_by_hand():
    """b = 1, c = 7 (n = 8): exact p = 2 * (1 + 8) / 256 = 0.0703; mid-p = 0.0703 - 8/256 = 0.0391
    (Fagerland, Lydersen & Laake 2013: mid-p = exact p - P(X = b))."""
    assert mcnemar_p(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_p(1, 7, mid_p=True) == pytest.approx(10 / 256)
    assert mcnemar_p(7, 1, mid_p=True) == pytest.approx(10 / 256)
    assert mcnemar_p(3, 3, mid_p=True) == pytest.approx(1.0)
    assert mcnemar_p(0, 0, mid_p=True) == 1.0


# ------------------------------------------------------------------ the CLI


def _vd_args(path):
    return ["power", str(path), "--reader", "reader", "--modality", "treatment", "--case", "case", "--truth",
            "truth", "--score", "rating"]


@pytest.fixture
def vd_csv(vandyke, tmp_path):
    p = tmp_path / "vandyke.csv"
    vandyke.to_csv(p, index=False)
    return p


def test_cli_power_target_and_cases_on_vandyke(vd_csv, capsys, pilot, tmp_path):
    comp, d = pilot
    assert main([*_vd_args(vd_csv), "--readers", "10", "--target-power", "0.8"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = {r["analysis"]: r for r in out["analyses"]}
    assert got["RRRC"]["cases"] == 163 and got["RRFC"]["cases"] == 53 and got["FRRC"]["cases"] == 131
    assert got["RRRC"]["power"] >= 0.8 and out["effect"] == pytest.approx(d)
    assert main([*_vd_args(vd_csv), "--readers", "10", "--cases", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = {r["analysis"]: r for r in out["analyses"]}
    assert set(got) == {"RRRC", "FRRC", "RRFC"}
    for a in got:
        ref = power(comp, 10, 100, d, analysis=a)
        for key in ("power", "ncp", "critical_value"):
            assert got[a][key] == pytest.approx(ref[key])
    assert got["FRRC"]["df2"] is None and got["RRFC"]["df2"] == 9
    assert main([*_vd_args(vd_csv), "--readers", "10", "--cases", "100", "--analysis", "rrfc"]) == 0
    assert [r["analysis"] for r in json.loads(capsys.readouterr().out)["analyses"]] == ["RRFC"]
    # --components gives the same numbers from the components file the first call printed
    comp_file = tmp_path / "c.json"
    comp_file.write_text(json.dumps(out["components"]))
    assert main(["power", "--components", str(comp_file), "--readers", "10", "--cases", "100",
                 "--effect", str(d)]) == 0
    again = json.loads(capsys.readouterr().out)
    for a, b in zip(out["analyses"], again["analyses"]):
        assert a == pytest.approx(b)


def test_cli_power_errors_are_one_line(vd_csv, tmp_path, capsys):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"var": 1}))
    cases = [
        (["power", "--components", str(bad), "--readers", "10", "--cases", "100", "--effect", "0.05"], "missing key"),
        (["power", "--components", str(tmp_path / "none.json"), "--readers", "10", "--cases", "9", "--effect", "1"],
         "cannot read"),
        ([*_vd_args(vd_csv), "--readers", "10", "--cases", "100", "--modalities", "1", "7"], "modality 7"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    with pytest.raises(SystemExit):  # --components needs --effect: argparse's own usage error (exit 2)
        main(["power", "--components", str(bad), "--readers", "10", "--cases", "100"])
