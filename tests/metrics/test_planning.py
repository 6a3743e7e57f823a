"""results/tables/sample_size.csv (anapart.metrics.planning): each row is the power module's answer on
the two-format OR analysis of the run's own predictions; study B's row is Connor's formula on the
primary claim's discordant counts; the front-page sentence states the primary's row."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from anapart.metrics.mrmc import mean_ovr_auc, or_analysis
from anapart.metrics.planning import sentence, study_a_table, study_b_rows
from anapart.metrics.power import Components, cases_for_power

CLASSES = ["a", "b", "c"]
PLAN = {"effect": 0.05, "targets": [0.8, 0.9], "networks": [4, 6], "alpha": 0.05, "max_patients": 3000}
PRIMARY = {"contrast": "seg112 - full", "fraction": 25, "figure": "aauc", "analysis": "RRRC", "cam_score": None}


def _preds(seed=0, n_patients=24, nets=("n1", "n2", "n3"), formats=("full", "seg112", "seg224"), fracs=(25,)):
    rng = np.random.default_rng(seed)
    labels = np.array(CLASSES)[np.arange(n_patients) % 3]
    slices = [(f"P{i:02d}_{k}", f"P{i:02d}", labels[i]) for i in range(n_patients) for k in range(2)]
    patient_of = pd.Series({s: p for s, p, _ in slices})
    preds = {}
    for net, fmt, frac in ((n, f, r) for n in nets for f in formats for r in fracs):
        strength = {"full": 1.0, "seg112": 1.6, "seg224": 1.3}[fmt] + rng.normal(0, 0.2)
        logits = np.array([[strength * (lab == c) + rng.normal() for c in CLASSES] for _, _, lab in slices])
        prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        preds[(net, fmt, frac)] = pd.DataFrame({"slice_id": [s for s, _, _ in slices], "label": [lab for *_, lab in slices],
                                                **{f"p_{c}": prob[:, i] for i, c in enumerate(CLASSES)}})
    return preds, patient_of


def test_study_a_rows_are_the_power_of_the_two_format_pilot():
    preds, patient_of = _preds()
    t = study_a_table(preds, patient_of, CLASSES, PRIMARY, PLAN, source="single split", primary_alpha=0.025)
    first = t.iloc[0]
    assert (first["role"], first["contrast"], first["frac"], first["alpha"]) == ("primary", "seg112 - full", 25, 0.025)
    assert (t["role"] == "primary").sum() == 2 * 3 * 2  # 2 effects x networks {3, 4, 6} x 2 targets
    assert set(t.loc[t["role"] == "secondary", "alpha"]) == {0.05} and set(t["networks"]) == {3, 4, 6}
    assert len(t) == 3 * 12  # 3 format pairs
    # the oracle: the primary's pilot by a direct OR analysis of seg112 and full at 25%
    rows = [p.assign(reader=n, modality=f, case=p["slice_id"].map(patient_of)) for (n, f, r), p in preds.items()
            if r == 25 and f in ("seg112", "full")]
    fit = or_analysis(pd.concat(rows), truth="label", score=None, case_truth=False,
                      fom=mean_ovr_auc("label", {c: f"p_{c}" for c in CLASSES}))
    c = fit["components"]
    comp = Components(c["MS(T:R)"] - c["Var"] + c["Cov1"] + max(c["Cov2"] - c["Cov3"], 0), c["Var"], c["Cov1"],
                      c["Cov2"], c["Cov3"], 24)
    observed = fit["fom"].loc["seg112"].mean() - fit["fom"].loc["full"].mean()
    for _, r in t[t["role"] == "primary"].iterrows():
        effect = observed if r["effect_kind"] == "observed" else 0.05
        assert r["effect"] == pytest.approx(effect) and r["pilot_patients"] == 24 and r["pilot_networks"] == 3
        ref = cases_for_power(comp, int(r["networks"]), r["target_power"], effect, 0.025, "RRRC", 3000)
        assert r["reachable"] == ref["reachable"]
        if ref["reachable"]:
            assert r["patients_needed"] == ref["cases"] and r["power_at_needed"] == pytest.approx(ref["power"])
        else:
            assert r["max_power"] == pytest.approx(ref["max_power"]) and r["at_patients"] == ref["at_cases"]
    s = sentence(t, networks=4, target=0.8)
    row = t[(t["role"] == "primary") & (t["effect_kind"] == "declared") & (t["networks"] == 4)
            & (t["target_power"] == 0.8)].iloc[0]
    assert s.startswith("To detect +0.05 aAUC (seg112 - full, 25% of the training data, RRRC, alpha 0.025) with 80% power")
    assert (f"{int(row['patients_needed'])} test patients with 4 networks" in s if row["reachable"]
            else "not reachable with 4 networks" in s)


def test_study_b_primary_claim_by_connor():
    claims = pd.DataFrame([
        {"role": "primary", "a": "ensemble", "b": "vgg16", "test": "exact McNemar (per-patient calls)",
         "n_patients": 20, "a_only": 5, "b_only": 1, "estimate": 0.2},
        {"role": "secondary", "a": "x", "b": "y", "test": "exact McNemar (per-patient calls)", "n_patients": 20,
         "a_only": 9, "b_only": 0}])
    t = study_b_rows(claims, [0.8, 0.9])
    assert list(t["target_power"]) == [0.8, 0.9] and (t["study"] == "B").all()
    psi, d = 6 / 20, 4 / 20
    for _, r in t.iterrows():
        zb = stats.norm.ppf(r["target_power"])
        n = (stats.norm.ppf(0.975) * math.sqrt(psi) + zb * math.sqrt(psi - d * d)) ** 2 / d ** 2
        assert r["patients_needed"] == math.ceil(n) and r["effect"] == pytest.approx(d)
        assert abs(r["power_at_needed"] - r["target_power"]) < 0.1
    for b_only in (5, 7):  # no difference, or one against the claim "a better than b": nothing to plan
        none = study_b_rows(claims.assign(b_only=[b_only, 0]), [0.8])
        assert not none.iloc[0]["reachable"] and pd.isna(none.iloc[0]["patients_needed"])
    # an AUC claim: n = n* ((z_.975 + z_.8) SE / d)^2 with SE from the paired DeLong row's 95% interval
    auc = pd.DataFrame([
        {"role": "primary", "a": "ensemble", "b": "vgg16", "test": "paired permutation (AUC ...)", "n_patients": 20},
        {"role": "sensitivity", "a": "ensemble", "b": "vgg16", "test": "paired DeLong (AUC ...)", "n_patients": 20,
         "estimate": 0.1, "ci_low": 0.1 - 1.959963985 * 0.08, "ci_high": 0.1 + 1.959963985 * 0.08}])
    r = study_b_rows(auc, [0.8]).iloc[0]
    assert r["patients_needed"] == math.ceil(20 * ((1.959963985 + 0.841621234) * 0.08 / 0.1) ** 2)
