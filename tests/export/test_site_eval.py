"""``anapart evaluate``: the workflow's metrics on a site's labels, checked against scikit-learn and
hand counts; the class list must be the package's; nothing in the summary names a patient."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from anapart.export.site_eval import evaluate_site, read_labels
from anapart.io.errors import IngestError

CLASSES = ["A", "B", "normal"]


def predictions(folder, seed=0):
    """9 patients (3 per class), 3 slices each, noisy probabilities that lean to the true class."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for k in range(9):
        pid, c = f"E{k:010x}", CLASSES[k % 3]
        truth[pid] = c
        for s in range(3):
            p = rng.dirichlet([1, 1, 1]) + 0.6 * (np.array(CLASSES) == c)
            p = p / p.sum()
            rows.append({"slice_id": f"{pid}_{s:03d}", "patient": pid, "position": s,
                         **{f"p_{x}": p[j] for j, x in enumerate(CLASSES)}})
    pred = pd.DataFrame(rows)
    pred["predicted"] = np.array(CLASSES)[pred[[f"p_{c}" for c in CLASSES]].to_numpy().argmax(1)]
    folder.mkdir(parents=True, exist_ok=True)
    pred.to_csv(folder / "predictions.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"classes": CLASSES, "evaluate": {"n_boot": 50, "seed": 1,
                                                                                  "ci_level": 0.9}}))
    return pred, truth


def test_summary_matches_sklearn_and_hand_counts_and_names_no_patient(tmp_path):
    pred, truth = predictions(tmp_path / "pred")
    labels = pd.DataFrame({"patient": list(truth), "label": list(truth.values())})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    s = evaluate_site(tmp_path / "pred" / "predictions.csv", tmp_path / "labels.csv", tmp_path / "ev")
    y = pred["patient"].map(truth).to_numpy()
    aucs = [roc_auc_score(y == c, pred[f"p_{c}"]) for c in CLASSES]
    assert s["auc"] == pytest.approx(dict(zip(CLASSES, aucs)), abs=1e-12)
    assert s["aauc"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert s["aauc_ci"][0] <= s["aauc"] <= s["aauc_ci"][1] and s["ci_level"] == 0.9 and s["n_boot"] == 50
    onehot = (y[:, None] == np.array(CLASSES)[None]).astype(float)
    assert s["brier"] == pytest.approx(((pred[[f"p_{c}" for c in CLASSES]].to_numpy() - onehot) ** 2).sum(1).mean())
    means = pred.groupby("patient")[[f"p_{c}" for c in CLASSES]].mean()
    called = np.array(CLASSES)[means.to_numpy().argmax(1)]
    true_p = means.index.map(truth).to_numpy()
    for c in CLASSES:
        pc = s["per_class"][c]
        assert pc["patients"]["value"] == pytest.approx(roc_auc_score(true_p == c, means[f"p_{c}"]))
        assert pc["patients"]["n_positive"] == 3 and pc["patients"]["n_negative"] == 6
        assert pc["sensitivity_patients"]["k"] == int(((true_p == c) & (called == c)).sum())
        assert pc["specificity_patients"]["n"] == 6
        assert pc["auc_bootstrap_ci"][0] <= s["auc"][c] <= pc["auc_bootstrap_ci"][1]
    assert s["chance"] == {"auc": 0.5, "balanced_accuracy": pytest.approx(1 / 3)}
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["reliability.pdf", "reliability.png", "roc.pdf", "roc.png", "summary.json"]
    text = (tmp_path / "ev" / "summary.json").read_text()
    assert not [p for p in truth if p in text]


def test_a_class_list_that_is_not_the_packages_is_an_error_naming_both(tmp_path):
    pred, truth = predictions(tmp_path / "pred")
    pd.DataFrame({"patient": list(truth), "label": ["A", "B", "other"] * 3}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(IngestError) as e:
        evaluate_site(tmp_path / "pred" / "predictions.csv", tmp_path / "l.csv", tmp_path / "ev")
    assert "['A', 'B', 'other']" in str(e.value) and "['A', 'B', 'normal']" in str(e.value)
    assert not (tmp_path / "ev").exists()


def test_site_labels_by_patient_id_go_through_the_private_table(tmp_path):
    pred, _ = predictions(tmp_path / "pred")
    priv = tmp_path / "private"
    priv.mkdir()
    sl = pred[["slice_id", "patient", "position"]].copy()
    sl["patient_id"] = sl["patient"].str.replace("E", "HOSP-")
    sl["instance"] = sl["position"] + 1
    sl[["slice_id", "patient_id", "instance"]].to_csv(priv / "slices.csv", index=False)
    first = sl["patient_id"].iloc[0]
    site = pd.DataFrame({"patient_id": [first, first], "instance": ["", "2"], "label": ["A", "B"]})
    site.to_csv(tmp_path / "site.csv", index=False)
    got = read_labels(tmp_path / "site.csv", pred, CLASSES, priv).set_index("slice_id")["label"]
    # every slice of the patient is A but instance 2 (position 1), which its own row makes B
    assert got.to_dict() == {sl["slice_id"].iloc[0]: "A", sl["slice_id"].iloc[1]: "B", sl["slice_id"].iloc[2]: "A"}
    with pytest.raises(IngestError, match="--private"):
        read_labels(tmp_path / "site.csv", pred, CLASSES, None)
