import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from anapart.metrics.stats import (ANOVA_COLUMNS, anova_tables, auc_groups, auc_long, auc_pairs, format_pairs, holm_by,
                                   model_table, oneway, repeated)


def test_oneway_matches_hand_computation():
    # groups 1-2-3 / 4-5-6 / 7-8-9: means 2, 5, 8, grand 5 -> SSB = 3*(9+0+9) = 54, SSW = 6
    data = pd.DataFrame({"auc": [1, 2, 3, 4, 5, 6, 7, 8, 9], "fmt": list("aaabbbccc")})
    row = oneway(data, "fmt", "format_within_fraction", "frac=100").iloc[0]
    assert row.design == "paper" and (row.df_effect, row.df_error) == (2, 6)
    assert row.F == pytest.approx((54 / 2) / (6 / 6))
    assert row.p == pytest.approx(sps.f.sf(27.0, 2, 6))


def _rm_data(seed=0, n_nets=6, classes=("c0", "c1", "c2"), shifts=(("full", 0.0), ("seg112", 0.03), ("seg224", 0.01))):
    """Per-class AUCs of one fraction: networks differ a lot (the repeated design removes that),
    each (network, format) model deviates a little, classes differ."""
    rng = np.random.default_rng(seed)
    cls_eff = dict(zip(classes, rng.normal(0, 0.05, len(classes))))
    rows = []
    for s in range(n_nets):
        base = rng.normal(0.8, 0.08)
        for fmt, shift in shifts:
            model = rng.normal(0, 0.01)
            for c in classes:
                rows.append((f"n{s}", c, fmt, base + shift + model + cls_eff[c] + rng.normal(0, 0.01)))
    return pd.DataFrame(rows, columns=["net", "cls", "fmt", "auc"]).assign(subject=lambda d: d["net"])


def test_repeated_measures_anova_matches_hand_computation_and_statsmodels():
    from statsmodels.stats.anova import AnovaRM

    data = _rm_data()
    row = repeated(data, "fmt", "format_within_fraction", "frac=100").iloc[0]
    # by hand on the models' aAUCs (class means): SS_total = SS_format + SS_network + SS_error
    y = data.groupby(["net", "fmt"])["auc"].mean().unstack().to_numpy()
    n, k = y.shape
    grand = y.mean()
    ss_fmt = n * ((y.mean(0) - grand) ** 2).sum()
    ss_subj = k * ((y.mean(1) - grand) ** 2).sum()
    ss_err = ((y - grand) ** 2).sum() - ss_fmt - ss_subj
    f_hand = (ss_fmt / (k - 1)) / (ss_err / ((k - 1) * (n - 1)))
    assert row.design == "repeated_measures" and (row.df_effect, row.df_error) == (k - 1, (k - 1) * (n - 1)) == (2, 10)
    assert row.unit.startswith("network") and row.n == n * k
    assert row.F == pytest.approx(f_hand, rel=1e-9)
    assert row.p == pytest.approx(sps.f.sf(f_hand, k - 1, (k - 1) * (n - 1)), rel=1e-9)
    # statsmodels, subject = network, averaging each model's class AUCs itself
    ref = AnovaRM(data, "auc", "net", within=["fmt"], aggregate_func="mean").fit().anova_table
    assert row.F == pytest.approx(ref.loc["fmt", "F Value"], rel=1e-9)
    assert row.p == pytest.approx(ref.loc["fmt", "Pr > F"], rel=1e-9)
    assert 0 < row.p_gg <= 1 and 0.5 <= row.eps <= 1
    # the paper's between-groups ANOVA of the same numbers cannot see the format effect
    assert oneway(data, "fmt", "x", "y").iloc[0].p > 0.1 > 0.05 > row.p


def test_two_way_repeated_measures_matches_statsmodels():
    from statsmodels.stats.anova import AnovaRM

    rng = np.random.default_rng(3)
    rows = [(f"n{s}", c, fmt, frac, 0.8 + 0.04 * (fmt == "seg112") - 0.08 * (frac == "25") + rng.normal(0, 0.03)
             + 0.05 * s / 5 + 0.02 * c) for s in range(5) for fmt in ("full", "seg112", "seg224") for frac in ("100", "25")
            for c in range(3)]
    data = pd.DataFrame(rows, columns=["net", "cls", "fmt", "frac", "auc"]).assign(subject=lambda d: d["net"])
    ours = repeated(data, ["fmt", "frac"], "format_x_fraction", "all").set_index("source")
    ref = AnovaRM(data, "auc", "net", within=["fmt", "frac"], aggregate_func="mean").fit().anova_table
    for src, ref_src in (("fmt", "fmt"), ("frac", "frac"), ("fmt x frac", "fmt:frac")):
        assert ours.loc[src, "F"] == pytest.approx(ref.loc[ref_src, "F Value"], rel=1e-6)
        assert ours.loc[src, "p"] == pytest.approx(ref.loc[ref_src, "Pr > F"], rel=1e-6)
        assert ours.loc[src, "df_error"] == ref.loc[ref_src, "Den DF"]
    assert ours.loc["fmt x frac", "df_error"] == 8  # (5 networks - 1) x 2 x 1, not the 3 classes' 38


def test_repeated_measures_holds_its_false_positive_rate_when_trained_models_vary():
    """No format effect; each (network, format) model deviates by SD 0.03, shared by its six class
    AUCs (one training run). With the network as subject the format test keeps about its nominal
    5%; with (network, class) pairs as subjects (the former design) one model's deviation counts
    six times and most datasets come out "significant"."""
    import pingouin as pg

    ours, former = [], []
    classes = [f"c{k}" for k in range(6)]
    for seed in range(100):
        rng = np.random.default_rng(seed)
        nf = {(n, f): rng.normal(0, 0.03) for n in range(4) for f in ("full", "seg112", "seg224")}
        rows = [(f"n{n}", c, f, 0.85 + 0.03 * n + 0.05 * k / 6 + nf[(n, f)] + rng.normal(0, 0.02))
                for (n, f) in nf for k, c in enumerate(classes)]
        data = pd.DataFrame(rows, columns=["net", "cls", "fmt", "auc"]).assign(subject=lambda d: d["net"])
        ours.append(repeated(data, "fmt", "format_within_fraction", "frac=100").iloc[0].p < 0.05)
        pairs = data.assign(subject=data["net"] + "|" + data["cls"])
        former.append(pg.rm_anova(data=pairs, dv="auc", within="fmt", subject="subject").iloc[0]["p_unc"] < 0.05)
    assert np.mean(ours) <= 0.12, np.mean(ours)  # 2 of 100 here
    assert np.mean(former) >= 0.35, np.mean(former)  # 49 of 100


def _tables():
    classes = ["a", "b", "c"]
    metrics = {}
    rng = np.random.default_rng(1)
    for net in ("n1", "n2", "n3"):
        for fmt in ("full", "seg112"):
            for frac in (100, 25):
                auc = {c: float(rng.uniform(0.5, 1)) for c in classes}
                metrics[(net, fmt, frac)] = {"aauc": np.mean(list(auc.values())), "aauc_sd": 0.1,
                                             "aauc_ci": [0.4, 0.9], "auc": auc, "accuracy": 0.5}
    return model_table(metrics, classes), classes


def test_tables_hold_both_designs_and_paired_posthoc():
    table, classes = _tables()
    assert len(table) == 12 and list(table.columns[:3]) == ["net", "fmt", "frac"]
    long = auc_long(table, classes)
    assert len(long) == 36 and set(long["cls"]) == set(classes) and long["subject"].nunique() == 3
    anova, posthoc = anova_tables(long)
    assert set(anova["design"]) == {"repeated_measures", "paper"}
    assert set(anova["analysis"]) == {"format_within_fraction", "fraction_within_format", "format_x_fraction"}
    assert set(anova.loc[anova["analysis"] == "format_x_fraction", "design"]) == {"repeated_measures"}
    assert (anova["p"].between(0, 1)).all()
    rm = anova[anova["design"] == "repeated_measures"]
    assert (rm["n"] <= 12).all() and (rm.loc[rm["analysis"] != "format_x_fraction", "df_error"] == 2).all()
    assert {"p_corr", "subset", "factor", "design", "unit"} <= set(posthoc.columns)
    # the repeated-measures post-hoc is a paired t-test of the models' aAUCs, paired by network
    sub = table[table["frac"] == 100]
    wide = sub.pivot(index="net", columns="fmt", values="aauc")
    row = posthoc[(posthoc["design"] == "repeated_measures") & (posthoc["subset"] == "frac=100")].iloc[0]
    ref = sps.ttest_rel(wide[row["A"]], wide[row["B"]])
    assert row["T"] == pytest.approx(ref.statistic) and row["p_unc"] == pytest.approx(ref.pvalue)
    assert bool(row["Paired"])
    # the paper's: unpaired, on the (network, class) AUCs
    paper = posthoc[(posthoc["design"] == "paper") & (posthoc["subset"] == "frac=100")].iloc[0]
    aucs = {f: sub.loc[sub["fmt"] == f, [f"auc_{c}" for c in classes]].to_numpy().ravel() for f in ("full", "seg112")}
    assert paper["p_unc"] == pytest.approx(sps.ttest_ind(aucs[paper["A"]], aucs[paper["B"]]).pvalue)


def test_holm_over_three_formats_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    data = _rm_data(seed=5, n_nets=8).assign(frac="100")
    _, posthoc = anova_tables(data)
    rm = posthoc[posthoc["design"] == "repeated_measures"]
    assert len(rm) == 3 and (rm["dof"] == 7).all()  # 8 networks paired, not 24 (network, class) pairs
    assert rm["p_corr"].to_numpy() == pytest.approx(multipletests(rm["p_unc"], method="holm")[1])


def test_group_numbers_are_mean_and_sd_over_network_class_aucs():
    table, classes = _tables()
    groups = auc_groups(table, classes).set_index(["fmt", "frac"])
    sub = table[(table["fmt"] == "seg112") & (table["frac"] == 100)]
    values = sub[[f"auc_{c}" for c in classes]].to_numpy().ravel()
    g = groups.loc[("seg112", 100)]
    assert g["n_auc"] == 9 and g["mean"] == pytest.approx(values.mean())
    assert g["sd"] == pytest.approx(values.std(ddof=1))
    assert g["aauc_sd_networks"] == pytest.approx(sub["aauc"].std(ddof=1))
    assert g["n_networks"] == 3


def test_format_pairs_go_from_the_smallest_window():
    assert format_pairs(["full", "seg112", "seg224"]) == [("seg112", "seg224"), ("seg112", "full"),
                                                           ("seg224", "full")]


def _two_class_slices(n: int) -> tuple[np.ndarray, pd.Series]:
    """n slices alternating classes a/b, two per patient: labels, and slice_id -> patient."""
    labels = np.array(["a", "b"] * (n // 2))
    return labels, pd.Series([f"P{i // 2}" for i in range(n)], index=[f"s{i}" for i in range(n)])


def test_auc_pairs_table():
    rng = np.random.default_rng(0)
    classes = ["a", "b"]
    n = 24
    labels, patients = _two_class_slices(n)
    strata = {p: "a" if int(p[1:]) % 2 else "b" for p in patients.unique()}

    def pred(p_a):
        return pd.DataFrame({"slice_id": patients.index, "label": labels, "p_a": p_a, "p_b": 1 - p_a})

    good = pred(np.where(labels == "a", 0.7, 0.3) + rng.normal(0, 0.1, n))
    noise = pred(rng.random(n))
    preds = {("net", "seg112", 100): good, ("net", "full", 100): noise.iloc[::-1].reset_index(drop=True)}
    t = auc_pairs(preds, patients, strata, classes, ["full", "seg112"], n_boot=200, seed=0)
    assert list(t.columns[:8]) == ["net", "frac", "fmt_a", "fmt_b", "delta_aauc", "ci_low", "ci_high", "p"]
    row = t.iloc[0]
    assert (row.fmt_a, row.fmt_b) == ("seg112", "full")
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(labels == "a", good["p_a"]) - roc_auc_score(noise["label"] == "a", noise["p_a"])
    assert row.delta_aauc == pytest.approx(expected)  # slices matched by id, not by row order
    assert row.ci_low <= row.delta_aauc <= row.ci_high and row.n_patients == 12
    assert row.p_holm == pytest.approx(row.p)  # a family of one
    # Holm within each fraction, over every network x format pair (statsmodels)
    from statsmodels.stats.multitest import multipletests

    more = {**preds, ("net2", "seg112", 100): noise, ("net2", "full", 100): good,
            ("net", "seg112", 50): good, ("net", "full", 50): noise}
    t = auc_pairs(more, patients, strata, classes, ["full", "seg112"], n_boot=200, seed=0)
    f100 = t[t["frac"] == 100]
    assert len(f100) == 2 and f100["p_holm"].to_numpy() == pytest.approx(multipletests(f100["p"], method="holm")[1])
    assert t.loc[t["frac"] == 50, "p_holm"].to_numpy() == pytest.approx(t.loc[t["frac"] == 50, "p"].to_numpy())
    bad = {("net", "seg112", 100): good, ("net", "full", 100): noise.iloc[:-1]}
    with pytest.raises(ValueError, match="same test slices"):
        auc_pairs(bad, patients, strata, classes, ["full", "seg112"], n_boot=10, seed=0)


def test_posthoc_p_values_are_scipys_t_tests_with_holm_in_both_designs():
    from statsmodels.stats.multitest import multipletests

    data = _rm_data(seed=5, n_nets=8).assign(frac="100")
    _, posthoc = anova_tables(data)
    wide = data.groupby(["subject", "fmt"])["auc"].mean().unstack()  # paired: each network's model aAUCs

    def paired(a, b):
        return sps.ttest_rel(wide[a], wide[b]).pvalue

    def paper(a, b):  # unpaired on every (network, class) AUC
        return sps.ttest_ind(data.loc[data["fmt"] == a, "auc"], data.loc[data["fmt"] == b, "auc"]).pvalue

    for design, test in (("repeated_measures", paired), ("paper", paper)):
        rows = posthoc[(posthoc["design"] == design) & (posthoc["factor"] == "fmt")]
        assert len(rows) == 3 and set(zip(rows["A"], rows["B"])) == {("full", "seg112"), ("full", "seg224"),
                                                                     ("seg112", "seg224")}
        p = [test(a, b) for a, b in zip(rows["A"], rows["B"])]
        assert rows["p_unc"].to_numpy() == pytest.approx(p, rel=1e-9)
        assert rows["p_corr"].to_numpy() == pytest.approx(multipletests(p, method="holm")[1], rel=1e-9)
        assert (rows["p_corr"] > rows["p_unc"]).any()  # the correction did something


def test_unbalanced_oneway_matches_scipy():
    """The paper's design with groups of different sizes (a class AUC undefined in some models)."""
    rng = np.random.default_rng(4)
    groups = {"full": rng.normal(0.8, 0.05, 3), "seg112": rng.normal(0.9, 0.05, 5), "seg224": rng.normal(0.85, 0.05, 8)}
    data = pd.DataFrame([(k, v) for k, vs in groups.items() for v in vs], columns=["fmt", "auc"])
    row = oneway(data, "fmt", "format_within_fraction", "frac=100").iloc[0]
    ref = sps.f_oneway(*groups.values())
    assert row.F == pytest.approx(ref.statistic, rel=1e-9) and row.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (row.df_effect, row.df_error, row.n) == (2, 13, 16)


def test_repeated_measures_use_only_subjects_measured_at_every_level():
    """A (network, class) AUC missing in one cell (the class absent from a test set) removes that subject
    from the repeated-measures ANOVA; the result is statsmodels' on the complete subjects."""
    from statsmodels.stats.anova import AnovaRM

    rng = np.random.default_rng(6)
    rows = [(f"s{s}", fmt, frac, 0.8 + 0.03 * (fmt == "seg112") - 0.05 * (frac == "25") + rng.normal(0, 0.03))
            for s in range(7) for fmt in ("full", "seg112", "seg224") for frac in ("100", "25")]
    data = pd.DataFrame(rows, columns=["subject", "fmt", "frac", "auc"])
    holey = data.drop(index=data[(data["subject"] == "s2") & (data["fmt"] == "seg224") & (data["frac"] == "25")].index)
    complete = data[data["subject"] != "s2"]
    ours = repeated(holey, ["fmt", "frac"], "format_x_fraction", "all").set_index("source")
    ref = AnovaRM(complete, "auc", "subject", within=["fmt", "frac"]).fit().anova_table
    assert ours["n"].iloc[0] == len(complete)
    for src, ref_src in (("fmt", "fmt"), ("frac", "frac"), ("fmt x frac", "fmt:frac")):
        assert ours.loc[src, "F"] == pytest.approx(ref.loc[ref_src, "F Value"], rel=1e-6)
        assert ours.loc[src, "df_error"] == ref.loc[ref_src, "Den DF"]
    one = repeated(holey[holey["frac"] == "25"], "fmt", "format_within_fraction", "frac=25").iloc[0]
    ref1 = AnovaRM(complete[complete["frac"] == "25"], "auc", "subject", within=["fmt"]).fit().anova_table
    assert one.F == pytest.approx(ref1.loc["fmt", "F Value"], rel=1e-9) and one.n == 6 * 3


# --------------------------------------------------------------------------- the published tables' layout and effect sizes

from anapart.metrics.stats import ANOVA_COLUMNS, read_model_tables  # noqa: E402


def test_oneway_effect_size_is_partial_eta_squared_by_hand():
    data = pd.DataFrame({"auc": [1, 2, 3, 4, 5, 6, 7, 8, 9], "fmt": list("aaabbbccc")})
    t = oneway(data, "fmt", "format_within_fraction", "frac=100")
    assert len(t) == 1 and list(t.columns) == ANOVA_COLUMNS
    row = t.iloc[0]
    assert row.effect_size == pytest.approx(54 / (54 + 6)) and row.effect_size_kind == "np2"  # SSB / (SSB + SSW)
    assert (row.analysis, row.subset, row.source, row.n) == ("format_within_fraction", "frac=100", "fmt", 9)
    assert np.isnan(row.p_gg) and np.isnan(row.eps)
    empty = oneway(data.assign(fmt="a"), "fmt", "x", "y")  # one level: nothing to compare
    assert empty.empty and list(empty.columns) == ANOVA_COLUMNS


def test_repeated_effect_size_is_generalized_eta_squared_by_hand():
    data = _rm_data(seed=2, n_nets=5)
    t = repeated(data, "fmt", "format_within_fraction", "frac=50")
    assert len(t) == 1 and list(t.columns) == ANOVA_COLUMNS
    row = t.iloc[0]
    y = data.groupby(["subject", "fmt"])["auc"].mean().unstack().to_numpy()  # the models' aAUCs
    n, k = y.shape
    grand = y.mean()
    ss_fmt = n * ((y.mean(0) - grand) ** 2).sum()
    ss_subj = k * ((y.mean(1) - grand) ** 2).sum()
    ss_err = ((y - grand) ** 2).sum() - ss_fmt - ss_subj
    assert row.effect_size == pytest.approx(ss_fmt / (ss_fmt + ss_subj + ss_err), rel=1e-9)
    assert (row.effect_size_kind, row.subset, row.source, row.n) == ("ng2", "frac=50", "fmt", n * k)
    empty = repeated(data.assign(fmt="full"), "fmt", "x", "y")
    assert empty.empty and list(empty.columns) == ANOVA_COLUMNS


def test_how_many_subjects_each_repeated_analysis_needs():
    """Three networks give a repeated-measures ANOVA with a sphericity correction, two the F test alone
    (and paired t-tests with one df); one network gives no repeated-measures analysis at all, and one
    AUC per format no test of any kind."""
    data = _rm_data(seed=3, n_nets=3)
    row = repeated(data, "fmt", "format_within_fraction", "frac=100").iloc[0]
    assert (row.df_effect, row.df_error) == (2, 4)
    two = data[data["subject"] != "n0"].assign(frac="100")
    anova, posthoc = anova_tables(two)
    rm_rows = anova[anova["design"] == "repeated_measures"]
    assert len(rm_rows) == 1 and (rm_rows.iloc[0].df_effect, rm_rows.iloc[0].df_error) == (2, 2)
    rm = posthoc[posthoc["design"] == "repeated_measures"]
    assert len(rm) == 3 and rm["dof"].eq(1).all()  # paired t-tests on two networks
    one_net = two[two["subject"] == "n1"]
    anova, posthoc = anova_tables(one_net)
    assert set(anova["design"]) == {"paper"} and set(posthoc["design"]) == {"paper"}
    one = one_net[one_net["cls"] == "c0"]  # one AUC per format: no residual, no test at all
    anova, posthoc = anova_tables(one)
    assert anova.empty and list(anova.columns) == ANOVA_COLUMNS and posthoc.empty
    four = pd.DataFrame({"auc": [0.7, 0.8, 0.9, 0.95], "fmt": ["a", "b", "c", "c"]})  # 1 residual df
    assert oneway(four, "fmt", "x", "y").iloc[0].df_error == 1


def _three_fraction_long(seed=8):
    classes = ["a", "b", "c"]
    rng = np.random.default_rng(seed)
    metrics = {}
    for net in ("n1", "n2", "n3"):
        for fmt in ("full", "seg112", "seg224"):
            for frac in (100, 50, 25):
                auc = {c: float(rng.uniform(0.5, 1)) for c in classes}
                metrics[(net, fmt, frac)] = {"aauc": np.mean(list(auc.values())), "aauc_sd": 0.1,
                                             "aauc_ci": [0.4, 0.9], "auc": auc, "accuracy": 0.5}
    return auc_long(model_table(metrics, classes), classes)


def test_anova_and_posthoc_tables_have_every_subset_in_the_papers_order():
    long = _three_fraction_long()
    anova, posthoc = anova_tables(long)
    assert list(anova.columns) == ANOVA_COLUMNS
    keys = list(zip(anova["design"], anova["analysis"], anova["subset"], anova["source"]))
    fracs = [f"frac={f}" for f in (100, 50, 25)]
    fmts = [f"fmt={f}" for f in ("full", "seg112", "seg224")]
    expected = ([(d, "format_within_fraction", s, "fmt") for s in fracs for d in ("repeated_measures", "paper")]
                + [(d, "fraction_within_format", s, "frac") for s in fmts for d in ("repeated_measures", "paper")]
                + [("repeated_measures", "format_x_fraction", "all", src) for src in ("fmt", "frac", "fmt x frac")])
    assert keys == expected
    assert list(posthoc.columns[:4]) == ["design", "unit", "subset", "factor"]
    got = posthoc.groupby(["design", "subset", "factor"], sort=False).size()
    assert list(got.index) == ([(d, s, "fmt") for s in fracs for d in ("repeated_measures", "paper")]
                               + [(d, s, "frac") for s in fmts for d in ("repeated_measures", "paper")])
    assert (got == 3).all() and set(posthoc["p_adjust"]) == {"holm"}
    assert (posthoc["Paired"] == (posthoc["design"] == "repeated_measures")).all()
    # each subset's tests are computed on that subset only
    sub = long[long["frac"] == "50"].groupby(["subject", "fmt"])["auc"].mean().unstack()  # model aAUCs
    row = posthoc[(posthoc["design"] == "repeated_measures") & (posthoc["subset"] == "frac=50")
                  & (posthoc["A"] == "full") & (posthoc["B"] == "seg224")].iloc[0]
    assert row["p_unc"] == pytest.approx(sps.ttest_rel(sub["full"], sub["seg224"]).pvalue, rel=1e-9)
    sub = long[long["fmt"] == "seg112"]
    row = posthoc[(posthoc["design"] == "paper") & (posthoc["subset"] == "fmt=seg112")
                  & (posthoc["A"] == "100") & (posthoc["B"] == "25")].iloc[0]
    ref = sps.ttest_ind(sub.loc[sub["frac"] == "100", "auc"], sub.loc[sub["frac"] == "25", "auc"]).pvalue
    assert row["p_unc"] == pytest.approx(ref, rel=1e-9)  # the paper's: every class AUC a sample


def test_a_single_comparison_is_reported_as_holm_corrected_with_p_unchanged():
    long = _three_fraction_long()
    two = long[long["fmt"].isin(["full", "seg112"]) & (long["frac"] == "100")]
    _, posthoc = anova_tables(two)
    assert len(posthoc) == 2 and set(posthoc["p_adjust"]) == {"holm"}
    assert (posthoc["p_corr"] == posthoc["p_unc"]).all()


def test_nothing_to_compare_gives_empty_tables():
    long = _three_fraction_long()
    anova, posthoc = anova_tables(long[(long["fmt"] == "full") & (long["frac"] == "100")])
    assert anova.empty and list(anova.columns) == ANOVA_COLUMNS and posthoc.empty


def test_model_table_and_group_numbers_columns_values_and_order():
    classes = ["a", "b"]
    metrics = {("n2", "seg112", 25): {"aauc": 0.7, "aauc_sd": 0.1, "aauc_ci": [0.6, 0.8], "accuracy": 0.5,
                                      "auc": {"a": 0.6, "b": 0.8}},
               ("n1", "seg112", 25): {"aauc": 0.9, "aauc_sd": 0.05, "aauc_ci": [0.85, 0.95], "accuracy": 0.75,
                                      "auc": {"a": 0.9, "b": float("nan")}},
               ("n1", "full", 100): {"aauc": 0.8, "aauc_sd": 0.0, "aauc_ci": [0.7, 0.9], "accuracy": 0.6,
                                     "auc": {"a": 0.8, "b": 0.8}},
               ("n1", "seg112", 100): {"aauc": 0.85, "aauc_sd": 0.0, "aauc_ci": [0.8, 0.9], "accuracy": 0.7,
                                       "auc": {"a": 0.85, "b": 0.85}}}
    t = model_table(metrics, classes)
    assert list(t.columns) == ["net", "fmt", "frac", "aauc", "aauc_sd", "ci_low", "ci_high", "accuracy", "auc_a",
                               "auc_b", "balanced_accuracy", "top_predicted", "top_predicted_share", "degenerate"]
    assert list(zip(t["frac"], t["fmt"], t["net"])) == [(100, "full", "n1"), (100, "seg112", "n1"),
                                                        (25, "seg112", "n1"), (25, "seg112", "n2")]
    r = t.iloc[3]
    assert (r.aauc, r.aauc_sd, r.ci_low, r.ci_high, r.accuracy, r.auc_a, r.auc_b) == (0.7, 0.1, 0.6, 0.8, 0.5, 0.6, 0.8)
    g = auc_groups(t, classes)
    assert list(g.columns) == ["fmt", "frac", "n_auc", "mean", "sd", "n_networks", "aauc_mean", "aauc_sd_networks"]
    assert list(zip(g["frac"], g["fmt"])) == [(100, "full"), (100, "seg112"), (25, "seg112")]
    assert pd.api.types.is_integer_dtype(g["frac"])
    last = g.iloc[2]
    assert (last.n_auc, last.n_networks) == (3, 2)  # the undefined AUC left out
    assert last["mean"] == pytest.approx((0.6 + 0.8 + 0.9) / 3) and last.aauc_mean == pytest.approx(0.8)
    assert last.aauc_sd_networks == pytest.approx(np.std([0.7, 0.9], ddof=1))


def test_read_model_tables_keys_by_the_path(tmp_path):
    paths = []
    for net, fmt, frac, v in (("densenet121", "seg112", 25, 1.0), ("mobilenetv3_large_100", "full", 100, 2.0)):
        p = tmp_path / "results/cam" / net / fmt / f"f{frac}" / "scores.csv"
        p.parent.mkdir(parents=True)
        pd.DataFrame({"slice_id": ["s1"], "score": [v]}).to_csv(p, index=False)
        paths.append(p)
    got = read_model_tables(paths)
    assert set(got) == {("densenet121", "seg112", 25), ("mobilenetv3_large_100", "full", 100)}
    assert got[("mobilenetv3_large_100", "full", 100)]["score"].tolist() == [2.0]


def test_auc_pairs_rows_are_the_paired_bootstrap_of_each_available_pair():
    from anapart.metrics.evaluate import paired_delta_aauc

    rng = np.random.default_rng(3)
    classes = ["a", "b"]
    n = 20
    labels, patients = _two_class_slices(n)
    strata = {p: "a" if int(p[1:]) < 5 else "b" for p in patients.unique()}

    def pred(shift):
        p_a = np.clip(np.where(labels == "a", 0.5 + shift, 0.5 - shift) + rng.normal(0, 0.15, n), 0, 1)
        return pd.DataFrame({"slice_id": patients.index, "label": labels, "p_a": p_a, "p_b": 1 - p_a})

    # no seg224 model: only the seg112 - full pair can be formed, at both fractions
    preds = {("net", fmt, frac): pred(shift) for fmt, shift in (("seg112", 0.2), ("full", 0.05)) for frac in (25, 100)}
    t = auc_pairs(preds, patients, strata, classes, ["full", "seg112", "seg224"], n_boot=150, seed=4, level=0.8)
    assert list(t.columns) == ["net", "frac", "fmt_a", "fmt_b", "delta_aauc", "ci_low", "ci_high", "p", "p_holm",
                               "aauc_a", "aauc_b", "n_boot", "n_slices", "n_patients", "p_floor"]
    assert list(zip(t["net"], t["frac"], t["fmt_a"], t["fmt_b"])) == [("net", 100, "seg112", "full"),
                                                                      ("net", 25, "seg112", "full")]
    for row in t.itertuples():
        a, b = preds[("net", "seg112", row.frac)], preds[("net", "full", row.frac)]
        ref = paired_delta_aauc(labels, a[["p_a", "p_b"]].to_numpy(), b[["p_a", "p_b"]].to_numpy(),
                                patients.to_numpy(), classes, strata=strata, n_boot=150, seed=4, level=0.8)
        for k in ("delta_aauc", "ci_low", "ci_high", "p", "aauc_a", "aauc_b", "n_boot"):
            assert getattr(row, k) == pytest.approx(ref[k], rel=1e-12), k
        assert (row.n_slices, row.n_patients, row.n_boot) == (n, 10, 150)
        assert row.p_floor == pytest.approx(2 / 151) and row.p >= row.p_floor  # the bootstrap's resolution


def test_two_networks_still_give_the_repeated_measures_f_test():
    """Two networks and three formats: pingouin's sphericity test cannot run; the F test can
    (statsmodels AnovaRM), without a sphericity correction."""
    from statsmodels.stats.anova import AnovaRM

    data = _rm_data(seed=2, n_nets=2)
    row = repeated(data, "fmt", "format_within_fraction", "frac=100").iloc[0]
    y = data.groupby(["net", "fmt"])["auc"].mean().unstack().to_numpy()
    resid = y - y.mean(1, keepdims=True) - y.mean(0) + y.mean()
    f_hand = (2 * ((y.mean(0) - y.mean()) ** 2).sum() / 2) / ((resid ** 2).sum() / 2)
    assert (row.df_effect, row.df_error) == (2, 2) and row.F == pytest.approx(f_hand, rel=1e-9)
    assert row.p == pytest.approx(sps.f.sf(f_hand, 2, 2), rel=1e-9) and np.isnan(row.p_gg)
    two = pd.concat([data.assign(frac=f) for f in ("100", "25")])
    two["auc"] += np.where(two["frac"] == "25", -0.05, 0) + np.random.default_rng(0).normal(0, 0.01, len(two))
    rows = repeated(two, ["fmt", "frac"], "format_x_fraction", "all").set_index("source")
    ref = AnovaRM(two, "auc", "net", within=["fmt", "frac"], aggregate_func="mean").fit().anova_table
    assert rows.loc["fmt x frac", "F"] == pytest.approx(ref.loc["fmt:frac", "F Value"], rel=1e-9)


def test_two_network_rows_carry_their_labels_and_every_anova_column():
    """The statsmodels fallback (two networks) writes the same table as pingouin's path: its rows are
    labelled with their analysis and subset, and n counts the 2 x 3 cell means tested."""
    t = repeated(_rm_data(seed=2, n_nets=2), "fmt", "format_within_fraction", "frac=100")
    assert list(t.columns) == ANOVA_COLUMNS and len(t) == 1
    row = t.iloc[0]
    assert (row.design, row.analysis, row.subset, row.source, row.n) == \
        ("repeated_measures", "format_within_fraction", "frac=100", "fmt", 6)
    assert row.unit.startswith("network") and row.effect_size_kind == "ng2"
    assert np.isnan(row.effect_size) and np.isnan(row.eps) and np.isnan(row.p_gg)


def test_holm_families_include_rows_whose_key_is_missing():
    """A row whose family key is missing is still a family member (Holm by hand: sorted p times the
    number of p left, running maximum); a missing p stays missing and is not counted."""
    t = pd.DataFrame({"frac": [100, 100, np.nan, np.nan, np.nan], "p": [0.04, 0.01, 0.02, 0.01, np.nan]})
    out = holm_by(t, ["frac"])
    assert out["p_holm"].to_numpy()[:4] == pytest.approx([0.04, 0.02, 0.02, 0.02], abs=1e-12)
    assert np.isnan(out["p_holm"].iloc[4]) and out["p"].equals(t["p"])


def test_auc_pairs_of_a_single_format_is_an_empty_table_with_every_column():
    labels = np.array(["a", "b"] * 5)
    patients = pd.Series([f"P{i // 2}" for i in range(10)], index=[f"s{i}" for i in range(10)])
    pred = pd.DataFrame({"slice_id": patients.index, "label": labels, "p_a": np.linspace(0, 1, 10),
                         "p_b": np.linspace(1, 0, 10)})
    t = auc_pairs({("net", "full", 100): pred}, patients, {p: "a" for p in patients.unique()}, ["a", "b"],
                  ["full", "seg112"], n_boot=20, seed=0, level=0.8)
    assert t.empty and list(t.columns) == ["net", "frac", "fmt_a", "fmt_b", "delta_aauc", "ci_low", "ci_high", "p",
                                           "p_holm", "aauc_a", "aauc_b", "n_boot", "n_slices", "n_patients",
                                           "p_floor"]
