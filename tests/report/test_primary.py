"""The declared primary endpoint (anapart.report.primary): the right row found in either
orientation, every contrast read the primary's way, the secondary family Holm-adjusted as
statsmodels does it, replicates first, alpha shared by two primary endpoints."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from anapart.report.primary import front_page, headline, orient, primary_table

PRIMARY = {"contrast": "seg112 - full", "fraction": 25, "figure": "aauc", "analysis": "RRRC",
           "cam_score": "corrected"}


def _mrmc():
    rows = []
    p = iter([0.01, 0.04, 0.30, 0.002, 0.5, 0.2, 0.03, 0.8, 0.6])
    for frac in (100, 25):
        for analysis in ("RRRC", "FRRC"):
            rows.append({"frac": frac, "figure": "aauc", "analysis": analysis, "contrast": "all formats",
                         "p": 0.05, "reason": None})
            for c in ("full - seg112", "full - seg224", "seg112 - seg224"):
                est = -0.08 if c == "full - seg112" else 0.01
                rows.append({"frac": frac, "figure": "aauc", "analysis": analysis, "contrast": c, "estimate": est,
                             "ci_low": est - 0.05, "ci_high": est + 0.03, "se": 0.02, "df2": 6.0,
                             "p": next(p) if analysis == "RRRC" else 0.5, "reason": None})
    rows.append({"frac": 25, "figure": "auc_NPC", "analysis": "RRRC", "contrast": "full - seg112", "estimate": 0.3,
                 "ci_low": 0.1, "ci_high": 0.5, "p": 0.001, "reason": None})
    return pd.DataFrame(rows)


def test_contrasts_read_the_way_the_primary_does():
    assert orient("full - seg112", "seg112 - full") == ("seg112 - full", -1)
    assert orient("full - seg224", "seg112 - full") == ("seg224 - full", -1)  # full last
    assert orient("seg112 - seg224", "seg112 - full") == ("seg112 - seg224", 1)  # seg112 first
    assert orient("seg224 - seg112", "seg112 - full") == ("seg112 - seg224", -1)


def test_the_primary_row_is_turned_round_and_the_rest_is_one_holm_family():
    t = primary_table(_mrmc(), {**PRIMARY, "cam_score": None})
    first = t.iloc[0]
    assert first["role"] == "primary" and first["contrast"] == "seg112 - full" and first["frac"] == 25
    # mrmc.csv has full - seg112 = -0.08 (CI -0.13 to -0.05): seg112 - full is +0.08 (CI 0.05 to 0.13)
    assert first["estimate"] == pytest.approx(0.08) and (first["ci_low"], first["ci_high"]) == pytest.approx((0.05, 0.13))
    assert first["p"] == pytest.approx(0.002) and np.isnan(first["p_holm_family"]) and first["alpha"] == 0.05
    sec = t[t["role"] == "secondary"]
    # every other RRRC aAUC pair at every fraction: 3 at 100%, 2 at 25%; not FRRC, not other figures
    assert len(sec) == 5 and set(sec["analysis"]) == {"RRRC"} and set(sec["figure"]) == {"aauc"}
    assert set(sec["contrast"]) == {"seg112 - full", "seg224 - full", "seg112 - seg224"}
    assert sec["p_holm_family"].to_numpy() == pytest.approx(multipletests(sec["p"], method="holm")[1])


def _spread():
    rows = []
    for frac in (100, 25):
        for c, est, p in (("full - seg112", -0.05, 0.01), ("full - seg224", 0.02, 0.4), ("seg112 - seg224", 0.07, 0.03)):
            rows.append({"frac": frac, "figure": "aauc", "analysis": "RRRC", "contrast": c, "estimate": est,
                         "ci_low": est - 0.04, "ci_high": est + 0.04, "se": 0.02, "df2": 8.0, "p": p, "p_holm": p,
                         "n_replicates": 6,
                         "sd_over_repeats": 0.02, "sd_over_seeds": 0.015, "reason": np.nan})
    return pd.DataFrame(rows)


def test_with_replicates_the_pooled_analysis_is_primary_and_its_own_contrasts_the_family():
    t = primary_table(_mrmc(), {**PRIMARY, "cam_score": None}, spread=_spread())
    first = t.iloc[0]
    assert first["source"].startswith("results/replicates/") and first["estimate"] == pytest.approx(0.05)
    sec = t[t["role"] == "secondary"]
    # the pooled analysis's 5 other contrasts, never the single split's, each once
    assert len(sec) == 5 and set(sec["source"]) == {"results/replicates/tables/mrmc_spread.csv"}
    assert sec["p_holm_family"].to_numpy() == pytest.approx(multipletests(sec["p"], method="holm")[1])
    single = t[t["role"] == "single split (supporting)"]
    assert len(single) == 6 and single["p_holm_family"].isna().all()
    assert single[(single["frac"] == 25) & (single["contrast"] == "seg112 - full")]["estimate"].iloc[0] == \
        pytest.approx(0.08)
    text = headline(t)
    assert "primary: seg112 - full (aauc, RRRC, 25% of the training set) +0.050, 95% CI +0.010 to +0.090, p = 0.01: " \
        "shown at alpha 0.05" in text and "SD over seeds 0.015; SD over repeats 0.020" in text


def _cam(p=0.03, est=0.12, df=3.0):
    from scipy import stats

    se = abs(est) / stats.t.isf(p / 2, df)  # a consistent row: p from t = est / se with df
    return pd.DataFrame([
        {"unit": "OR-RRRC", "frac": "100", "score": "corrected", "contrast": "seg112 - full", "estimate": est,
         "se": se, "df": df, "ci_low": est - 2 * se, "ci_high": est + 2 * se, "ci_level": 0.95, "p": p,
         "note": "OR-RRRC"},
        {"unit": "mixed", "frac": "100", "score": "corrected", "contrast": "seg112 - full", "estimate": 0.1,
         "se": 0.05, "df": 6.0, "ci_low": -0.02, "ci_high": 0.22, "ci_level": 0.95, "p": 0.08,
         "note": "per-(patient, model)"},
        {"unit": "network", "frac": "100", "score": "corrected", "contrast": "seg112 - full",
         "estimate": 0.5, "ci_low": 0.1, "ci_high": 0.9, "p": 0.001, "note": ""}])


def test_holm_levels_by_hand():
    from anapart.report.primary import holm_levels

    assert holm_levels([0.01, 0.03], 0.05) == pytest.approx([0.025, 0.05])  # first shown: second at alpha
    assert holm_levels([0.03, 0.01], 0.05) == pytest.approx([0.05, 0.025])
    assert holm_levels([0.04, 0.03], 0.05) == pytest.approx([0.025, 0.025])  # first not shown: stop
    assert holm_levels([np.nan, 0.01], 0.05) == pytest.approx([0.05, 0.025])
    assert holm_levels([0.001, 0.02, 0.03], 0.05) == pytest.approx([0.05 / 3, 0.025, 0.05])


def test_co_primaries_by_holm_with_intervals_at_the_level_judged_and_a_verdict_that_agrees():
    from scipy import stats

    t = primary_table(_mrmc(), PRIMARY, cam_tests=_cam(p=0.03))
    prim = t[t["role"].str.startswith("primary")]
    assert list(prim["role"]) == ["primary", "primary (interpretability)"]
    # discrimination p 0.002 is first (judged at 0.025, shown), Grad-CAM p 0.03 then at 0.05 (shown)
    assert list(prim["alpha"]) == pytest.approx([0.025, 0.05]) and list(prim["ci_level"]) == pytest.approx([0.975, 0.95])
    first = prim.iloc[0]
    q = stats.t.ppf(0.9875, 6)
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((0.08 - q * 0.02, 0.08 + q * 0.02))
    assert list(prim["verdict"]) == ["shown at alpha 0.025", "shown at alpha 0.05"]
    assert prim.iloc[1]["analysis"] == "OR-RRRC"
    sens = t[t["role"] == "sensitivity"]
    assert list(sens["analysis"]) == ["mixed model"] and sens.iloc[0]["ci_level"] == pytest.approx(0.95)
    text = headline(t)
    assert "97.5% CI" in text and "shown at alpha 0.025" in text
    # the demo's contradiction: p = 0.0317 at alpha 0.025 has a 97.5% interval that holds 0
    mrmc = _mrmc()
    est, df = 0.268, 6.0
    se = est / stats.t.isf(0.0317 / 2, df)
    sel = (mrmc["frac"] == 25) & (mrmc["analysis"] == "RRRC") & (mrmc["contrast"] == "full - seg112")
    mrmc.loc[sel, ["estimate", "se", "df2", "p", "ci_low", "ci_high"]] = [-est, se, df, 0.0317, -est - 2.447 * se,
                                                                         -est + 2.447 * se]
    row = primary_table(mrmc, PRIMARY, cam_tests=_cam(p=0.2)).iloc[0]
    assert row["alpha"] == 0.025 and row["verdict"] == "not shown at alpha 0.025"
    assert row["ci_low"] < 0 < row["ci_high"] and row["ci_level"] == pytest.approx(0.975)


def test_a_cam_fit_without_p_says_why_and_a_missing_primary_says_so():
    failed = _cam().assign(p=np.nan, ci_low=np.nan, ci_high=np.nan, se=np.nan,
                           note="no p-value: denominator is not > 0; more")
    t = primary_table(_mrmc(), PRIMARY, cam_tests=failed)
    text = headline(t)
    assert "+0.120, no p-value (denominator is not > 0)" in text
    assert t.iloc[1]["verdict"].startswith("no test") and t.iloc[0]["alpha"] == 0.025
    missing = primary_table(_mrmc(), {**PRIMARY, "fraction": 50, "cam_score": None})
    assert np.isnan(missing.iloc[0]["estimate"]) and "not in results/tables/mrmc.csv" in missing.iloc[0]["note"]
    assert "no estimate" in headline(missing)


def test_the_interaction_is_a_secondary_or_a_third_co_primary():
    mrmc = pd.concat([_mrmc(), pd.DataFrame([{"frac": 25, "figure": "aauc", "analysis": "RRRC",
                                              "contrast": "(seg112 - full)@25 - (seg112 - full)@100",
                                              "estimate": 0.05, "se": 0.02, "df2": 9.0, "p": 0.034,
                                              "ci_low": 0.005, "ci_high": 0.095, "ci_level": 0.95}])],
                     ignore_index=True)
    t = primary_table(mrmc, PRIMARY, cam_tests=_cam(p=0.2), interaction="secondary")
    row = t[t["role"] == "secondary (data cost)"].iloc[0]
    assert row["estimate"] == 0.05 and row["ci_level"] == 0.95 and row["contrast"].startswith("(seg112 - full)@25")
    assert (t["role"] == "secondary").sum() == 5  # the family is unchanged
    t = primary_table(mrmc, PRIMARY, cam_tests=_cam(p=0.2), interaction="co-primary")
    prim = t[t["role"].str.startswith("primary")]
    # p: 0.002 (at 0.05/3, shown), 0.034 (at 0.025, not shown), 0.2 (at 0.025)
    assert list(prim["alpha"]) == pytest.approx([0.05 / 3, 0.025, 0.025])
    assert list(prim["verdict"]) == ["shown at alpha 0.01667", "not shown at alpha 0.025", "not shown at alpha 0.025"]


def test_a_declared_interaction_without_an_estimate_still_counts_in_holms_family():
    t = primary_table(_mrmc(), PRIMARY, cam_tests=_cam(p=0.2), interaction="co-primary")  # no interaction row
    prim = t[t["role"].str.startswith("primary")]
    assert len(prim) == 3 and np.isnan(prim[prim["role"] == "primary (data cost)"].iloc[0]["estimate"])
    # three endpoints: the smallest p (0.002) is judged at 0.05 / 3, not at 0.05 / 2
    assert prim.iloc[0]["alpha"] == pytest.approx(0.05 / 3)


def test_the_front_page_starts_with_the_result():
    page = front_page("primary: x +0.1.", "anapart rebuilds ...")
    assert page.startswith("**Primary endpoint**") and page.endswith("anapart rebuilds ...")
