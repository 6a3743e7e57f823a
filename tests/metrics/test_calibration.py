"""Calibration measures (Brier, ECE, reliability bins) against scikit-learn and hand computation."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from anapart.metrics.calibration import (binary_calibration_metrics, brier_scores, calibration_metrics, ece,
                                         reliability_bins, reliability_figure, top_label, with_labels)
from anapart.partition.external import external_table

CL = ["a", "b", "c"]


def test_brier_equals_scikit_learn():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=200)
    labels = np.array(CL)[rng.integers(0, 3, 200)]
    multi, per_class = brier_scores(labels, probs, CL)
    assert multi == pytest.approx(brier_score_loss(labels, probs, labels=CL))  # [0, 2] range for > 2 classes
    for j, c in enumerate(CL):
        assert per_class[c] == pytest.approx(brier_score_loss(labels == c, probs[:, j]))
    assert multi == pytest.approx(sum(per_class.values()))
    # the class order of the probability columns is ours (scikit-learn's is sorted): same score
    order = ["c", "a", "b"]
    assert brier_scores(labels, probs[:, [2, 0, 1]], order)[0] == pytest.approx(multi)
    # a class absent from the labels still has its one-vs-rest score (its probabilities should be 0)
    only_ab = np.where(labels == "c", "a", labels)
    assert brier_scores(only_ab, probs, CL)[1]["c"] == pytest.approx(np.mean(probs[:, 2] ** 2))
    with pytest.raises(ValueError, match="not among the classes"):
        brier_scores(np.array(["a", "z"]), probs[:2], CL)


def test_binary_brier_equals_scikit_learn():
    rng = np.random.default_rng(1)
    p = rng.random(300)
    labels = np.where(rng.random(300) < p, "IVa", "III")
    pred = pd.DataFrame({"slice_id": range(300), "label": labels, "p_III": 1 - p, "p_IVa": p})
    m = binary_calibration_metrics(pred, ["III", "IVa"], n_bins=10)
    assert m["brier"] == pytest.approx(brier_score_loss(labels, p, pos_label="IVa"))
    assert m["calibration_class"] == "IVa"


def test_ece_hand_computed():
    # 2 bins: [0, 0.5] holds 0.2 and 0.4 (mean 0.3, outcomes 0 and 1 -> 0.5): |0.5 - 0.3| = 0.2
    #         (0.5, 1] holds 0.6, 0.8, 1.0 (mean 0.8, outcomes 1, 1, 0 -> 2/3): |2/3 - 0.8| = 2/15
    conf = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    outcome = np.array([0, 1, 1, 1, 0])
    assert ece(conf, outcome, 2) == pytest.approx(2 / 5 * 0.2 + 3 / 5 * 2 / 15)
    # one bin: |mean outcome - mean confidence| = |0.6 - 0.6| = 0
    assert ece(conf, outcome, 1) == pytest.approx(0.0)
    # an edge value belongs to the lower bin, as scikit-learn's calibration_curve has it
    t = reliability_bins(np.array([0.5, 0.5000001]), np.array([1, 0]), 2)
    assert list(t["n"]) == [1, 1]


def test_top_label_ece_hand_computed():
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    labels = np.array(["a", "b", "b", "a"])
    conf, correct = top_label(labels, probs, CL)
    assert list(conf) == [0.9, 0.6, 0.7, 0.4] and list(correct) == [True, False, True, False]
    # 10 bins: 0.9 -> (0.8, 0.9] right (|1 - 0.9|), 0.6 -> (0.5, 0.6] wrong (0.6), 0.7 right (0.3), 0.4 wrong (0.4)
    m = calibration_metrics(labels, probs, CL, n_bins=10)
    assert m["ece"] == pytest.approx((0.1 + 0.6 + 0.3 + 0.4) / 4)
    assert m["ece_bins"] == 10 and set(m["brier_per_class"]) == set(CL)


def test_reliability_bins_match_scikit_learn_calibration_curve():
    rng = np.random.default_rng(2)
    p = rng.random(500) ** 2
    y = (rng.random(500) < p).astype(int)
    t = reliability_bins(p, y, 8)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy="uniform")
    filled = t[t["n"] > 0]
    assert np.allclose(filled["observed"], prob_true) and np.allclose(filled["confidence"], prob_pred)
    assert t["n"].sum() == 500


def _dirichlet_labels(n, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([0.6, 0.6, 0.6], size=n)
    cum = probs.cumsum(axis=1)
    idx = (rng.random(n)[:, None] > cum).sum(axis=1)  # label drawn from each row's probabilities
    return np.array(CL)[np.minimum(idx, 2)], probs


def test_ece_of_calibrated_probabilities_is_near_zero_and_overconfident_is_not():
    labels, probs = _dirichlet_labels(200_000, 3)
    calibrated = calibration_metrics(labels, probs, CL, n_bins=10)["ece"]
    assert calibrated < 0.005
    sharp = probs ** 3
    sharp /= sharp.sum(axis=1, keepdims=True)  # same ranking, over-confident
    over = calibration_metrics(labels, sharp, CL, n_bins=10)["ece"]
    assert over > 0.05 and over > 10 * calibrated
    # binary form: p drawn uniformly, outcome ~ Bernoulli(p); then squeezed towards 0/1
    rng = np.random.default_rng(4)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(float)
    assert ece(p, y, 10) < 0.005
    assert ece(np.clip((p - 0.5) * 1.8 + 0.5, 0, 1), y, 10) > 0.05


def test_with_labels_joins_the_manifest_and_names_a_missing_slice():
    manifest = pd.DataFrame({"slice_id": ["E1_000", "E1_001", "E2_000"], "label": ["a", "b", "c"]})
    pred = pd.DataFrame({"slice_id": ["E2_000", "E1_000"], "p_a": [0.1, 0.8], "p_b": [0.1, 0.1], "p_c": [0.8, 0.1]})
    out = with_labels(pred, manifest)
    assert list(out.columns) == ["slice_id", "label", "p_a", "p_b", "p_c"] and list(out["label"]) == ["c", "a"]
    with pytest.raises(KeyError, match="E9_000"):
        with_labels(pd.DataFrame({"slice_id": ["E9_000"], "p_a": [1.0]}), manifest)


def test_external_table_columns_and_delta():
    def m(aauc, ext):
        base = {"aauc": aauc, "aauc_sd": 0.1, "aauc_ci": [aauc - 0.1, aauc + 0.05], "accuracy": 0.5,
                "auc": {c: aauc for c in CL}}
        return {**base, "external": {**base, "aauc": ext, "auc": {c: ext for c in CL}}}

    metrics = {("n1", "full", 100): m(0.9, 0.7), ("n1", "full", 50): m(0.8, 0.75), ("n2", "seg112", 100): m(0.6, 0.65)}
    t = external_table(metrics, CL)
    assert len(t) == 3
    assert list(t.columns[:8]) == ["net", "fmt", "frac", "aauc", "aauc_sd", "ci_low", "ci_high", "accuracy"]
    assert {"aauc_internal", "aauc_external", "delta"} <= set(t.columns)
    row = t[(t["net"] == "n1") & (t["frac"] == 100)].iloc[0]
    assert row["aauc_internal"] == 0.9 and row["aauc_external"] == 0.7 == row["aauc"]
    assert row["delta"] == pytest.approx(-0.2)
    assert json.dumps(t.to_dict())  # plain values


def test_reliability_figure_writes_a_png(tmp_path):
    labels, probs = _dirichlet_labels(300, 5)
    conf, correct = top_label(labels, probs, CL)
    out = tmp_path / "rel.png"
    reliability_figure({"internal, 100%": {"net": (conf, correct)}, "external, 100%": {"net": (conf, ~correct)}},
                       10, out, xlabel="confidence", ylabel="accuracy")
    assert out.read_bytes()[:4] == b"\x89PNG"
