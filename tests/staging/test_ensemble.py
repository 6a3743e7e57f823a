"""Study B's stage two and evaluation (anapart.staging.ensemble): soft voting, per-stage scores against
scikit-learn, the paper's tables, and the per-patient table against scipy/statsmodels and hand counts."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from anapart.metrics.evaluate import predicted
from anapart.staging.ensemble import (evaluate_stages, patient_predictions, soft_vote, stage_metrics, table_by_stage,
                                      table_preprocessing, tnm_metrics)

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
