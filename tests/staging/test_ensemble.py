"""Study B's stage two and evaluation (anapart.staging.ensemble): soft voting, per-stage scores against
scikit-learn, the paper's tables, and the per-patient table against scipy/statsmodels and hand counts."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from anapart.metrics.evaluate import patient_weights, percentile_ci, predicted
from anapart.staging.ensemble import (accuracy_ci, evaluate_stages, mcnemar_p, patient_predictions, patient_table,
                                      soft_vote, stage_metrics, table_by_stage, table_preprocessing, tnm_metrics)

STAGES = ["III", "IVa"]


def test_soft_voting_against_hand_computed_probabilities():
    ids = ["a", "b", "c"]
    labels = ["III", "IVa", "IVa"]
    m1 = pd.DataFrame({"slice_id": ids, "label": labels, "p_III": [0.9, 0.1, 0.2], "p_IVa": [0.1, 0.9, 0.8]})
    m2 = pd.DataFrame({"slice_id": ids, "label": labels, "p_III": [0.3, 0.55, 0.6], "p_IVa": [0.7, 0.45, 0.4]})
    m3 = pd.DataFrame({"slice_id": ids, "label": labels, "p_III": [0.6, 0.55, 0.1], "p_IVa": [0.4, 0.45, 0.9]})
    out = soft_vote([m1, m2, m3], STAGES)
    # Eq. (1) by hand: a (0.9+0.3+0.6)/3, b (0.1+0.55+0.55)/3, c (0.2+0.6+0.1)/3
    assert out["p_III"].tolist() == pytest.approx([0.6, 0.4, 0.3])
    assert out["p_IVa"].tolist() == pytest.approx([0.4, 0.6, 0.7])
    # Eq. (2): argmax. For b two of three models say III (a hard vote would), but m1 is confident: IVa
    assert list(predicted(out, STAGES)) == ["III", "IVa", "IVa"]
    assert list(out.columns) == list(m1.columns)
    with pytest.raises(ValueError, match="same patches"):
        soft_vote([m1, m2.iloc[::-1]], STAGES)


def test_metrics_match_scikit_learn_on_known_labels():
    y = np.array(["III"] * 6 + ["IVa"] * 4)
    p = np.array(["III", "III", "III", "IVa", "IVa", "III", "IVa", "IVa", "III", "IVa"])
    m = stage_metrics(y, p, STAGES)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p)) == pytest.approx(0.7)
    for c in STAGES:
        assert m["per_class"][c]["precision"] == pytest.approx(precision_score(y, p, pos_label=c))
        assert m["per_class"][c]["sensitivity"] == pytest.approx(recall_score(y, p, pos_label=c))
        assert m["per_class"][c]["f1"] == pytest.approx(f1_score(y, p, pos_label=c))
    assert m["confusion"] == confusion_matrix(y, p, labels=STAGES).tolist() == [[4, 2], [1, 3]]
    # by hand: III precision 4/5, sensitivity 4/6; IVa precision 3/5, sensitivity 3/4
    assert m["per_class"]["III"]["precision"] == pytest.approx(0.8)
    assert m["per_class"]["IVa"]["sensitivity"] == pytest.approx(0.75)


def test_tables_have_the_papers_rows():
    y = ["III", "IVa", "IVa", "III"]
    m = stage_metrics(y, ["III", "IVa", "III", "III"], STAGES)
    t3 = table_preprocessing({"vgg16": m, "resnet50": m}, {"vgg16": m, "resnet50": m}, "IVa")
    assert list(t3.columns) == ["model", "clahe", "precision", "sensitivity", "f1", "accuracy"]
    assert t3["clahe"].tolist() == [False, True, False, True]
    t4 = table_by_stage({"basic_cnn": m, "vgg16": m, "ensemble": m}, STAGES)
    assert len(t4) == 6 and t4["stage"].tolist()[:3] == ["III"] * 3
    idx = pd.DataFrame({"slice_id": ["a", "b", "c", "d"], "tnm_stage": ["III", "IVa", "", "III"]})
    test = pd.DataFrame({"slice_id": ["a", "b", "c", "d"], "label": y})
    tnm = tnm_metrics(idx, test, STAGES)
    assert tnm["n"] == 3 and tnm["accuracy"] == pytest.approx(1.0)
    assert tnm_metrics(idx.assign(tnm_stage=""), test, STAGES) is None
    t5 = table_by_stage({"TNM staging": tnm, "radiomics": m, "ensemble": m}, STAGES, simulated={"TNM staging"})
    assert t5.loc[t5["simulated"], "method"].unique().tolist() == ["TNM staging"] and len(t5) == 6


def test_mcnemar_is_the_exact_binomial_test_of_discordant_pairs():
    from scipy.stats import binomtest

    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 0, 1, 1, 0, 1, 0], bool)  # a right / b wrong: 4, the reverse: 1
    assert mcnemar_p(a, b) == pytest.approx(binomtest(1, 5, 0.5).pvalue)
    assert mcnemar_p(a, a) == 1.0


def _stage_pred(p_iva, labels, patients):
    p = np.asarray(p_iva, float)
    return pd.DataFrame({"slice_id": [f"s{i}" for i in range(len(p))], "label": labels, "p_III": 1 - p, "p_IVa": p,
                         "patient": patients})


def test_patient_predictions_average_patch_probabilities():
    pred = _stage_pred([0.9, 0.2, 0.2, 0.3, 0.8], ["IVa", "IVa", "IVa", "III", "III"], ["A", "A", "A", "B", "B"])
    pp = patient_predictions(pred, ["III", "IVa"]).set_index("patient")
    assert pp.loc["A", "p_IVa"] == pytest.approx((0.9 + 0.2 + 0.2) / 3) and pp.loc["A", "predicted"] == "III"
    assert pp.loc["B", "p_IVa"] == pytest.approx(0.55) and pp.loc["B", "predicted"] == "IVa"
    assert pp["n_patches"].tolist() == [3, 2]
    with pytest.raises(ValueError, match="different stages"):
        patient_predictions(pred.assign(label=["IVa", "III", "IVa", "III", "III"]), ["III", "IVa"])


def test_patient_table_contract_and_unit():
    # 8 patients, 4 per stage; patient P0 has 10 patches, the others 1: per patch P0 dominates
    patients = ["P0"] * 10 + [f"P{i}" for i in range(1, 8)]
    labels = ["IVa"] * 10 + ["IVa", "IVa", "IVa", "III", "III", "III", "III"]
    ens = _stage_pred([0.9] * 10 + [0.8, 0.3, 0.7, 0.2, 0.1, 0.4, 0.6], labels, patients)
    other = _stage_pred([0.2] * 10 + [0.8, 0.7, 0.7, 0.2, 0.1, 0.4, 0.3], labels, patients)
    tnm = {"P0": "IVa", "P1": "III", "P2": "IVa", "P3": "IVa", "P4": "III", "P5": "III", "P6": "IVa", "P7": "III"}
    t = patient_table({"ensemble": ens, "other": other}, ["III", "IVa"], tnm=tnm, tnm_simulated=True, n_boot=200,
                      seed=0).set_index("method")
    assert list(t.index) == ["ensemble", "other", "TNM staging"]
    # by hand: per patch the ensemble wins (P0's 10 patches), per patient the other method does
    assert t.loc["ensemble", "accuracy"] == pytest.approx(6 / 8) and t.loc["other", "accuracy"] == pytest.approx(7 / 8)
    assert t.loc["ensemble", "patch_accuracy"] == pytest.approx(15 / 17)
    assert t.loc["other", "patch_accuracy"] == pytest.approx(7 / 17)
    assert t.loc["TNM staging", "accuracy"] == pytest.approx(6 / 8) and t.loc["TNM staging", "simulated"]
    assert not t.loc["other", "simulated"] and np.isnan(t.loc["ensemble", "mcnemar_p"])
    assert t.loc["other", "mcnemar_p"] == pytest.approx(mcnemar_p(
        np.array([1, 1, 0, 1, 1, 1, 1, 0], bool), np.array([0, 1, 1, 1, 1, 1, 1, 1], bool)))
    assert (t["ci_low"] <= t["accuracy"]).all() and (t["accuracy"] <= t["ci_high"]).all()
    assert (t["n_patients"] == 8).all()
    assert np.isnan(t.loc["ensemble", "mcnemar_p_holm"])


def test_patient_mcnemar_is_holm_corrected_over_the_methods():
    from scipy.stats import binomtest
    from statsmodels.stats.multitest import multipletests

    n = 30
    patients = [f"P{i}" for i in range(n)]
    labels = ["IVa", "III"] * (n // 2)
    right = np.where(np.array(labels) == "IVa", 0.9, 0.1)
    wrong = 1 - right
    preds = {"ensemble": _stage_pred(right, labels, patients)}
    for name, k in (("a", 8), ("b", 5), ("c", 1)):  # wrong on the first k patients, where the ensemble is right
        preds[name] = _stage_pred(np.r_[wrong[:k], right[k:]], labels, patients)
    t = patient_table(preds, ["III", "IVa"], n_boot=50, seed=0).set_index("method")
    raw = [binomtest(0, k, 0.5).pvalue for k in (8, 5, 1)]  # exact McNemar: all k discordant pairs one way
    assert t.loc[["a", "b", "c"], "mcnemar_p"].to_numpy() == pytest.approx(raw)
    assert t.loc[["a", "b", "c"], "mcnemar_p_holm"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    assert t.loc["b", "mcnemar_p_holm"] > t.loc["b", "mcnemar_p"]


def test_accuracy_ci_is_the_stratified_patient_bootstrap_of_the_accuracy():
    patients = np.array([f"P{i}" for i in range(12)])
    strata = {p: ("III" if i < 4 else "IVa") for i, p in enumerate(patients)}
    correct = np.array([1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1], bool)
    lo, hi = accuracy_ci(correct, patients, strata, n_boot=400, seed=5, level=0.8)
    w = patient_weights(patients, strata, 400, seed=5)
    assert (lo, hi) == pytest.approx(percentile_ci((w * correct).sum(1) / w.sum(1), 0.8))
    assert accuracy_ci(np.ones(12, bool), patients, strata, n_boot=50, seed=0) == (1.0, 1.0)


def test_mcnemar_reads_zero_one_integers_as_right_and_wrong():
    from scipy.stats import binomtest

    a = [1, 1, 1, 1, 1, 1, 0, 0, 1, 0]
    b = [1, 0, 0, 0, 0, 1, 1, 0, 1, 0]
    assert mcnemar_p(a, b) == pytest.approx(binomtest(1, 5, 0.5).pvalue)
    assert mcnemar_p(b, a) == pytest.approx(binomtest(1, 5, 0.5).pvalue)


def test_stage_metrics_keep_the_configured_classes_even_when_one_never_occurs():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    classes = ["III", "IVa", "IVb"]  # IVb neither true nor predicted here
    y = ["III", "III", "IVa", "IVa", "IVa"]
    p = ["III", "IVa", "IVa", "IVa", "III"]
    m = stage_metrics(y, p, classes)
    assert set(m) == {"n", "accuracy", "per_class", "confusion", "classes"} and m["classes"] == classes
    pr, rc, f1, n = precision_recall_fscore_support(y, p, labels=classes, zero_division=0)
    for i, c in enumerate(classes):
        assert m["per_class"][c] == {"precision": pytest.approx(pr[i]), "sensitivity": pytest.approx(rc[i]),
                                     "f1": pytest.approx(f1[i]), "support": int(n[i])}
    assert m["per_class"]["IVb"]["precision"] == 0.0  # never predicted: 0, not 1
    assert m["confusion"] == confusion_matrix(y, p, labels=classes).tolist() and len(m["confusion"]) == 3
    pred = pd.DataFrame({"label": y, "p_III": [0.9, 0.4, 0.3, 0.2, 0.6], "p_IVa": [0.1, 0.6, 0.7, 0.8, 0.4],
                         "p_IVb": 0.0, "kind": ["tumour", "node", "node", "tumour", "node"]})
    ev = evaluate_stages(pred, classes)
    assert ev["accuracy"] == pytest.approx(3 / 5) and ev["by_kind"] == {"node": pytest.approx(1 / 3), "tumour": 1.0}
    assert evaluate_stages(pred.drop(columns="kind"), classes)["by_kind"] == {}


def test_study_b_tables_round_to_three_decimals_with_their_columns():
    m = stage_metrics(["III", "III", "III", "IVa", "IVa", "IVa"], ["III", "III", "IVa", "IVa", "IVa", "III"],
                      ["III", "IVa"])
    t4 = table_by_stage({"resnet50": m}, ["III", "IVa"])
    assert list(t4.columns) == ["stage", "method", "precision", "sensitivity", "f1", "accuracy"]
    assert t4.iloc[0].tolist() == ["III", "resnet50", 0.667, 0.667, 0.667, 0.667]  # 2/3 each
    t5 = table_by_stage({"ensemble": m, "TNM staging": m}, ["IVa"], simulated=["TNM staging"])
    assert list(t5.columns) == ["stage", "method", "precision", "sensitivity", "f1", "accuracy", "simulated"]
    assert t5["simulated"].tolist() == [False, True]


def test_patient_predictions_are_sorted_by_patient_with_their_columns():
    pred = _stage_pred([0.9, 0.2, 0.8, 0.3], ["IVa", "III", "IVa", "III"], ["P2", "P1", "P2", "P0"])
    pp = patient_predictions(pred, ["III", "IVa"])
    assert list(pp.columns) == ["patient", "label", "p_III", "p_IVa", "n_patches", "predicted"]
    assert pp["patient"].tolist() == ["P0", "P1", "P2"] and pp["n_patches"].tolist() == [1, 1, 2]
    mixed = pred.assign(label=["IVa", "III", "III", "III"])  # P2's patches disagree, P0 and P1 have one each
    with pytest.raises(ValueError, match="patient P2 has patches with different stages"):
        patient_predictions(mixed, ["III", "IVa"])


def test_patient_table_wiring_and_columns():
    patients = [f"P{i}" for i in range(10)]
    labels = ["IVa"] * 5 + ["III"] * 5
    ens = _stage_pred([0.8, 0.7, 0.3, 0.9, 0.6, 0.2, 0.4, 0.7, 0.1, 0.3], labels, patients)
    tnm = {p: ("IVa" if i in (0, 1, 5) else "III") for i, p in enumerate(patients)}
    t = patient_table({"ensemble": ens}, ["III", "IVa"], tnm=tnm, n_boot=300, seed=4, level=0.8)
    assert list(t.columns) == ["method", "n_patients", "accuracy", "ci_low", "ci_high", "mcnemar_p", "mcnemar_p_holm",
                               "reference", "patch_accuracy", "simulated"]
    assert set(t["reference"]) == {"ensemble"} and not t["simulated"].any()  # TNM is read, not simulated, by default
    tnm_row = t.set_index("method").loc["TNM staging"]
    right = np.array([tnm[p] == lab for p, lab in zip(patients, labels)])
    assert tnm_row["patch_accuracy"] == pytest.approx(right.mean()) == pytest.approx(6 / 10)
    strata = dict(zip(patients, labels))
    ens_row = t.set_index("method").loc["ensemble"]
    correct = np.array([0.8, 0.7, 0.3, 0.9, 0.6, 0.2, 0.4, 0.7, 0.1, 0.3]) > 0.5
    correct = correct == (np.array(labels) == "IVa")
    assert (ens_row["ci_low"], ens_row["ci_high"]) == pytest.approx(
        accuracy_ci(correct, np.array(patients), strata, n_boot=300, seed=4, level=0.8))
    with pytest.raises(KeyError, match="reference method 'vote' has no predictions"):
        patient_table({"ensemble": ens}, ["III", "IVa"], reference="vote", n_boot=10, seed=0)


def test_patient_ci_resamples_within_each_stage():
    """Stratified by stage, every resample keeps 5 IVa and 5 III patients: a method right on every
    IVa patient and wrong on every III one scores exactly 0.5 in each, so its interval is a point."""
    patients = [f"P{i}" for i in range(10)]
    labels = ["IVa"] * 5 + ["III"] * 5
    row = patient_table({"ensemble": _stage_pred([0.9] * 10, labels, patients)}, ["III", "IVa"], n_boot=200,
                        seed=1).iloc[0]
    assert (row["accuracy"], row["ci_low"], row["ci_high"]) == (0.5, 0.5, 0.5)
