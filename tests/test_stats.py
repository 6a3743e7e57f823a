import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.formula.api import ols

from anapart.stats import anova_tables, auc_long, model_table, oneway, twoway


def test_oneway_matches_hand_computation():
    # groups 1-2-3 / 4-5-6 / 7-8-9: SSB = 3*(16+0+16)... means 2, 5, 8, grand 5 -> SSB = 54, SSW = 6
    data = pd.DataFrame({"auc": [1, 2, 3, 4, 5, 6, 7, 8, 9], "fmt": list("aaabbbccc")})
    row = oneway(data, "fmt", "format_within_fraction", "frac=100").iloc[0]
    assert (row.df_effect, row.df_error) == (2, 6)
    assert row.F == pytest.approx((54 / 2) / (6 / 6))
    from scipy.stats import f

    assert row.p == pytest.approx(f.sf(27.0, 2, 6))


def test_twoway_matches_statsmodels():
    rng = np.random.default_rng(0)
    rows = [(fmt, frac, 0.8 + 0.05 * (fmt == "seg112") - 0.1 * (frac == "25") + rng.normal(0, 0.03))
            for fmt in ("full", "seg112", "seg224") for frac in ("100", "25") for _ in range(4)]
    data = pd.DataFrame(rows, columns=["fmt", "frac", "auc"])
    ours = twoway(data).set_index("source")
    ref = sm.stats.anova_lm(ols("auc ~ C(fmt) * C(frac)", data=data).fit(), typ=2)
    assert ours.loc["fmt", "F"] == pytest.approx(ref.loc["C(fmt)", "F"], rel=1e-6)
    assert ours.loc["frac", "F"] == pytest.approx(ref.loc["C(frac)", "F"], rel=1e-6)
    assert ours.loc["fmt x frac", "p"] == pytest.approx(ref.loc["C(fmt):C(frac)", "PR(>F)"], rel=1e-6)
    assert ours.loc["fmt", "df_error"] == ref.loc["Residual", "df"]


def test_tables_from_model_metrics():
    classes = ["a", "b"]
    metrics = {}
    rng = np.random.default_rng(1)
    for net in ("n1", "n2"):
        for fmt in ("full", "seg112"):
            for frac in (100, 25):
                auc = {c: float(rng.uniform(0.5, 1)) for c in classes}
                metrics[(net, fmt, frac)] = {"aauc": np.mean(list(auc.values())), "aauc_sd": 0.1,
                                             "aauc_ci": [0.4, 0.9], "auc": auc, "accuracy": 0.5}
    table = model_table(metrics, classes)
    assert len(table) == 8 and list(table.columns[:3]) == ["net", "fmt", "frac"]
    long = auc_long(table, classes)
    assert len(long) == 16 and set(long["cls"]) == {"a", "b"}
    anova, posthoc = anova_tables(long)
    assert set(anova["analysis"]) == {"format_within_fraction", "fraction_within_format", "format_x_fraction"}
    assert (anova["p"].between(0, 1)).all()
    assert {"p_corr", "subset", "factor"} <= set(posthoc.columns)
