import math

import numpy as np
import pandas as pd
import pytest

from anapart import CLASSES
from anapart.cohort import assert_no_leakage, make_split, mark_validation, split_patients, training_subsets


def fake_manifest(per_class_patients=(12, 5, 4, 3, 2, 9), slices=5, seed=0) -> pd.DataFrame:
    """Patients of each class; lesion patients also have some normal (tumour-free) slices."""
    rng = np.random.default_rng(seed)
    rows = []
    for cls, n in zip(CLASSES, per_class_patients):
        for i in range(n):
            pid = f"P{cls[:3]}{i:03d}"
            for k in range(slices):
                label = cls if (cls == "normal" or rng.random() < 0.6) else "normal"
                rows.append((f"{pid}_{k:03d}", pid, label))
    return pd.DataFrame(rows, columns=["slice_id", "patient", "label"])


def _paths(d, fractions=(100, 50, 25)):
    return {"patients": d / "patients.csv", "test": d / "test.csv",
            **{f"train_f{f}": d / f"train_f{f}.csv" for f in fractions}}


def test_patient_split_is_stratified_and_disjoint():
    man = fake_manifest()
    p = split_patients(man, 0.25, seed=1, classes=CLASSES)
    assert p["patient"].is_unique and set(p["patient"]) == set(man["patient"])
    for cls, n in zip(CLASSES, (12, 5, 4, 3, 2, 9)):
        g = p[p["group"] == cls]
        n_test = int((g["split"] == "test").sum())
        assert n_test == min(max(round(n * 0.25), 1), n - 1)
        assert (g["split"] == "train").sum() >= 1


def test_validation_patients_are_a_stratified_share_of_the_training_patients():
    man = fake_manifest()
    p = mark_validation(split_patients(man, 0.25, seed=1, classes=CLASSES), 0.2, seed=1, classes=CLASSES)
    assert p["validation"].dtype == bool
    assert (p.loc[p["validation"], "split"] == "train").all()  # never a test patient
    for cls in CLASSES:
        train = p[(p["group"] == cls) & (p["split"] == "train")]
        n_val = int(train["validation"].sum())
        expected = min(max(round(len(train) * 0.2), 1), len(train) - 1) if len(train) >= 2 else 0
        assert n_val == expected, cls
        assert (train["validation"] == False).sum() >= 1  # noqa: E712 - segmentation keeps training patients
    again = mark_validation(split_patients(man, 0.25, seed=1, classes=CLASSES), 0.2, seed=1, classes=CLASSES)
    assert again.equals(p)
    # the test side is the same with or without validation patients
    assert p["split"].tolist() == split_patients(man, 0.25, seed=1, classes=CLASSES)["split"].tolist()


def test_nested_subsets_per_class():
    man = fake_manifest()
    train = man[["slice_id", "label"]]
    subs = training_subsets(train, [100, 50, 25], seed=3)
    assert set(subs[25]["slice_id"]) <= set(subs[50]["slice_id"]) <= set(subs[100]["slice_id"])
    assert set(subs[100]["slice_id"]) == set(train["slice_id"])
    for cls, n in train["label"].value_counts().items():
        for f in (50, 25):
            assert (subs[f]["label"] == cls).sum() == max(1, math.ceil(n * f / 100))


def test_make_split_writes_consistent_files(tmp_path):
    man = fake_manifest()
    make_split(man, _paths(tmp_path), classes=CLASSES, test_fraction=0.25, fractions=[100, 50, 25], seed=5,
               validation_fraction=0.2)
    patients = pd.read_csv(tmp_path / "patients.csv")
    assert list(patients.columns) == ["patient", "group", "split", "validation"] and patients["validation"].any()
    test = pd.read_csv(tmp_path / "test.csv")
    f100 = pd.read_csv(tmp_path / "train_f100.csv")
    side = patients.set_index("patient")["split"]
    of = man.set_index("slice_id")["patient"]
    assert (side[of[test["slice_id"]]] == "test").all()
    assert (side[of[f100["slice_id"]]] == "train").all()
    assert len(test) + len(f100) == len(man)  # classifiers train on the validation patients too
    assert list(test.columns) == ["slice_id", "label"]


def test_split_is_deterministic_byte_for_byte(tmp_path):
    man = fake_manifest()
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, 5), (b, 5), (c, 6)):
        make_split(man.sample(frac=1, random_state=seed * 7), _paths(d), classes=CLASSES, test_fraction=0.25,
                   fractions=[100, 50, 25], seed=seed)
    for name in ("patients.csv", "test.csv", "train_f100.csv", "train_f50.csv", "train_f25.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "patients.csv").read_bytes() != (c / "patients.csv").read_bytes()


def test_leakage_is_detected():
    man = fake_manifest()
    p = split_patients(man, 0.25, seed=1, classes=CLASSES)
    side = p.set_index("patient")["split"]
    test_patient = side[side == "test"].index[0]
    train = man[man["patient"].map(side) == "train"][["slice_id", "label"]]
    test = man[man["patient"].map(side) == "test"][["slice_id", "label"]]
    subs = training_subsets(train, [100, 50], seed=0)
    assert_no_leakage(p, man, subs, test)  # the honest split passes
    leaked = pd.concat([subs[100], man[man["patient"] == test_patient][["slice_id", "label"]]])
    with pytest.raises(AssertionError, match="test patient"):
        assert_no_leakage(p, man, {100: leaked, 50: subs[50]}, test)
    dup = pd.concat([p, p.iloc[[0]].assign(split="test" if p.iloc[0]["split"] == "train" else "train")])
    with pytest.raises(AssertionError):
        assert_no_leakage(dup, man, subs, test)
    with pytest.raises(AssertionError, match="validation patient"):
        assert_no_leakage(p.assign(validation=p["split"] == "test"), man, subs, test)


def test_failed_split_leaves_nothing(tmp_path, monkeypatch):
    import anapart.cohort as cohort

    def boom(*a, **k):
        raise AssertionError("forced")

    monkeypatch.setattr(cohort, "assert_no_leakage", boom)
    with pytest.raises(AssertionError):
        make_split(fake_manifest(), _paths(tmp_path), classes=CLASSES, test_fraction=0.25,
                   fractions=[100, 50, 25], seed=5)
    assert list(tmp_path.iterdir()) == []
