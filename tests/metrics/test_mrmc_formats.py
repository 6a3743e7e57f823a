"""Study A's formats as an MRMC study (anapart.metrics.mrmc_formats): the table's estimates against
scikit-learn's AUCs, both analyses per fraction and format pair, and a design it cannot take."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from anapart.metrics.mrmc_formats import COLUMNS, format_mrmc

CLASSES = ["a", "b", "normal"]
FORMATS = ["full", "seg112", "seg224"]


def _preds(seed=0, effect={"full": 0.3, "seg112": 1.5, "seg224": 0.8}, patients=14, nets=4, frac=100):
    """Every (network, format) model's probabilities on the same test slices; a format's ``effect``
    scales how much the true class's logit stands out."""
    rng = np.random.default_rng(seed)
    labels, pats = [], []
    for i in range(patients):
        cls = CLASSES[i % 2]
        for k in range(4):
            labels.append(cls if k < 2 else "normal")
            pats.append(f"P{i:02d}")
    labels = np.array(labels)
    slice_ids = [f"S{j:03d}" for j in range(len(labels))]
    patient_shift = rng.normal(0, 0.5, (patients, len(CLASSES)))  # patient x class effects shared by every model
    preds = {}
    for n in range(nets):
        for fmt in FORMATS:
            logit = rng.normal(0, 1, (len(labels), len(CLASSES))) + np.repeat(patient_shift, 4, axis=0)
            logit[np.arange(len(labels)), [CLASSES.index(c) for c in labels]] += effect[fmt]
            p = np.exp(logit) / np.exp(logit).sum(1, keepdims=True)
            frame = pd.DataFrame({"slice_id": slice_ids, "label": labels})
            for j, c in enumerate(CLASSES):
                frame[f"p_{c}"] = p[:, j]
            preds[(f"net{n}", fmt, frac)] = frame
    return preds, pd.Series(pats, index=slice_ids)


def _aauc(frame):
    return np.mean([roc_auc_score(frame["label"] == c, frame[f"p_{c}"]) for c in CLASSES])


def test_each_pair_is_the_difference_of_mean_aaucs_with_both_analyses():
    preds, patient_of = _preds()
    table = format_mrmc(preds, patient_of, CLASSES)
    assert list(table.columns) == COLUMNS
    mean = {f: np.mean([_aauc(p) for (n, fmt, _), p in preds.items() if fmt == f]) for f in FORMATS}
    aauc = table[(table["figure"] == "aauc") & (table["contrast"] != "all formats")]
    assert set(aauc["analysis"]) == {"RRRC", "FRRC"} and len(aauc) == 2 * 3
    for row in aauc.itertuples():
        a, b = row.contrast.split(" - ")
        assert abs(row.estimate - (mean[a] - mean[b])) < 1e-9  # the oracle: scikit-learn's AUCs
        assert row.ci_low < row.estimate < row.ci_high and 0 <= row.p <= row.p_holm <= 1
    rrrc = table[(table["figure"] == "aauc") & (table["analysis"] == "RRRC") & (table["contrast"] == "all formats")]
    assert rrrc["statistic"].item() == "F" and rrrc["df1"].item() == 2 and rrrc["df2"].item() > 1
    assert rrrc["p"].item() < 0.05  # a strong format effect is found
    frrc = table[(table["figure"] == "aauc") & (table["analysis"] == "FRRC")]
    assert (frrc["statistic"] == "chi2").all()
    per_class = table[table["figure"] == "auc_a"]
    assert len(per_class) == 2 * 4 and per_class["n_patients"].eq(14).all()


def test_no_format_effect_is_rarely_significant():
    """The null with patient x class effects shared by every model (what the network-level t-test
    misses): the RRRC global test over 30 data sets rejects at most 5 at alpha 0.05 (1.5 expected)."""
    hits = 0
    for seed in range(30):
        preds, patient_of = _preds(seed, effect={f: 0.8 for f in FORMATS})
        t = format_mrmc(preds, patient_of, ["a"])  # one class keeps the loop fast
        hits += t.query("figure == 'aauc' and analysis == 'RRRC' and contrast == 'all formats'")["p"].item() < 0.05
    assert hits <= 5


def test_a_class_in_one_test_patient_gets_a_reason_and_no_p_value():
    preds, patient_of = _preds(patients=14)
    only = patient_of.index[patient_of == "P00"]
    for frame in preds.values():  # class "b" only on patient P00's lesion slices
        frame.loc[frame["label"] == "b", "label"] = "normal"
        frame.loc[frame["slice_id"].isin(only[:2]), "label"] = "b"
    table = format_mrmc(preds, patient_of, CLASSES)
    bad = table[table["figure"].isin(["auc_b", "aauc"])]
    assert bad["p"].isna().all() and bad["reason"].str.contains("b").all()
    assert table[table["figure"] == "auc_a"]["p"].notna().any()
