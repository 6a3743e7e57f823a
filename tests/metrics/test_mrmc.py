"""OR-Hillis MRMC analysis against the published Van Dyke results, hand computations and sklearn."""

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from anapart.metrics.mrmc import delong_cov, empirical_auc, mean_ovr_auc, or_analysis, or_test, unbiased_cov
from anapart.metrics.mrmc_cli import main

ORACLE = Path("shared/oracles/mrmc/vandyke.csv")


def _oracle_path() -> Path | None:
    """``shared/oracles/mrmc/vandyke.csv`` in or beside the repo, or beside the main checkout when
    this is a git worktree (its ``.git`` file points into the main repository's ``.git``)."""
    here = Path(__file__).resolve()
    starts = [here]
    for parent in here.parents:
        git = parent / ".git"
        if git.is_file() and git.read_text().startswith("gitdir:"):
            starts.append(Path(git.read_text().split(":", 1)[1].strip()).parents[2])  # <main>/.git/worktrees/x
            break
    for start in starts:
        for p in [start, *start.parents]:
            if (p / ORACLE).is_file():
                return p / ORACLE
    return None


@pytest.fixture(scope="module")
def vandyke() -> pd.DataFrame:
    path = _oracle_path()
    if path is None:
        pytest.skip(f"oracle {ORACLE} not found in or above the repository (nor beside its main checkout)")
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def vandyke_fit(vandyke) -> dict:
    return or_analysis(vandyke, modality="treatment", score="rating")


def published(value: float, text: str) -> None:
    """``value`` equals the published number ``text`` to every digit printed there."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert abs(value - float(text)) <= 0.5 * 10 ** -decimals + 1e-12, f"{value} is not {text}"


def test_vandyke_reproduces_published_or_hillis(vandyke_fit):
    """Every number of the oracle README (Chakraborty's RJafroc book, MRMCaov; jackknife, RRRC)."""
    fit = vandyke_fit
    for m, aucs in {1: "0.9196 0.8588 0.9039 0.9731 0.8298", 2: "0.9478 0.9053 0.9217 0.9994 0.9300"}.items():
        for r, text in zip(range(1, 6), aucs.split()):
            published(fit["fom"].loc[m, r], text)
    mods = fit["rrrc"]["modalities"].set_index("modality")
    published(mods.loc[1, "fom"], "0.8970")
    published(mods.loc[2, "fom"], "0.9408")
    c = fit["components"]
    for key, text in [("MS(T)", "0.004796"), ("MS(T:R)", "0.000551"), ("Var", "0.0008023"), ("Cov1", "0.0003466"),
                      ("Cov2", "0.0003441"), ("Cov3", "0.0002390")]:
        published(c[key], text)
    test = fit["rrrc"]["test"]
    assert test["reason"] is None and test["df1"] == 1
    published(test["value"], "4.456")
    published(test["df2"], "15.26")
    published(test["p"], "0.0517")
    pair = fit["rrrc"]["pairs"].iloc[0]
    assert (pair["modality_a"], pair["modality_b"]) == (1, 2)
    published(pair["ci_low"], "-0.0880")
    published(pair["ci_high"], "0.0004")
    for m, lo, hi, df in [(1, "0.8252", "0.9689", "12.74"), (2, "0.8941", "0.9875", "12.71")]:
        published(mods.loc[m, "ci_low"], lo)
        published(mods.loc[m, "ci_high"], hi)
        published(mods.loc[m, "df"], df)


def test_vandyke_frrc_rrfc_and_components_match_rjafroc_book(vandyke_fit):
    """Printed by RJafroc StSignificanceTesting(dataset02, "Wilcoxon", method = "OR") in "The RJafroc
    Book", chapter on OR examples (dataset02 = Van Dyke): FRRC, RRFC, VarR, VarTR, reader 5's difference."""
    fit = vandyke_fit
    close = lambda a, b: a == pytest.approx(b, rel=1e-6)  # noqa: E731
    assert close(fit["components"]["var_R"], 0.00153499935) and close(fit["components"]["var_TR"], 0.00020040252)
    frrc = fit["frrc"]
    assert close(frrc["test"]["value"], 5.4759532) and close(frrc["test"]["p"], 0.019279843)
    pair = frrc["pairs"].iloc[0]
    assert close(pair["ci_low"], -0.080485914) and close(pair["ci_high"], -0.0071147303)
    mods = frrc["modalities"]
    assert close(mods["ci_low"].iloc[0], 0.84943008) and close(mods["ci_high"].iloc[1], 0.97371835)
    r5 = frrc["readers"].set_index("reader").loc[5]
    assert close(r5["estimate"], -0.100161031) and close(r5["se"], 0.044057460) and close(r5["p"], 0.023000993)
    rrfc = fit["rrfc"]
    assert close(rrfc["test"]["value"], 8.704) and rrfc["test"]["df2"] == 4 and close(rrfc["test"]["p"], 0.041958752)
    pair = rrfc["pairs"].iloc[0]
    assert close(pair["ci_low"], -0.085020224) and close(pair["ci_high"], -0.0025804202)
    assert close(rrfc["modalities"]["ci_low"].iloc[0], 0.82809808)


def test_vandyke_cov_methods_agree_roughly(vandyke):
    """DeLong and unbiased covariances are other estimates of the same quantities: close to the jackknife's."""
    jk = or_analysis(vandyke, modality="treatment", score="rating")["cov"].to_numpy()
    for method in ("delong", "unbiased"):
        other = or_analysis(vandyke, modality="treatment", score="rating", cov=method)
        assert np.allclose(other["cov"].to_numpy(), jk, rtol=0.05, atol=2e-5)
        assert other["rrrc"]["test"]["p"] == pytest.approx(0.0517, abs=0.002)


def test_cli_prints_the_published_rrrc(vandyke, tmp_path, capsys):
    csv = tmp_path / "vandyke.csv"
    vandyke.to_csv(csv, index=False)
    args = [str(csv), "--reader", "reader", "--modality", "treatment", "--case", "case", "--truth", "truth",
            "--score", "rating"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["analysis"] == "RRRC" and out["design"]["cov_method"] == "jackknife"
    published(out["test"]["value"], "4.456")
    published(out["test"]["df2"], "15.26")
    published(out["test"]["p"], "0.0517")
    published(out["pairs"][0]["ci_low"], "-0.0880")
    published(out["pairs"][0]["ci_high"], "0.0004")
    published(out["modalities"][1]["ci_low"], "0.8941")
    published(out["variance_components"]["Cov2"], "0.0003441")
    assert len(out["fom"]) == 10
    assert main([*args, "--fixed-readers"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test"]["statistic"] == "chi2" and out["test"]["df2"] is None and len(out["reader_pairs"]) == 5
    assert main([*args, "--fixed-cases", "--cov", "delong"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["df2"] == 4


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.drop(index=d.index[(d.reader == 1) & (d.treatment == 1) & (d.case == 5)]),
     "case 5 missing for reader 1 x modality 1"),
    (lambda d: d.drop(columns="rating"), "column(s) ['rating'] not found"),
    (lambda d: d.assign(truth=d.truth * 2), "truth column 'truth' must be 0/1"),
])
def test_cli_design_errors_exit_2_with_one_line(vandyke, tmp_path, capsys, edit, message):
    csv = tmp_path / "bad.csv"
    edit(vandyke).to_csv(csv, index=False)
    rc = main([str(csv), "--reader", "reader", "--modality", "treatment", "--case", "case", "--truth", "truth",
               "--score", "rating"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and str(csv) in captured.err and message in captured.err


def _grid(n_cases=6, readers=(1, 2), modalities=("a", "b"), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = np.arange(n_cases) % 2
    rows = [{"reader": r, "modality": m, "case": c, "truth": truth[c], "score": truth[c] + rng.normal()}
            for r, m, c in itertools.product(readers, modalities, range(n_cases))]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.iloc[1:], "case 0 missing for reader 1 x modality a"),
    (lambda d: d[~((d.reader == 2) & (d.modality == "b"))], "reader 2 has no rows for modality b"),
    (lambda d: d.assign(truth=np.where((d.case == 3) & (d.reader == 2), 0, d.truth)),
     "truth disagrees between rows of the same case: case 3"),
    (lambda d: d[d.reader == 1], "has only one reader (1)"),
    (lambda d: d.assign(truth=0), "class 1 absent"),
    (lambda d: d.assign(truth=(d.case == 1).astype(int)), "class 1 in only one case unit"),
    (lambda d: d.assign(score=np.where(d.case == 2, np.nan, d.score)), "column 'score' has 4 empty value(s)"),
])
def test_design_that_is_not_fully_crossed_raises(edit, message):
    with pytest.raises(ValueError) as err:
        or_analysis(edit(_grid()))
    assert message in str(err.value)


def test_empirical_auc_matches_sklearn_with_ties(vandyke):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 5, 200) + y  # many ties
    assert empirical_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fit = or_analysis(vandyke.assign(truth=vandyke.truth.astype(bool)), modality="treatment", score="rating")
    for (m, r), g in vandyke.groupby(["treatment", "reader"]):
        assert fit["fom"].loc[m, r] == pytest.approx(roc_auc_score(g.truth, g.rating), abs=1e-12)


def test_delong_matches_a_hand_computation():
    """Cell A: positives 3, 2 and negatives 1, 2, 0; cell B: positives 1, 3 and negatives 2, 0, 0.
    Placements A: V10 = (1, 5/6), V01 = (1, 3/4, 1); B: V10 = (2/3, 1), V01 = (1/2, 1, 1).
    Var = S10/2 + S01/3 with ddof 1: A 1/144 + 1/144 = 1/72, B 1/36 + 1/36 = 1/18;
    Cov = (-1/36)/2 + (-1/24 / 2)/3 = -1/72 - 1/144 = -1/48."""
    truth = np.array([1, 1, 0, 0, 0])
    scores = np.array([[3, 1], [2, 3], [1, 2], [2, 0], [0, 0]], dtype=float)
    assert np.allclose(delong_cov(truth, scores), [[1 / 72, -1 / 48], [-1 / 48, 1 / 18]])
    assert [empirical_auc(truth, scores[:, j]) for j in (0, 1)] == pytest.approx([11 / 12, 5 / 6])


def test_unbiased_cov_is_exactly_unbiased_and_matches_gallas_closed_form(vandyke):
    """Draw 2 positives and 2 negatives iid from 3 equally likely types each (81 samples, ties
    included): the mean of the estimator over all samples is the exact covariance of the AUCs."""
    pos_types = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])  # scores in two cells
    neg_types = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    aucs, ests = [], []
    for ip in itertools.product(range(3), repeat=2):
        for ineg in itertools.product(range(3), repeat=2):
            scores = np.vstack([pos_types[list(ip)], neg_types[list(ineg)]])
            truth = np.array([1, 1, 0, 0])
            aucs.append([empirical_auc(truth, scores[:, j]) for j in (0, 1)])
            ests.append(unbiased_cov(truth, scores))
    exact = np.cov(np.array(aucs), rowvar=False, ddof=0)
    assert np.allclose(np.mean(ests, axis=0), exact, atol=1e-12)
    # Gallas et al. (2007) / MRMCaov unbiased_balanced: ((1 - d) S S' + d (P + Q - Z)) / (n1 n0)^2
    wide = vandyke.pivot(index="case", columns=["treatment", "reader"], values="rating")
    truth = vandyke.groupby("case").truth.first().loc[wide.index].to_numpy().astype(bool)
    pos, neg = wide.to_numpy()[truth], wide.to_numpy()[~truth]
    n1, n0 = len(pos), len(neg)
    psi = [(pos[:, j, None] > neg[None, :, j]) + 0.5 * (pos[:, j, None] == neg[None, :, j]) for j in range(10)]
    flat = np.array([p.ravel() for p in psi])
    rows, cols = np.array([p.sum(1) for p in psi]), np.array([p.sum(0) for p in psi])
    d = (n1 * n0) ** 2 / (n1 * (n1 - 1) * n0 * (n0 - 1))
    gallas = ((1 - d) * np.outer(flat.sum(1), flat.sum(1)) + d * (rows @ rows.T + cols @ cols.T - flat @ flat.T)) \
        / (n1 * n0) ** 2
    assert np.allclose(unbiased_cov(truth, wide.to_numpy()), gallas, rtol=1e-10, atol=1e-15)


def test_jackknife_leaves_out_whole_case_units():
    """FOM = mean score; case units A (rows 1, 3), B (5), C (7, 9, 11) in every cell. Leaving out a
    unit drops all its rows: A -> mean(5, 7, 9, 11) = 8, B -> mean(1, 3, 7, 9, 11) = 6.2,
    C -> mean(1, 3, 5) = 3; variance (n-1)/n * sum of squared deviations = 2/3 * 12.8267 = 8.5511."""
    rows = [{"reader": r, "modality": m, "case": case, "score": s}
            for r, m in itertools.product((1, 2), ("x", "y"))
            for case, scores in {"A": (1, 3), "B": (5,), "C": (7, 9, 11)}.items() for s in scores]
    fit = or_analysis(pd.DataFrame(rows), truth=None, fom=lambda f: float(f["score"].mean()))
    assert np.allclose(fit["jackknife"].to_numpy(), np.array([[8.0], [6.2], [3.0]]) * np.ones((1, 4)))
    mean = 17.2 / 3
    assert np.allclose(fit["cov"].to_numpy(), 2 / 3 * ((8 - mean) ** 2 + (6.2 - mean) ** 2 + (3 - mean) ** 2))
    with pytest.raises(ValueError, match="only for the binary empirical AUC"):
        or_analysis(pd.DataFrame(rows), truth=None, fom=lambda f: 0.0, cov="delong")


def test_mean_ovr_auc_with_patients_as_case_units():
    """aAUC over 3 classes, 9 patients with 2-4 slices each: FOM and leave-one-patient-out FOMs
    equal sklearn's one-vs-rest AUCs on the same rows; DeLong refuses several rows per case."""
    rng = np.random.default_rng(2)
    classes = ("p", "q", "r")
    rows = []
    for patient in range(9):
        label, n_slices = classes[patient % 3], 2 + patient % 3
        for (reader, fmt), sl in itertools.product(itertools.product((1, 2, 3), ("s", "f")), range(n_slices)):
            prob = rng.dirichlet(np.ones(3) + 2 * (np.array(classes) == label))
            rows.append({"net": reader, "fmt": fmt, "patient": patient, "label": label, "slice": sl,
                         **{f"p_{c}": v for c, v in zip(classes, prob)}})
    data = pd.DataFrame(rows)
    fom = mean_ovr_auc("label", {c: f"p_{c}" for c in classes})

    def sk(frame):
        return np.mean([roc_auc_score(frame.label == c, frame[f"p_{c}"]) for c in classes])

    fit = or_analysis(data, reader="net", modality="fmt", case="patient", truth="label", score=None, fom=fom)
    for (fmt, net), g in data.groupby(["fmt", "net"]):
        assert fit["fom"].loc[fmt, net] == pytest.approx(sk(g))
        for patient in (0, 4):
            assert fit["jackknife"].loc[patient, (fmt, net)] == pytest.approx(sk(g[g.patient != patient]))
    assert fit["design"]["n_cases"] == 9 and np.isfinite(fit["rrrc"]["test"]["p"])
    with pytest.raises(ValueError, match="class 'q' in only one case unit"):
        or_analysis(data[data.patient.isin([0, 1, 2, 3, 5])], reader="net", modality="fmt", case="patient",
                    truth="label", score=None, fom=fom)
    mixed = data.assign(label=np.where((data.patient == 0) & (data.slice == 0), "q", data.label))
    with pytest.raises(ValueError, match="truth disagrees between rows of the same case: case 0"):
        or_analysis(mixed, reader="net", modality="fmt", case="patient", truth="label", score=None, fom=fom)
    per_slice = or_analysis(mixed, reader="net", modality="fmt", case="patient", truth="label", score=None, fom=fom,
                            case_truth=False)  # slice labels may differ within a patient, alike in every cell
    assert per_slice["jackknife"].shape == (9, 6)
    with pytest.raises(ValueError, match="truth disagrees between rows of the same case: case 0"):
        or_analysis(mixed[~((mixed.patient == 0) & (mixed.slice == 0) & (mixed.net == 1))], reader="net",
                    modality="fmt", case="patient", truth="label", score=None, fom=fom, case_truth=False)
    binary = data.assign(truth=(data.label == "p").astype(int))
    with pytest.raises(ValueError, match="one row per case unit and cell"):
        or_analysis(binary, reader="net", modality="fmt", case="patient", score="p_p", cov="delong")


def test_fit_that_cannot_be_computed_reports_nan_with_reason(tmp_path, capsys):
    """Every reader separates the classes perfectly in every modality: all FOMs 1, all covariances 0."""
    data = _grid().assign(score=lambda d: d.truth.astype(float))
    fit = or_analysis(data)
    for analysis in ("rrrc", "frrc", "rrfc"):
        test = fit[analysis]["test"]
        assert np.isnan(test["p"]) and np.isnan(test["value"]) and "0" in test["reason"], (analysis, test)
        assert fit[analysis]["pairs"][["se", "ci_low", "ci_high", "p"]].isna().all().all()
    csv = tmp_path / "perfect.csv"
    data.to_csv(csv, index=False)
    assert main([str(csv), "--reader", "reader", "--modality", "modality", "--case", "case", "--truth", "truth",
                 "--score", "score"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test"]["p"] is None and out["test"]["reason"] and out["pairs"][0]["ci_low"] is None


def test_mean_squares_for_three_modalities_match_a_two_way_anova():
    """t = 3 modalities x r = 4 readers: MS(T), MS(R), MS(T:R) equal statsmodels' additive two-way
    ANOVA (its residual is the T x R interaction); with t > 2 every pair shares the Hillis SE and df2."""
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    rng = np.random.default_rng(3)
    theta = 0.8 + rng.normal(0, 0.03, (3, 4))
    a = rng.normal(size=(12, 12))
    res = or_test(theta, a @ a.T * 1e-5, ["m0", "m1", "m2"], [0, 1, 2, 3])
    frame = pd.DataFrame([{"t": f"m{i}", "r": f"r{j}", "y": theta[i, j]} for i in range(3) for j in range(4)])
    aov = sm.stats.anova_lm(ols("y ~ C(t) + C(r)", frame).fit())
    ms = (aov["sum_sq"] / aov["df"]).to_numpy()
    assert np.allclose([res["components"][k] for k in ("MS(T)", "MS(R)", "MS(T:R)")], ms)
    pairs = res["rrrc"]["pairs"]
    assert len(pairs) == 3 and pairs["se"].nunique() == 1 and (pairs["df"] == res["rrrc"]["test"]["df2"]).all()


def test_additive_foms_give_infinite_hillis_df():
    """MS(T:R) = 0 (reader and modality effects add exactly): df2 is infinite and F is referred to
    chi2(t-1)/(t-1), with a note in ``reason``; p stays a number."""
    from scipy import stats

    theta = np.array([0.75, 0.875])[:, None] + np.array([0.0, 0.03125, -0.015625, 0.0625])[None, :]  # exact
    mi, ri = np.divmod(np.arange(8), 4)
    same_m, same_r = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]
    cov = 1e-3 * np.select([same_m & same_r, same_r, same_m], [1.0, 0.4, 0.5], 0.3)  # Var, Cov1, Cov2, Cov3
    res = or_test(theta, cov, ["a", "b"], [1, 2, 3, 4])
    assert res["components"]["MS(T:R)"] == 0 and res["components"]["Cov2"] == pytest.approx(5e-4)
    test = res["rrrc"]["test"]
    assert np.isinf(test["df2"]) and "df2 infinite" in test["reason"]
    assert test["value"] == pytest.approx(4 * 0.125 ** 2 / 2 / (4 * 2e-4))
    assert test["p"] == pytest.approx(stats.chi2.sf(test["value"], 1))
    assert res["rrrc"]["pairs"]["ci_low"].notna().all()


def _cov_from(var, cov1, cov2, cov3, t, r, rng=None):
    """A (t r x t r) covariance over modality-major cells with the given OR structure (optionally
    perturbed per cell, symmetric, so that per-reader averages differ from the global ones)."""
    mi, ri = np.divmod(np.arange(t * r), r)
    sm, sr = mi[:, None] == mi[None, :], ri[:, None] == ri[None, :]
    cov = np.where(sm & sr, var, np.where(sr, cov1, np.where(sm, cov2, cov3))).astype(float)
    if rng is not None:
        e = rng.uniform(-1, 1, cov.shape) * 1e-4
        cov = cov + (e + e.T) / 2
    return cov


def test_frrc_denominator_takes_max_cov2_minus_cov3_by_default():
    """Cov2 < Cov3: the reference FRRC chi-square is (t-1) MS(T) / (Var - Cov1) (Hillis' OR-DBM MRMC,
    RJafroc); the mrmcaov convention keeps (r-1)(Cov2 - Cov3) in it. Hand computation for 2 x 3."""
    theta = np.array([[0.80, 0.85, 0.78], [0.86, 0.88, 0.84]])
    cov = _cov_from(0.002, 0.001, 0.0003, 0.0006, 2, 3)
    ms_t = 3 * ((theta.mean(1) - theta.mean()) ** 2).sum()
    ref = or_test(theta, cov, ["a", "b"], [1, 2, 3])["frrc"]
    assert ref["test"]["value"] == pytest.approx(ms_t / (0.002 - 0.001))
    assert ref["test"]["p"] == pytest.approx(stats.chi2.sf(ms_t / 0.001, 1))
    assert ref["pairs"]["se"].iloc[0] == pytest.approx(np.sqrt(2 / 3 * 0.001))
    old = or_test(theta, cov, ["a", "b"], [1, 2, 3], convention="mrmcaov")["frrc"]
    assert old["test"]["value"] == pytest.approx(ms_t / (0.002 - 0.001 + 2 * (0.0003 - 0.0006)))
    with pytest.raises(ValueError, match="convention"):
        or_test(theta, cov, ["a", "b"], [1, 2, 3], convention="mrmc")


def test_per_reader_frrc_differences_use_one_variance_per_reader():
    """Three modalities: each reader's differences have variance 2 (Var_j - Cov1_j), Var_j the mean of
    the reader's three variances, Cov1_j the mean of its six between-modality covariances (RJafroc
    ORAnalysisFactorial); mrmcaov: each pair's own Var_a + Var_b - 2 Cov_ab."""
    rng = np.random.default_rng(3)
    t, r = 3, 4
    theta = rng.uniform(0.7, 0.9, (t, r))
    cov = _cov_from(0.002, 0.001, 0.0006, 0.0004, t, r, rng)
    ref = or_test(theta, cov, list("abc"), [1, 2, 3, 4])["frrc"]["readers"]
    old = or_test(theta, cov, list("abc"), [1, 2, 3, 4], convention="mrmcaov")["frrc"]["readers"]
    for j in range(r):
        cells = [i * r + j for i in range(t)]
        block = cov[np.ix_(cells, cells)]
        var_j, cov1_j = np.diag(block).mean(), block[~np.eye(t, dtype=bool)].mean()
        rows = ref[ref["reader"] == j + 1]
        assert len(rows) == 3 and np.allclose(rows["se"], np.sqrt(2 * (var_j - cov1_j)))
        for (a, b), row in zip(itertools.combinations(range(t), 2), old[old["reader"] == j + 1].itertuples()):
            assert row.se == pytest.approx(np.sqrt(block[a, a] + block[b, b] - 2 * block[a, b]))
            assert row.p == pytest.approx(2 * stats.norm.sf(abs(theta[a, j] - theta[b, j]) / row.se))


def _vd_cli(path):
    return main([str(path), "--reader", "reader", "--modality", "treatment", "--case", "case", "--truth", "truth",
                 "--score", "rating"])


def _one_line_exit_2(capsys, rc, *messages):
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "", captured.out
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    for m in messages:
        assert m in captured.err, captured.err


def test_cli_duplicated_reading_is_an_error_listing_it(vandyke, tmp_path, capsys):
    """The same (reader, modality, case) twice would change F and p silently."""
    again = vandyke.iloc[[7]].assign(rating=lambda f: 6 - f["rating"])  # read twice, scored differently
    dup = pd.concat([vandyke, again], ignore_index=True)
    csv = tmp_path / "dup.csv"
    dup.to_csv(csv, index=False)
    r = vandyke.iloc[7]
    _one_line_exit_2(capsys, _vd_cli(csv), str(csv), "duplicated readings: 1",
                     f"reader {r.reader}, modality {r.treatment}, case {r.case} (lines 9, {len(vandyke) + 2})")


@pytest.mark.parametrize("text, message", [("", "empty file"),
                                           ("reader,treatment,case,truth,rating\n", "no readings")])
def test_cli_empty_or_header_only_file(tmp_path, capsys, text, message):
    csv = tmp_path / "empty.csv"
    csv.write_text(text)
    _one_line_exit_2(capsys, _vd_cli(csv), str(csv), message)


def test_cli_missing_truth_names_the_case(vandyke, tmp_path, capsys):
    bad = vandyke.astype({"truth": float})
    bad.loc[10, "truth"] = np.nan
    csv = tmp_path / "nan.csv"
    bad.to_csv(csv, index=False)
    _one_line_exit_2(capsys, _vd_cli(csv), "column 'truth' has 1 empty value(s)",
                     f"line 12 (case {vandyke.loc[10, 'case']})")


def test_cli_non_numeric_score_names_line_and_value(vandyke, tmp_path, capsys):
    bad = vandyke.astype({"rating": object})
    bad.loc[3, "rating"] = "high"
    csv = tmp_path / "text.csv"
    bad.to_csv(csv, index=False)
    _one_line_exit_2(capsys, _vd_cli(csv), "score column 'rating' has 1 non-numeric",
                     f"line 5 (case {vandyke.loc[3, 'case']}): 'high'")


def test_cli_convention_option(vandyke, tmp_path, capsys):
    """Van Dyke has Cov2 > Cov3 and two modalities: both conventions give the published FRRC."""
    csv = tmp_path / "vd.csv"
    vandyke.to_csv(csv, index=False)
    args = [str(csv), "--reader", "reader", "--modality", "treatment", "--case", "case", "--truth", "truth",
            "--score", "rating", "--fixed-readers"]
    values = []
    for conv in ("reference", "mrmcaov"):
        assert main([*args, "--convention", conv]) == 0
        values.append(json.loads(capsys.readouterr().out)["test"]["value"])
    assert values[0] == pytest.approx(5.4759532, rel=1e-6) and values[1] == pytest.approx(values[0])
