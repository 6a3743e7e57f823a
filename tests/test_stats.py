import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from anapart.stats import (anova_tables, auc_groups, auc_long, auc_pairs, format_pairs, model_table, oneway,
                           repeated)


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


def test_auc_pairs_table():
    rng = np.random.default_rng(0)
    classes = ["a", "b"]
    n = 24
    labels = np.array(["a", "b"] * (n // 2))
    patients = pd.Series([f"P{i // 2}" for i in range(n)], index=[f"s{i}" for i in range(n)])
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
