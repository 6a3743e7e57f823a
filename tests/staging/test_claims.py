"""Study B per patient (anapart.staging.claims): exact intervals (scipy's beta quantiles), the
claims' paired tests against statsmodels and the DeLong module, Holm over the secondary claims."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from anapart.metrics.intervals import paired_delong
from anapart.staging.claims import best_single, claims, claims_table, metrics_table, patient_level

STAGES = ["III", "IVa"]


def _preds(p_iva_per_patient, labels, patches=2, seed=0):
    """Patch predictions: each patient's patches scatter around the patient's IVa probability."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (p, lab) in enumerate(zip(p_iva_per_patient, labels)):
        for k in range(patches):
            q = float(np.clip(p + rng.normal(0, 0.01), 0.001, 0.999))
            rows.append({"slice_id": f"P{i:02d}_{k}", "label": lab, "p_III": 1 - q, "p_IVa": q, "patient": f"P{i:02d}"})
    return pd.DataFrame(rows)


LABELS = ["IVa"] * 7 + ["III"] * 7


def test_fourteen_of_fourteen_has_the_exact_interval_not_a_point():
    perfect = _preds([0.9] * 7 + [0.1] * 7, LABELS)
    t = metrics_table({"ensemble": perfect}, STAGES, n_boot=200, seed=0)
    acc = t[(t["unit"] == "patient") & (t["metric"] == "accuracy")].iloc[0]
    assert (acc["value"], acc["k"], acc["n"]) == (1.0, 14, 14)
    assert acc["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 14, 1)) and acc["ci_high"] == 1.0
    assert acc["ci_low"] == pytest.approx(0.768, abs=5e-4) and acc["interval"] == "Clopper-Pearson"
    sens = t[(t["unit"] == "patient") & (t["metric"] == "sensitivity") & (t["stage"] == "IVa")].iloc[0]
    assert sens["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 7, 1))  # 7 of 7: 0.590
    f1 = t[(t["unit"] == "patient") & (t["metric"] == "f1") & (t["stage"] == "IVa")].iloc[0]
    assert f1["value"] == 1.0 and np.isnan(f1["ci_low"]) and f1["interval"].startswith("none: every bootstrap")
    auc = t[(t["unit"] == "patient") & (t["metric"] == "auc")].iloc[0]
    # a perfect AUC: the conservative exact bound on min(7, 7) comparisons, labelled as such
    assert auc["value"] == 1.0 and auc["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 7, 1)) and auc["ci_high"] == 1.0
    assert auc["interval"].startswith("exact bound on min(n1, n0)")
    patch = t[t["unit"] == "patch"]
    assert patch["ci_low"].isna().all() and patch[patch["metric"] == "accuracy"]["n"].iloc[0] == 28


def test_per_stage_counts_are_the_confusion_matrix_by_hand():
    # 7 IVa patients, 5 called IVa; 7 III patients, 2 called IVa
    p = [0.9] * 5 + [0.2] * 2 + [0.8] * 2 + [0.1] * 5
    t = metrics_table({"m": _preds(p, LABELS)}, STAGES, n_boot=100, seed=0, tnm={"P00": "IVa", "P07": "III"},
                      tnm_simulated=True)
    pt = t[(t["unit"] == "patient") & (t["method"] == "m")].set_index(["metric", "stage"])
    assert (pt.loc[("sensitivity", "IVa"), "k"], pt.loc[("sensitivity", "IVa"), "n"]) == (5, 7)
    assert (pt.loc[("specificity", "IVa"), "k"], pt.loc[("specificity", "IVa"), "n"]) == (5, 7)
    assert (pt.loc[("precision", "IVa"), "k"], pt.loc[("precision", "IVa"), "n"]) == (5, 7)
    assert pt.loc[("f1", "IVa"), "value"] == pytest.approx(2 * 5 / (2 * 5 + 2 + 2))
    assert pt.loc[("accuracy", ""), "value"] == pytest.approx(10 / 14)
    lo, hi = pt.loc[("accuracy", ""), ["ci_low", "ci_high"]]
    assert (lo, hi) == pytest.approx((stats.beta.ppf(0.025, 10, 5), stats.beta.ppf(0.975, 11, 4)))
    tnm = t[t["method"] == "TNM staging"]
    assert tnm["simulated"].all() and not t[t["method"] == "m"]["simulated"].any()
    assert "auc" not in set(tnm["metric"]) and tnm[(tnm["unit"] == "patient") & (tnm["metric"] == "accuracy")]["n"].iloc[0] == 2


def test_claims_are_the_papers_among_the_methods_run():
    names = ["vgg16", "resnet50", "basic_cnn", "ensemble", "radiomics", "ablation/vgg16", "TNM staging"]
    got = claims(names, ["vgg16", "resnet50"], main="clahe")
    assert ("CLAHE better than raw: vgg16", "CLAHE (Table 3)", "vgg16", "ablation/vgg16") in got
    assert not any(c[0] == "CLAHE better than raw: resnet50" for c in got)  # no raw arm for it
    assert [c[2:] for c in got if c[1] == "transfer learning"] == [("vgg16", "basic_cnn"), ("resnet50", "basic_cnn")]
    assert [c[3] for c in got if c[1] == "ensemble vs single models"] == ["vgg16", "resnet50", "basic_cnn"]
    assert [c[3] for c in got if c[1].startswith("ensemble vs baselines")] == ["radiomics", "TNM staging"]
    raw_main = claims(names, ["vgg16"], main="raw")  # the ablation arm is then the CLAHE one
    assert raw_main[0][2:] == ("ablation/vgg16", "vgg16")


def test_claims_tests_match_statsmodels_and_delong_and_holm_covers_the_secondary_rows():
    rng = np.random.default_rng(4)
    truth_p = np.r_[np.full(7, 0.7), np.full(7, 0.3)]
    preds = {name: _preds(np.clip(truth_p + rng.normal(0, s, 14), 0.01, 0.99), LABELS, seed=i)
             for i, (name, s) in enumerate([("ensemble", 0.15), ("vgg16", 0.3), ("basic_cnn", 0.35)])}
    patients = patient_level(preds, STAGES)
    cl = claims(patients, ["vgg16"], main="clahe")
    t = claims_table(patients, STAGES, cl, ("ensemble", "vgg16", "mcnemar"))
    assert t.iloc[0]["role"] == "primary" and t.iloc[0]["b"] == "vgg16" and t.iloc[0]["test"].startswith("exact McNemar")
    assert np.isnan(t.iloc[0]["p_holm"])
    ens, vgg = patients["ensemble"].set_index("patient"), patients["vgg16"].set_index("patient")
    ok_a, ok_b = ens["predicted"] == ens["label"], vgg["predicted"] == vgg["label"]
    table = [[int((ok_a & ok_b).sum()), int((ok_a & ~ok_b).sum())], [int((~ok_a & ok_b).sum()), int((~ok_a & ~ok_b).sum())]]
    assert t.iloc[0]["p"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    d = t[(t["a"] == "ensemble") & (t["b"] == "vgg16") & t["test"].str.startswith("paired DeLong")].iloc[0]
    ref = paired_delong(ens["label"] == "IVa", ens["p_IVa"], vgg["p_IVa"])
    assert d["p"] == pytest.approx(ref["p"]) and d["estimate"] == pytest.approx(ref["diff"])
    sec = t[t["role"] == "secondary"]
    # every row but the primary and the small-sample sensitivity rows (mid-p, permutation) is secondary
    assert len(sec) == (t["role"] != "sensitivity").sum() - 1 and sec["p_holm"].to_numpy() == pytest.approx(
        multipletests(sec["p"], method="holm")[1])
    marked = claims_table(patients, STAGES, cl, None, simulated={"basic_cnn"})
    assert (marked["simulated"] == ((marked["a"] == "basic_cnn") | (marked["b"] == "basic_cnn"))).all()
    assert marked["simulated"].any() and marked["role"].isin(["secondary", "sensitivity"]).all()
    assert (marked["role"] == "sensitivity").sum() == marked["test"].str.startswith(("mid-p", "paired permutation")).sum()
    with pytest.raises(ValueError, match="no claim 'ensemble' better than 'radiomics'"):
        claims_table(patients, STAGES, cl, ("ensemble", "radiomics", "mcnemar"))


def test_best_single_is_chosen_on_validation_accuracy():
    h = {"vgg16": pd.DataFrame({"val_accuracy": [0.5, 0.7]}), "resnet50": pd.DataFrame({"val_accuracy": [0.9, 0.7]}),
         "basic_cnn": pd.DataFrame({"val_accuracy": [0.6, 0.8]})}
    assert best_single(h, ["vgg16", "resnet50", "basic_cnn"]) == ("basic_cnn", 0.8)  # the last epoch's
    assert best_single(h, ["vgg16", "resnet50"])[0] == "vgg16"  # a tie: the first in config order
    with pytest.raises(ValueError, match="needs validation patients"):
        best_single({"vgg16": pd.DataFrame({"epoch": [1]})}, ["vgg16"])


def _two_arms(rng, nets, n=16):
    labels = ["IVa"] * (n // 2) + ["III"] * (n // 2)
    truth_p = np.r_[np.full(n // 2, 0.65), np.full(n // 2, 0.35)]
    preds = {}
    for i, m in enumerate(nets):
        preds[m] = _preds(np.clip(truth_p + rng.normal(0, 0.2, n), 0.01, 0.99), labels, seed=i)
        preds[f"ablation/{m}"] = _preds(np.clip(truth_p + rng.normal(0, 0.3, n), 0.01, 0.99), labels, seed=10 + i)
    preds["ensemble"] = _preds(np.clip(truth_p + rng.normal(0, 0.15, n), 0.01, 0.99), labels, seed=99)
    return preds


def test_small_sample_rows_and_the_clahe_or_analysis():
    """Mid-p McNemar by hand (exact p - P(X = min)); the permutation row equals the metrics function;
    both are 'sensitivity' rows outside Holm; CLAHE vs raw as one OR-RRRC analysis over the networks,
    the estimate the network-averaged AUC difference by sklearn, p as or_analysis on the long table."""
    from sklearn.metrics import roc_auc_score

    from anapart.metrics.intervals import paired_permutation_auc
    from anapart.metrics.mrmc import or_analysis

    rng = np.random.default_rng(5)
    nets = ["vgg16", "resnet50", "densenet121"]
    patients = patient_level(_two_arms(rng, nets), STAGES)
    cl = claims(patients, nets, main="clahe")
    t = claims_table(patients, STAGES, cl, ("ensemble", "vgg16", "mcnemar"), models=nets, main="clahe")
    for _, r in t[t["test"].str.startswith("mid-p")].iterrows():
        n, k = r["a_only"] + r["b_only"], min(r["a_only"], r["b_only"])
        exact = min(1.0, 2 * stats.binom.cdf(k, n, 0.5)) if n else 1.0
        mid = min(1.0, 2 * stats.binom.cdf(k, n, 0.5) - stats.binom.pmf(k, n, 0.5)) if n else 1.0
        assert r["p"] == pytest.approx(mid) and r["p"] <= exact and r["role"] == "sensitivity"
        assert np.isnan(r["p_holm"])
    perm = t[t["test"].str.startswith("paired permutation")]
    assert len(perm) == len(t[t["test"].str.startswith("paired DeLong")]) and (perm["role"] == "sensitivity").all()
    row = perm[(perm["a"] == "vgg16") & (perm["b"] == "ablation/vgg16")].iloc[0]
    a, b = patients["vgg16"].set_index("patient"), patients["ablation/vgg16"].set_index("patient").loc[
        patients["vgg16"]["patient"]]
    ref = paired_permutation_auc(a["label"] == "IVa", a["p_IVa"], b["p_IVa"])
    assert row["p"] == pytest.approx(ref["p"]) and ref["exact"]
    sec = t[t["role"] == "secondary"]
    assert sec["p_holm"].to_numpy() == pytest.approx(multipletests(sec["p"], method="holm")[1])
    orow = t[t["test"].str.startswith("OR-RRRC")]
    assert len(orow) == 1 and orow.iloc[0]["role"] == "secondary" and orow.iloc[0]["family"] == "CLAHE (Table 3)"
    orow = orow.iloc[0]
    auc = {arm: np.mean([roc_auc_score(patients[n]["label"] == "IVa", patients[n]["p_IVa"])
                         for n in (nets if arm == "clahe" else [f"ablation/{m}" for m in nets])])
           for arm in ("clahe", "raw")}
    assert orow["estimate"] == pytest.approx(auc["clahe"] - auc["raw"]) and orow["ci_low"] < orow["estimate"] < orow["ci_high"]
    long = pd.concat([patients[n].assign(reader=m, modality=arm, truth=lambda f: (f["label"] == "IVa").astype(int))
                      for m in nets for arm, n in (("clahe", m), ("raw", f"ablation/{m}"))])
    fit = or_analysis(long, reader="reader", modality="modality", case="patient", truth="truth", score="p_IVa")
    assert orow["p"] == pytest.approx(fit["rrrc"]["test"]["p"]) and orow["n_patients"] == 16
    # fewer than two networks with both arms: no OR row
    one = claims_table(patients, STAGES, cl, None, models=["vgg16"])
    assert not one["test"].str.startswith("OR-RRRC").any()
    # the primary may be declared on a small-sample test
    mp = claims_table(patients, STAGES, cl, ("ensemble", "vgg16", "mid_p"))
    assert mp.iloc[0]["role"] == "primary" and mp.iloc[0]["test"].startswith("mid-p")
