"""The declared primary endpoint (anapart.report.primary): the right row found in either
orientation, the secondary family Holm-adjusted as statsmodels does it, replicates first."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from anapart.report.primary import front_page, headline, primary_table

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
                             "ci_low": est - 0.05, "ci_high": est + 0.03,
                             "p": next(p) if analysis == "RRRC" else 0.5, "reason": None})
    rows.append({"frac": 25, "figure": "auc_NPC", "analysis": "RRRC", "contrast": "full - seg112", "estimate": 0.3,
                 "ci_low": 0.1, "ci_high": 0.5, "p": 0.001, "reason": None})
    return pd.DataFrame(rows)


def test_the_primary_row_is_turned_round_and_the_rest_is_one_holm_family():
    t = primary_table(_mrmc(), PRIMARY)
    first = t.iloc[0]
    assert first["role"] == "primary" and first["contrast"] == "seg112 - full" and first["frac"] == 25
    # mrmc.csv has full - seg112 = -0.08 (CI -0.13 to -0.05): seg112 - full is +0.08 (CI 0.05 to 0.13)
    assert first["estimate"] == pytest.approx(0.08) and (first["ci_low"], first["ci_high"]) == pytest.approx((0.05, 0.13))
    assert first["p"] == pytest.approx(0.002) and np.isnan(first["p_holm_family"])
    sec = t[t["role"] == "secondary"]
    # every other RRRC aAUC pair at every fraction: 3 at 100%, 2 at 25%; not FRRC, not other figures
    assert len(sec) == 5 and set(sec["analysis"]) == {"RRRC"} and set(sec["figure"]) == {"aauc"}
    assert sec["p_holm_family"].to_numpy() == pytest.approx(multipletests(sec["p"], method="holm")[1])


def test_with_replicates_the_pooled_analysis_is_primary_and_the_single_split_secondary():
    spread = pd.DataFrame([{"frac": 25, "figure": "aauc", "analysis": "RRRC", "contrast": "full - seg112",
                            "estimate": -0.05, "ci_low": -0.09, "ci_high": -0.01, "p": 0.01, "p_holm": 0.03,
                            "n_replicates": 6, "mean_over_replicates": -0.04, "sd_over_repeats": 0.02,
                            "sd_over_seeds": 0.015, "reason": np.nan}])
    t = primary_table(_mrmc(), PRIMARY, spread=spread)
    assert t.iloc[0]["source"].startswith("results/replicates/") and t.iloc[0]["estimate"] == pytest.approx(0.05)
    single = t[(t["role"] == "secondary") & (t["frac"] == 25) & (t["contrast"] == "seg112 - full")]
    assert len(single) == 1 and single.iloc[0]["estimate"] == pytest.approx(0.08)
    text = headline(t)
    assert "primary: seg112 - full (aauc, RRRC, 25% of the training set) +0.050, 95% CI +0.010 to +0.090, p = 0.01" \
        in text and "SD over seeds 0.015; SD over repeats 0.020" in text


def test_a_cam_endpoint_without_a_p_value_says_why_and_a_missing_contrast_is_named():
    cam = pd.DataFrame([{"unit": "mixed", "frac": "100", "score": "corrected", "contrast": "seg112 - full",
                         "estimate": 0.12, "p": np.nan,
                         "note": "no p-value: variance component network:format on the boundary (~0); more"}])
    t = primary_table(_mrmc(), PRIMARY, cam_tests=cam)
    row = t[t["role"] == "primary (interpretability)"].iloc[0]
    assert row["estimate"] == 0.12 and np.isnan(row["p"])
    assert "-> no p-value (variance component network:format on the boundary (~0))" in "-> " + headline(t).split("+0.120, ")[1]
    t = primary_table(_mrmc(), {**PRIMARY, "fraction": 50})
    assert np.isnan(t.iloc[0]["estimate"]) and "not in results/tables/mrmc.csv" in t.iloc[0]["note"]
    assert "no estimate" in headline(t)


def test_the_front_page_starts_with_the_result():
    page = front_page("primary: x +0.1.", "anapart rebuilds ...")
    assert page.startswith("**Primary endpoint**") and page.endswith("anapart rebuilds ...")
