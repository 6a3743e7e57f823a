import numpy as np
import pandas as pd
import pytest

from anapart import CLASSES
from anapart.cohort.split import (assert_no_leakage, assign_folds, make_fold_split, make_split, mark_validation,
                                  patient_groups, split_patients, training_subsets)


def fake_manifest(per_class_patients=(12, 5, 4, 3, 2, 9), slices=5, seed=0) -> pd.DataFrame:
    """Patients of each class; lesion patients (first slice always a lesion slice) also have some normal
    (tumour-free) slices."""
    rng = np.random.default_rng(seed)
    rows = []
    for cls, n in zip(CLASSES, per_class_patients):
        for i in range(n):
            pid = f"P{cls[:3]}{i:03d}"
            for k in range(slices):
                label = cls if (cls == "normal" or k == 0 or rng.random() < 0.6) else "normal"
                rows.append((f"{pid}_{k:03d}", pid, label))
    return pd.DataFrame(rows, columns=["slice_id", "patient", "label"])


def _paths(d, fractions=(100, 50, 25)):
    return {"patients": d / "patients.csv", "test": d / "test.csv",
            **{f"train_f{f}": d / f"train_f{f}.csv" for f in fractions}}


def test_patient_split_is_stratified_and_disjoint():
    man = fake_manifest()
    p = split_patients(man, 0.25, seed=1, classes=CLASSES)
    assert p["patient"].is_unique and set(p["patient"]) == set(man["patient"])
    # 12 x 0.25 = 3; 5 x 0.25 = 1.25 -> 1; 4 -> 1; 3 x 0.25 = 0.75 -> 1; 2 x 0.25 = 0.5 -> 1; 9 x 0.25 = 2.25 -> 2
    for cls, n, n_test in zip(CLASSES, (12, 5, 4, 3, 2, 9), (3, 1, 1, 1, 1, 2)):
        g = p[p["group"] == cls]
        assert len(g) == n and int((g["split"] == "test").sum()) == n_test, cls


def test_validation_patients_are_a_stratified_share_of_the_training_patients():
    man = fake_manifest()
    p = mark_validation(split_patients(man, 0.25, seed=1, classes=CLASSES), 0.2, seed=1, classes=CLASSES)
    assert p["validation"].dtype == bool
    assert (p.loc[p["validation"], "split"] == "train").all()  # never a test patient
    for cls in CLASSES:
        train = p[(p["group"] == cls) & (p["split"] == "train")]
        n_val = int(train["validation"].sum())
        # training patients 9, 4, 3, 2, 1, 7 (test above) x 0.2 = 1.8, 0.8, 0.6, 0.4, 0.2, 1.4
        expected = {"NPC": 2, "LH": 1, "lymphoma": 1, "chordoma": 1, "craniopharyngioma": 0, "normal": 1}[cls]
        assert (len(train), n_val) == ({"NPC": 9, "LH": 4, "lymphoma": 3, "chordoma": 2, "craniopharyngioma": 1,
                                        "normal": 7}[cls], expected), cls
        assert (train["validation"] == False).sum() >= 1  # noqa: E712 - segmentation keeps training patients
    again = mark_validation(split_patients(man, 0.25, seed=1, classes=CLASSES), 0.2, seed=1, classes=CLASSES)
    assert again.equals(p)
    # the test side is the same with or without validation patients
    assert p["split"].tolist() == split_patients(man, 0.25, seed=1, classes=CLASSES)["split"].tolist()


def _one_class(n: int) -> pd.DataFrame:
    return fake_manifest(per_class_patients=(n, 0, 0, 0, 0, 0), slices=3)


@pytest.mark.parametrize("n,fraction,n_test", [
    (10, 0.25, 3),   # 2.5: half up (Python's round would give 2)
    (18, 0.25, 5),   # 4.5 -> 5 (round: 4)
    (6, 0.25, 2),    # 1.5 -> 2
    (2, 0.25, 1),    # 0.5 -> 1, and each side keeps one
    (2, 0.9, 1),     # 1.8 -> 2, but the training side keeps one
    (5, 0.5, 3),     # 2.5 -> 3
    (4, 0.05, 1),    # 0.2 -> 0, but the test side gets one
    (1, 0.5, 0),     # a single patient stays in training
    (16, 0.25, 4), (8, 0.25, 2), (12, 0.25, 3),  # the demo's classes (16, 8, 8, 8, 8, 12)
    (35, 0.2, 7),    # study B's demo stages
])
def test_test_count_per_class_is_rounded_half_up(n, fraction, n_test):
    p = split_patients(_one_class(n), fraction, seed=0, classes=CLASSES)
    assert len(p) == n and int((p["split"] == "test").sum()) == n_test
    # the validation share of the training patients follows the same rule
    v = mark_validation(p.assign(split="train"), fraction, seed=0, classes=CLASSES)
    assert int(v["validation"].sum()) == n_test


def test_demo_split_counts():
    """config/config.yaml's cohort: test patients per class at its test fraction, then validation patients."""
    from support.common import demo_config

    cfg = demo_config()
    sizes = cfg["synthetic"]["patients"]
    assert sizes == {"NPC": 16, "LH": 8, "lymphoma": 8, "chordoma": 8, "craniopharyngioma": 8, "normal": 12}
    man = fake_manifest(per_class_patients=tuple(sizes[c] for c in CLASSES))
    p = mark_validation(split_patients(man, cfg["split"]["test_fraction"], seed=0, classes=CLASSES),
                        cfg["split"]["validation_fraction"], seed=0, classes=CLASSES)
    n_test = p[p["split"] == "test"].groupby("group").size().to_dict()
    n_val = p[p["validation"]].groupby("group").size().to_dict()
    assert n_test == {"NPC": 4, "LH": 2, "lymphoma": 2, "chordoma": 2, "craniopharyngioma": 2, "normal": 3}
    # training patients 12, 6, 6, 6, 6, 9 x 0.2 = 2.4, 1.2, ..., 1.8
    assert n_val == {"NPC": 2, "LH": 1, "lymphoma": 1, "chordoma": 1, "craniopharyngioma": 1, "normal": 2}


def test_empty_classes_are_skipped_not_the_end_of_the_split():
    p = split_patients(fake_manifest(per_class_patients=(4, 0, 4, 0, 0, 8)), 0.25, seed=0, classes=CLASSES)
    assert p[p["split"] == "test"].groupby("group").size().to_dict() == {"NPC": 1, "lymphoma": 1, "normal": 2}
    v = mark_validation(p, 0.5, seed=0, classes=CLASSES)
    assert v[v["validation"]].groupby("group").size().to_dict() == {"NPC": 2, "lymphoma": 2, "normal": 3}


def test_no_validation_patients_unless_asked(tmp_path):
    p = split_patients(fake_manifest(), 0.25, seed=1, classes=CLASSES)
    assert not mark_validation(p, 0.0, seed=1, classes=CLASSES)["validation"].any()
    make_split(fake_manifest(), _paths(tmp_path), classes=CLASSES, test_fraction=0.25, fractions=[100, 50, 25],
               seed=5)  # validation_fraction left at its default
    assert not pd.read_csv(tmp_path / "patients.csv")["validation"].any()


def test_nested_subsets_per_class():
    man = fake_manifest()
    train = man[["slice_id", "label"]]
    subs = training_subsets(train, [100, 50, 25], seed=3)
    assert set(subs[25]["slice_id"]) <= set(subs[50]["slice_id"]) <= set(subs[100]["slice_id"])
    assert set(subs[100]["slice_id"]) == set(train["slice_id"])
    assert subs[50]["slice_id"].is_unique and list(subs[50].columns) == ["slice_id", "label"]


@pytest.mark.parametrize("n,fraction,kept", [
    (10, 50, 5), (10, 25, 3),  # 2.5 slices: rounded up, a fraction is "at least this share"
    (3, 50, 2), (3, 25, 1), (1, 25, 1),  # every class keeps at least one slice
    (201, 50, 101), (8, 25, 2),
])
def test_subset_sizes_per_class(n, fraction, kept):
    train = pd.DataFrame({"slice_id": [f"S{i:03d}" for i in range(n)] + ["T000", "T001"],
                          "label": ["NPC"] * n + ["LH"] * 2})
    subs = training_subsets(train, [100, fraction], seed=0)
    assert (subs[fraction]["label"] == "NPC").sum() == kept and (subs[100]["label"] == "NPC").sum() == n
    assert (subs[fraction]["label"] == "LH").sum() == (2 if fraction > 50 else 1)


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


def test_split_log_states_the_counts(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="anapart.split")
    man = fake_manifest()
    make_split(man, _paths(tmp_path), classes=CLASSES, test_fraction=0.25, fractions=[100, 25], seed=5,
               validation_fraction=0.2)
    patients = pd.read_csv(tmp_path / "patients.csv")
    test = pd.read_csv(tmp_path / "test.csv")
    f25 = pd.read_csv(tmp_path / "train_f25.csv")
    n_test_p = int((patients["split"] == "test").sum())
    assert (f"test: {len(test)} slices from {n_test_p} patients; {int(patients['validation'].sum())} training "
            "patients choose the segmentation model") in caplog.messages
    assert f"train f25: {len(f25)} slices {f25['label'].value_counts().to_dict()}" in caplog.messages
    assert list(test["slice_id"]) == sorted(test["slice_id"])


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
    with pytest.raises(AssertionError, match=r"^training subset f100 holds slices of 1 test patient\(s\)$"):
        assert_no_leakage(p, man, {100: leaked, 50: subs[50]}, test)
    dup = pd.concat([p, p.iloc[[0]].assign(split="test" if p.iloc[0]["split"] == "train" else "train")])
    with pytest.raises(AssertionError, match=r"^a patient appears twice in the split table$"):
        assert_no_leakage(dup, man, subs, test)
    with pytest.raises(AssertionError, match=r"^a validation patient is not a training patient$"):
        assert_no_leakage(p.assign(validation=p["split"] == "test"), man, subs, test)
    train_patient_slices = man[man["patient"].map(side) == "train"][["slice_id", "label"]].head(1)
    with pytest.raises(AssertionError, match=r"^test list holds slices of training patients$"):
        assert_no_leakage(p, man, subs, pd.concat([test, train_patient_slices]))


def test_subsets_must_be_nested():
    man = fake_manifest()
    p = split_patients(man, 0.25, seed=1, classes=CLASSES)
    side = p.set_index("patient")["split"]
    train = man[man["patient"].map(side) == "train"][["slice_id", "label"]]
    test = man[man["patient"].map(side) == "test"][["slice_id", "label"]]
    subs = training_subsets(train, [100, 50, 25], seed=0)
    assert_no_leakage(p, man, {100: subs[100], 50: subs[100], 25: subs[25]}, test)  # equal sets are nested
    outside = subs[100][~subs[100]["slice_id"].isin(subs[50]["slice_id"])].head(1)
    bad = {100: subs[100], 50: subs[50], 25: pd.concat([subs[25], outside])}  # inside f100 but not f50
    with pytest.raises(AssertionError, match=r"^training subset f25 is not inside f50$"):
        assert_no_leakage(p, man, bad, test)


def test_failed_split_leaves_nothing(tmp_path, monkeypatch):
    import anapart.cohort.split as split_module

    def boom(*a, **k):
        raise AssertionError("forced")

    monkeypatch.setattr(split_module, "assert_no_leakage", boom)
    with pytest.raises(AssertionError):
        make_split(fake_manifest(), _paths(tmp_path), classes=CLASSES, test_fraction=0.25,
                   fractions=[100, 50, 25], seed=5)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- K-fold replicates

def _fold_splits(tmp_path, man, folds=4, repeat=0, seed=5):
    out = []
    for k in range(folds):
        d = tmp_path / f"r{repeat}k{k}"
        d.mkdir()
        make_fold_split(man, _paths(d), classes=CLASSES, folds=folds, fold=k, repeat=repeat,
                        fractions=[100, 50, 25], seed=seed, validation_fraction=0.2)
        out.append({name: pd.read_csv(p) for name, p in _paths(d).items()})
    return out


def test_every_patient_is_tested_exactly_once_per_repeat(tmp_path):
    man = fake_manifest()
    splits = _fold_splits(tmp_path, man)
    tested = pd.concat([s["patients"].query("split == 'test'")["patient"] for s in splits])
    assert sorted(tested) == sorted(man["patient"].unique())  # each once, none missing
    slices = pd.concat([s["test"]["slice_id"] for s in splits])
    assert not slices.duplicated().any() and len(slices) == len(man)
    sizes = [int((s["patients"]["split"] == "test").sum()) for s in splits]
    assert max(sizes) - min(sizes) <= 1  # 35 patients over 4 folds: 9, 9, 9, 8
    for s in splits:  # validation patients are training patients; the fold's own leakage check passed
        p = s["patients"]
        assert set(p.columns) >= {"patient", "group", "split", "validation", "fold", "repeat"}
        assert not (p["validation"] & (p["split"] == "test")).any() and p["validation"].any()


def test_folds_are_stratified_per_class(tmp_path):
    man = fake_manifest(per_class_patients=(12, 8, 8, 4, 4, 8))
    splits = _fold_splits(tmp_path, man)
    for s in splits:  # 12 NPC over 4 folds: 3 each; 4 chordoma: 1 each
        test = s["patients"].query("split == 'test'")["group"].value_counts()
        assert test["NPC"] == 3 and test["chordoma"] == 1 and test["LH"] == 2


def test_repeats_reshuffle_and_the_same_repeat_is_reproduced(tmp_path):
    man = fake_manifest()
    groups = patient_groups(man)
    a, b = (assign_folds(groups, 4, r, 5, CLASSES) for r in (0, 1))
    assert not a.equals(b)
    assert a.equals(assign_folds(groups, 4, 0, 5, CLASSES))


def test_a_fold_outside_the_grid_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fold 4 is not one of 0..3"):
        make_fold_split(fake_manifest(), _paths(tmp_path), classes=CLASSES, folds=4, fold=4, repeat=0,
                        fractions=[100], seed=1)
