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
                             "ci_low": est - 0.05, "ci_high": est + 0.03,
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
                         "ci_low": est - 0.04, "ci_high": est + 0.04, "p": p, "p_holm": p, "n_replicates": 6,
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
    assert "primary: seg112 - full (aauc, RRRC, 25% of the training set) +0.050, 95% CI +0.010 to +0.090, p = 0.01" \
        in text and "SD over seeds 0.015; SD over repeats 0.020" in text


def test_two_primary_endpoints_share_alpha_and_a_cam_fit_without_p_says_why():
    cam = pd.DataFrame([{"unit": "mixed", "frac": "100", "score": "corrected", "contrast": "seg112 - full",
                         "estimate": 0.12, "ci_low": 0.02, "ci_high": 0.22, "p": 0.03, "note": "per-(patient, model)"},
                        {"unit": "network", "frac": "100", "score": "corrected", "contrast": "seg112 - full",
                         "estimate": 0.5, "ci_low": 0.1, "ci_high": 0.9, "p": 0.001, "note": ""}])
    t = primary_table(_mrmc(), PRIMARY, cam_tests=cam)
    prim = t[t["role"].str.startswith("primary")]
    assert list(prim["role"]) == ["primary", "primary (interpretability)"] and (prim["alpha"] == 0.025).all()
    row = prim.iloc[1]
    assert (row["estimate"], row["ci_low"], row["ci_high"], row["p"]) == (0.12, 0.02, 0.22, 0.03)  # the mixed row
    assert "p = 0.03 (judged at alpha 0.025: two primary endpoints)" in headline(t)
    failed = cam.assign(p=np.nan, ci_low=np.nan, ci_high=np.nan,
                        note="no p-value: variance component network:format on the boundary (~0); more")
    text = headline(primary_table(_mrmc(), PRIMARY, cam_tests=failed))
    assert "+0.120, no p-value (variance component network:format on the boundary (~0))" in text
    missing = primary_table(_mrmc(), {**PRIMARY, "fraction": 50, "cam_score": None})
    assert np.isnan(missing.iloc[0]["estimate"]) and "not in results/tables/mrmc.csv" in missing.iloc[0]["note"]
    assert "no estimate" in headline(missing)


def test_the_front_page_starts_with_the_result():
    page = front_page("primary: x +0.1.", "anapart rebuilds ...")
    assert page.startswith("**Primary endpoint**") and page.endswith("anapart rebuilds ...")
