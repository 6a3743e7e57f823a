import numpy as np
import pandas as pd
import pytest

from anapart.metrics.evaluate import aauc, auc_per_class, bootstrap_aauc_ci, evaluate_predictions

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


# --------------------------------------------------------------------------- fast AUC, stratified and paired bootstraps

from sklearn.metrics import roc_auc_score  # noqa: E402

from anapart.metrics.evaluate import aauc_weighted, auc_weighted, paired_delta_aauc, patient_weights, percentile_ci


def test_weighted_auc_is_sklearns_auc_with_ties_and_repeats():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 60))
        y = rng.random(n) < rng.uniform(0.1, 0.9)
        if y.all() or not y.any():
            y[0], y[-1] = True, False
        s = np.round(rng.random(n), int(rng.integers(1, 3)))  # 1-2 decimals: many ties
        assert auc_weighted(y, s, np.ones(n))[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        w = rng.integers(0, 4, size=n)
        keep = np.repeat(np.arange(n), w)  # a resample: each slice as often as its weight
        expected = roc_auc_score(y[keep], s[keep]) if 0 < y[keep].sum() < len(keep) else np.nan
        got = auc_weighted(y, s, w[None])[0]
        assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)
    assert np.isnan(auc_weighted(np.ones(4, bool), np.arange(4.0), np.ones(4))[0])  # no negative: undefined


def test_weighted_aauc_matches_the_point_estimate_on_a_resample():
    rng = np.random.default_rng(1)
    labels = rng.choice(CL, size=40)
    probs = rng.dirichlet(np.ones(3), size=40).round(2)
    w = rng.integers(0, 3, size=(5, 40))
    for row in w:
        keep = np.repeat(np.arange(40), row)
        ref, _ = aauc(auc_per_class(labels[keep], probs[keep], CL))
        assert aauc_weighted(labels, probs, CL, row[None])[0] == pytest.approx(ref, abs=1e-12)


def test_stratified_patient_bootstrap_keeps_each_class_patient_count():
    patients = np.repeat([f"p{i}" for i in range(10)], 3)
    strata = {f"p{i}": ("rare" if i < 2 else "common") for i in range(10)}
    w = patient_weights(patients, strata, 300, seed=0)
    per_patient = w[:, ::3]  # one slice per patient: its draw count
    assert (per_patient[:, :2].sum(1) == 2).all() and (per_patient[:, 2:].sum(1) == 8).all()
    assert (per_patient[:, :2].sum(1) > 0).all()  # the rare class is never left out
    plain = patient_weights(patients, None, 300, seed=0)[:, ::3]
    assert (plain.sum(1) == 10).all() and (plain[:, :2].sum(1) == 0).mean() > 0.05  # (8/10)^10 = 0.11 miss it
    with pytest.raises(KeyError, match="no stratum"):
        patient_weights(patients, {"p0": "rare"}, 5, seed=0)
    # strata of one patient are pooled: otherwise that patient is redrawn every time and adds no spread
    lone = {f"p{i}": f"class{i}" for i in range(10)}
    pooled = patient_weights(patients, lone, 300, seed=0)[:, ::3]
    assert (pooled.sum(1) == 10).all() and pooled.std(0).min() > 0.5


def test_a_single_lone_patient_joins_the_smallest_stratum():
    """Exactly one class with a single test patient (any class of 2-5 patients under the 3:1 split):
    pooled with itself it would be drawn once in every resample. It joins the smallest stratum of
    several patients instead, so it is absent from some resamples and drawn once on average."""
    strata = {"A1": "a", "A2": "a", "A3": "a", "B1": "b", "C1": "c", "C2": "c", "C3": "c", "C4": "c", "C5": "c"}
    w = patient_weights(list(strata), strata, 2000, seed=0)
    b1 = w[:, 3]
    assert (b1 == 0).mean() == pytest.approx((3 / 4) ** 4, abs=0.03)  # one of 4 in class a's pool, 4 draws
    assert b1.mean() == pytest.approx(1.0, abs=0.06)
    assert (w[:, :3].sum(1) + b1 == 4).all() and (w[:, 4:].sum(1) == 5).all()  # class c's stratum untouched
    w2 = patient_weights(["A1", "A2", "A3", "B1"], {"A1": "a", "A2": "a", "A3": "a", "B1": "b"}, 1000, seed=0)
    assert (w2[:, 3] == 0).any() and w2[:, 3].mean() == pytest.approx(1.0, abs=0.1)
    single = patient_weights(["X"], {"X": "x"}, 10, seed=0)  # nothing to pool with: the one patient stays
    assert (single == 1).all()


def test_stratified_ci_uses_every_resample_where_the_plain_one_loses_a_class():
    rng = np.random.default_rng(2)
    labels = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 2)  # class c: two patients
    patients = np.array([f"a{i // 2}" for i in range(20)] + [f"b{i // 2}" for i in range(20)] + ["c0", "c1"])
    strata = {p: p[0] for p in patients}
    probs = rng.dirichlet(np.ones(3), size=len(labels))
    lo, hi, used = bootstrap_aauc_ci(labels, probs, patients, CL, strata=strata, n_boot=200, seed=0)
    assert used == 200 and lo <= hi


def test_paired_delta_is_zero_for_one_model_and_matches_the_point_difference():
    rng = np.random.default_rng(4)
    labels = np.array(["a", "b", "c"] * 12)
    patients = np.repeat(np.arange(12), 3)
    strata = {p: "x" for p in range(12)}
    good = np.eye(3)[[0, 1, 2] * 12] * 0.6 + rng.random((36, 3)) * 0.4
    bad = rng.random((36, 3))
    same = paired_delta_aauc(labels, good, good, patients, CL, strata=strata, n_boot=100, seed=0)
    assert same["delta_aauc"] == 0 and (same["ci_low"], same["ci_high"]) == (0.0, 0.0) and same["p"] == 1.0
    r = paired_delta_aauc(labels, good, bad, patients, CL, strata=strata, n_boot=300, seed=0)
    ga, _ = aauc(auc_per_class(labels, good, CL))
    gb, _ = aauc(auc_per_class(labels, bad, CL))
    assert r["delta_aauc"] == pytest.approx(ga - gb) and r["ci_low"] > 0 and r["p"] == pytest.approx(2 / 301)
    w = patient_weights(patients, strata, 300, seed=0)
    d = aauc_weighted(labels, good, CL, w) - aauc_weighted(labels, bad, CL, w)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(percentile_ci(d, 0.95))



# --------------------------------------------------------------------------- edge cases and the published contract

def test_aauc_of_one_and_of_no_defined_class():
    assert aauc({"a": 0.7, "b": float("nan")}) == (0.7, 0.0)  # one class: no spread
    mean, sd = aauc({"a": float("nan")})
    assert np.isnan(mean) and np.isnan(sd)


def test_a_class_with_a_single_positive_slice_has_an_auc():
    labels = np.array(["a", "b", "b", "b"])
    probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9]])
    aucs = auc_per_class(labels, probs, ["a", "b"])
    assert aucs["a"] == pytest.approx(roc_auc_score(labels == "a", probs[:, 0])) == pytest.approx(2 / 3)


def test_weighted_auc_edge_cases():
    # positives given as 0/1 integers, scores as integers: the same AUC as booleans and floats
    y = [1, 0, 1, 0, 0]
    s = [3, 1, 2, 2, 0]
    assert auc_weighted(y, s, np.ones(5))[0] == pytest.approx(roc_auc_score(y, s))
    # a resample of exactly one positive and one negative
    assert auc_weighted(y, s, [[1, 1, 0, 0, 0], [0, 0, 1, 1, 0]]).tolist() == [1.0, 0.5]
    empty = auc_weighted([], [], np.zeros((3, 0)))
    assert empty.shape == (3,) and np.isnan(empty).all()


def test_weighted_aauc_averages_the_classes_each_resample_can_score():
    labels = np.array(["a", "a", "b", "b", "c", "c"])
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6],
                      [0.5, 0.1, 0.4]])
    w = np.array([[1, 1, 1, 1, 1, 1],   # every class scorable
                  [1, 1, 1, 1, 0, 0],   # no c: a and b only
                  [0, 0, 1, 1, 0, 0],   # only b: no negative for b, no positive for a, c
                  [1, 0, 1, 0, 0, 0]])  # a and b, one slice each
    got = aauc_weighted(labels, probs, CL, w)
    for row, value in zip(w, got[:2]):
        keep = np.repeat(np.arange(6), row)
        ref = np.mean([roc_auc_score(labels[keep] == c, probs[keep, j]) for j, c in enumerate(CL)
                       if 0 < (labels[keep] == c).sum() < len(keep)])
        assert value == pytest.approx(ref)
    assert np.isnan(got[2]) and got[3] == pytest.approx(1.0)  # a: 0.9 > 0.3; b: 0.6 > 0.05


def test_percentile_interval_is_the_central_share():
    assert percentile_ci(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_ci(np.arange(101.0), 0.5) == pytest.approx((25.0, 75.0))


def _strata_case(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["a"] * 16 + ["b"] * 16 + ["c"] * 4)
    patients = np.array([f"{lab}{i // 2}" for lab, i in zip(labels, list(range(16)) * 2 + list(range(4)))])
    strata = {p: p[0] for p in patients}
    probs = np.eye(3)[[CL.index(x) for x in labels]] * 0.3 + rng.random((len(labels), 3))
    return labels, probs, patients, strata


def test_bootstrap_ci_is_the_percentile_interval_of_the_stratified_patient_resamples():
    labels, probs, patients, strata = _strata_case()
    lo, hi, used = bootstrap_aauc_ci(labels, probs, patients, CL, strata=strata, n_boot=300, seed=3, level=0.9)
    stats = aauc_weighted(labels, probs, CL, patient_weights(patients, strata, 300, seed=3))
    assert (lo, hi) == pytest.approx(percentile_ci(stats, 0.9)) and used == 300
    plain = bootstrap_aauc_ci(labels, probs, patients, CL, n_boot=300, seed=3, level=0.9)
    assert plain[:2] != (lo, hi)  # the strata change the resamples
    none = bootstrap_aauc_ci(np.array(["a"] * 6), probs[:6], patients[:6], CL, n_boot=20, seed=0)
    assert np.isnan(none[0]) and np.isnan(none[1]) and none[2] == 0  # no resample can score a class


def test_metrics_json_contract_against_scikit_learn_and_the_bootstrap():
    labels, probs, patients, strata = _strata_case(seed=1)
    pred = pd.DataFrame({"slice_id": [f"s{i:02d}" for i in range(len(labels))], "label": labels,
                         **{f"p_{c}": probs[:, j] for j, c in enumerate(CL)}})
    manifest = pd.DataFrame({"slice_id": pred["slice_id"][::-1], "patient": patients[::-1]})  # any row order
    m = evaluate_predictions(pred, manifest, CL, strata=strata, n_boot=150, seed=2, level=0.8)
    assert set(m) == {"auc", "aauc", "aauc_sd", "aauc_ci", "ci_level", "ci_method", "n_boot", "accuracy",
                      "n_test_slices", "n_test_patients", "confusion", "sensitivity", "specificity",
                      "balanced_accuracy", "balanced_accuracy_chance", "top_predicted", "top_predicted_share",
                      "degenerate"}
    aucs = [roc_auc_score(labels == c, probs[:, j]) for j, c in enumerate(CL)]
    assert m["auc"] == pytest.approx(dict(zip(CL, aucs)))
    assert (m["aauc"], m["aauc_sd"]) == pytest.approx((np.mean(aucs), np.std(aucs, ddof=1)))
    lo, hi, used = bootstrap_aauc_ci(labels, probs, patients, CL, strata=strata, n_boot=150, seed=2, level=0.8)
    assert m["aauc_ci"] == pytest.approx([lo, hi]) and m["n_boot"] == used == 150 and m["ci_level"] == 0.8
    assert m["ci_method"] == "percentile, patient bootstrap stratified by class"
    assert m["accuracy"] == pytest.approx(np.mean(np.array(CL)[probs.argmax(1)] == labels))
    assert (m["n_test_slices"], m["n_test_patients"]) == (36, 18)
    plain = evaluate_predictions(pred, manifest, CL, n_boot=150, seed=2, level=0.8)
    assert plain["ci_method"] == "percentile, patient bootstrap" and plain["aauc_ci"] != m["aauc_ci"]


def test_paired_delta_uses_the_strata_and_is_symmetric():
    labels, probs, patients, strata = _strata_case(seed=2)
    rng = np.random.default_rng(9)
    bad = rng.random(probs.shape)
    r = paired_delta_aauc(labels, probs, bad, patients, CL, strata=strata, n_boot=200, seed=1, level=0.9)
    w = patient_weights(patients, strata, 200, seed=1)
    d = aauc_weighted(labels, probs, CL, w) - aauc_weighted(labels, bad, CL, w)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(percentile_ci(d, 0.9))
    back = paired_delta_aauc(labels, bad, probs, patients, CL, strata=strata, n_boot=200, seed=1, level=0.9)
    assert back["delta_aauc"] == pytest.approx(-r["delta_aauc"]) and (back["ci_low"], back["ci_high"]) == \
        pytest.approx((-r["ci_high"], -r["ci_low"]))
    assert (d > 0).all() and r["p"] == back["p"] == pytest.approx(2 / 201)  # (0 + 1) / (B + 1), twice
    none = paired_delta_aauc(np.array(["a"] * 6), probs[:6], bad[:6], patients[:6], CL, n_boot=20, seed=0)
    assert none["n_boot"] == 0 and all(np.isnan(none[k]) for k in ("ci_low", "ci_high", "p"))


def test_missing_stratum_names_the_patient():
    with pytest.raises(KeyError, match=r"no stratum for 1 patient\(s\), e\.g\. p2"):
        patient_weights(["p0", "p1", "p2"], {"p0": "a", "p1": "b"}, 5, seed=0)


def test_predicted_class_is_the_argmax_of_the_p_columns_in_class_order():
    from anapart.metrics.evaluate import argmax_class, predicted, probabilities

    pred = pd.DataFrame({"slice_id": ["a", "b", "c"], "p_y": [0.2, 0.5, 0.1], "p_x": [0.7, 0.5, 0.2],
                         "p_z": [0.1, 0.0, 0.7]})
    classes = ["x", "y", "z"]  # column order in the file does not matter; classes fix it
    assert probabilities(pred, classes).tolist() == [[0.7, 0.2, 0.1], [0.5, 0.5, 0.0], [0.2, 0.1, 0.7]]
    assert predicted(pred, classes).tolist() == ["x", "x", "z"]  # a tie goes to the first class
    assert argmax_class(np.array([[0.1, 0.9]]), ["a", "b"]).tolist() == ["b"]


def test_per_model_table_orders_rows_by_fraction_format_and_network():
    from anapart.metrics.stats import per_model_table

    items = {("n2", "seg112", 25): 1, ("n1", "seg112", 100): 2, ("n1", "full", 100): 3, ("n2", "full", 100): 4}
    t = per_model_table(items, lambda v: {"value": v * 10})
    assert list(t.columns) == ["net", "fmt", "frac", "value"]
    assert list(zip(t["net"], t["fmt"], t["frac"], t["value"])) == [
        ("n1", "full", 100, 30), ("n2", "full", 100, 40), ("n1", "seg112", 100, 20), ("n2", "seg112", 25, 10)]


def test_class_report_matches_scikit_learn_and_flags_a_one_class_model():
    """Confusion matrix, per-class sensitivity (recall) and specificity, balanced accuracy: against
    scikit-learn; a model that calls 96% of slices one class is degenerate, its balanced accuracy at
    chance (1/k) while its accuracy is that class's share."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score

    from anapart.metrics.evaluate import class_report

    rng = np.random.default_rng(7)
    classes = ["a", "b", "c", "normal"]
    y = rng.choice(classes, 200, p=[0.2, 0.2, 0.1, 0.5])
    p = np.where(rng.random(200) < 0.6, y, rng.choice(classes, 200))
    r = class_report(y, p, classes)
    assert r["confusion"]["matrix"] == confusion_matrix(y, p, labels=classes).tolist()
    recall = recall_score(y, p, labels=classes, average=None)
    assert [r["sensitivity"][c] for c in classes] == pytest.approx(list(recall))
    for c in classes:  # specificity = the recall of "not c"
        assert r["specificity"][c] == pytest.approx(recall_score(y != c, p != c))
    assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert r["balanced_accuracy_chance"] == 0.25 and not r["degenerate"]
    lazy = np.where(np.arange(200) < 192, "normal", y)  # 'normal' for 96% of the slices
    d = class_report(y, lazy, classes)
    assert d["degenerate"] and d["top_predicted"] == "normal" and d["top_predicted_share"] >= 0.95
    assert d["balanced_accuracy"] < 0.35 and d["sensitivity"]["normal"] == 1.0
    missing = class_report(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])  # 'c' absent from the test set
    assert np.isnan(missing["sensitivity"]["c"]) and missing["balanced_accuracy"] == pytest.approx(0.75)
    assert missing["balanced_accuracy_chance"] == 0.5
