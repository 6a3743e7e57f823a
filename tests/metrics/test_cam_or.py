"""The Grad-CAM co-primary as OR-RRRC (anapart.metrics.cam_stats.or_tests) against the generic
OR analysis with a mean FOM and a patient jackknife (anapart.metrics.mrmc.or_analysis)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from anapart.metrics.cam_stats import cam_tests, or_tests, patient_means
from anapart.metrics.mrmc import or_analysis
from metrics.test_cam_stats import _slice_scores


def _long(scores):
    frames = [s.assign(net=n, fmt=f, frac=fr) for (n, f, fr), s in scores.items()]
    long = pd.concat(frames, ignore_index=True)
    long["patient"] = long["slice_id"].str.split("_").str[0]
    return long


def test_or_rrrc_of_cam_scores_is_the_generic_or_analysis_of_patient_means():
    long = _long(_slice_scores(seed=5, patients=8))
    table = or_tests(long, [("seg112", "full")], scores=("corrected",), alpha=0.025)
    row = table.iloc[0]
    m = patient_means(long, "corrected")
    m = m[m["fmt"].isin(["seg112", "full"])]
    fit = or_analysis(m, reader="net", modality="fmt", case="patient", truth=None, score=None,
                      fom=lambda f: float(f["corrected"].mean()), alpha=0.025)
    pair = fit["rrrc"]["pairs"].iloc[0]  # modalities sorted: full - seg112
    assert row["estimate"] == pytest.approx(-pair["estimate"], abs=1e-12)
    assert row["se"] == pytest.approx(pair["se"], rel=1e-9) and row["df"] == pytest.approx(pair["df"])
    assert row["p"] == pytest.approx(pair["p"], rel=1e-9)
    assert row["ci_low"] == pytest.approx(-pair["ci_high"]) and row["ci_level"] == 0.975
    assert row["unit"] == "OR-RRRC" and row["n"] == 8


def test_or_rrrc_answers_where_the_mixed_model_withholds_its_p():
    """Networks that agree exactly (no network x format variation): the mixed model's judged
    component sits on the boundary and it gives no p; the OR analysis still does."""
    scores = _slice_scores(seed=2, patients=8, nf_sd=0.0)
    ids = pd.concat([s["slice_id"] for s in scores.values()]).unique()
    patient_of = pd.Series([i.split("_")[0] for i in ids], index=ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = cam_tests(scores, patient_of, ["full", "seg112", "seg224"])
    mixed = t[(t["unit"] == "mixed") & (t["score"] == "corrected")]
    assert mixed["p"].isna().all() and mixed["note"].str.startswith("no p-value").all()
    orr = t[(t["unit"] == "OR-RRRC") & (t["score"] == "corrected")]
    assert len(orr) == 3 and orr["p"].notna().all()
    assert set(t["unit"]) >= {"OR-RRRC", "mixed", "network", "paper"} and t["ci_level"].notna().all()


def test_too_few_patients_give_a_reason_not_a_p():
    long = _long(_slice_scores(seed=1, patients=2))
    row = or_tests(long, [("seg112", "full")], scores=("corrected",)).iloc[0]
    assert np.isnan(row["p"]) and "needs" in row["note"]
