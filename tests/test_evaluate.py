import numpy as np
import pandas as pd
import pytest

from anapart.evaluate import aauc, auc_per_class, bootstrap_aauc_ci, evaluate_predictions

CL = ["a", "b", "c"]


def test_auc_per_class_hand_computed():
    labels = np.array(["a", "a", "b", "b"])
    # class a scores: positives 0.9, 0.35; negatives 0.4, 0.1 -> pairs (0.9>0.4, 0.9>0.1, 0.35<0.4, 0.35>0.1) = 3/4
    probs = np.array([[0.9, 0.1, 0.0], [0.35, 0.65, 0.0], [0.4, 0.6, 0.0], [0.1, 0.9, 0.0]])
    aucs = auc_per_class(labels, probs, CL)
    assert aucs["a"] == pytest.approx(0.75)
    assert aucs["b"] == pytest.approx(0.75)
    assert np.isnan(aucs["c"])  # absent class: undefined, not 0.5
    mean, sd = aauc(aucs)
    assert mean == pytest.approx(0.75) and sd == pytest.approx(0.0)
    assert aauc({"a": 0.6, "b": 0.8, "c": float("nan")}) == (pytest.approx(0.7), pytest.approx(np.std([0.6, 0.8], ddof=1)))


def test_bootstrap_perfect_model_and_determinism():
    labels = np.array(["a", "b", "c"] * 6)
    probs = np.eye(3)[[0, 1, 2] * 6]
    patients = np.repeat(np.arange(6), 3)
    assert bootstrap_aauc_ci(labels, probs, patients, CL, n_boot=50, seed=1)[:2] == (1.0, 1.0)
    rng = np.random.default_rng(0)
    noisy = np.clip(probs + rng.normal(0, 0.4, probs.shape), 0, None)
    a = bootstrap_aauc_ci(labels, noisy, patients, CL, n_boot=200, seed=5)
    b = bootstrap_aauc_ci(labels, noisy, patients, CL, n_boot=200, seed=5)
    assert a == b and a[2] == 200
    point, _ = aauc(auc_per_class(labels, noisy, CL))
    assert a[0] <= point <= a[1] and a[0] < a[1]


def test_bootstrap_resamples_patients_not_slices():
    # one patient holds every slice: any patient-level resample is the original data, so the CI collapses
    rng = np.random.default_rng(3)
    labels = np.array(["a", "b", "c"] * 10)
    probs = rng.random((30, 3))
    lo, hi, _ = bootstrap_aauc_ci(labels, probs, np.zeros(30), CL, n_boot=30, seed=0)
    point, _ = aauc(auc_per_class(labels, probs, CL))
    assert lo == pytest.approx(point) and hi == pytest.approx(point)
    # with one slice per "patient", the same data gives a real interval
    lo2, hi2, _ = bootstrap_aauc_ci(labels, probs, np.arange(30), CL, n_boot=100, seed=0)
    assert hi2 - lo2 > 0.05


def test_evaluate_predictions_contract():
    pred = pd.DataFrame({"slice_id": [f"P{i}_000" for i in range(6)], "label": ["a", "b", "c", "a", "b", "c"],
                         "p_a": [0.8, 0.1, 0.1, 0.6, 0.3, 0.2], "p_b": [0.1, 0.8, 0.1, 0.2, 0.5, 0.2],
                         "p_c": [0.1, 0.1, 0.8, 0.2, 0.2, 0.6]})
    manifest = pd.DataFrame({"slice_id": pred["slice_id"], "patient": [f"P{i}" for i in range(6)]})
    m = evaluate_predictions(pred, manifest, CL, n_boot=20, seed=0)
    assert m["auc"] == {"a": 1.0, "b": 1.0, "c": 1.0} and m["aauc"] == 1.0 and m["accuracy"] == 1.0
    assert m["aauc_ci"] == [1.0, 1.0] and m["n_test_patients"] == 6
