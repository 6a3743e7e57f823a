"""Patient-level splits: stratified train/test by patient, validation patients, nested training subsets.

Study A: :func:`make_split` writes the split tables after :func:`assert_no_leakage`; a patient's
stratum is its lesion class (:func:`patient_groups`), and the training fractions are nested prefixes
of one shuffle per class (100% ⊇ 50% ⊇ 25%). Study B: the paper's 4:1 split of patients, every ROI
patch following its patient (the same stratified draw, :func:`split_staging`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from anapart.io.files import atomic_paths

log = logging.getLogger("anapart.split")

NORMAL = "normal"


def patient_groups(manifest: pd.DataFrame) -> pd.Series:
    """A patient's stratum: its (most frequent) lesion class, or ``normal`` if it has none."""
    def group(labels: pd.Series) -> str:
        lesions = labels[labels != NORMAL]
        if lesions.empty:
            return NORMAL
        counts = lesions.value_counts()
        return sorted(counts[counts == counts.max()].index)[0]

    return manifest.groupby("patient")["label"].apply(group)


def share_count(n: int, fraction: float) -> int:
    """How many of a stratum's ``n`` patients go to the held-out side: ``n * fraction`` rounded half
    up (10 x 0.25 -> 3; Python's ``round`` would give 2), then at least one patient on each side
    when the stratum has two or more (none held out of a single patient)."""
    if n < 2:
        return 0
    return min(max(math.floor(n * fraction + 0.5), 1), n - 1)


def _stratified_pick(groups: pd.Series, fraction: float, rng, classes) -> set:
    """Per stratum, :func:`share_count` patients drawn at random."""
    picked = set()
    for cls in classes:
        pts = sorted(groups[groups == cls].index)
        if not pts:
            continue
        n = share_count(len(pts), fraction)
        order = rng.permutation(len(pts))
        picked |= {pts[i] for i in order[:n]}
    return picked


def split_patients(manifest: pd.DataFrame, test_fraction: float, seed: int, classes) -> pd.DataFrame:
    """Stratified patient-level split: per stratum, ``n * test_fraction`` patients rounded half up go
    to test (:func:`share_count`); every stratum of two or more keeps at least one on each side.
    """
    groups = patient_groups(manifest)
    test = _stratified_pick(groups, test_fraction, np.random.default_rng([seed, 0]), classes)
    rows = [(p, g, "test" if p in test else "train") for p, g in groups.items() if g in set(classes)]
    return pd.DataFrame(rows, columns=["patient", "group", "split"]).sort_values("patient", ignore_index=True)


def mark_validation(patients: pd.DataFrame, fraction: float, seed: int, classes, stream=()) -> pd.DataFrame:
    """Add ``validation``: training patients held out of *segmentation* training to choose the
    segmentation model (stratified like the test split, its own random stream). The classifiers
    still train on every training patient: for them these are training patients like the others.
    """
    train = patients[patients["split"] == "train"].set_index("patient")["group"]
    rng = np.random.default_rng([seed, 2, *stream])
    picked = _stratified_pick(train, fraction, rng, classes) if fraction > 0 else set()
    return patients.assign(validation=patients["patient"].isin(picked))


def training_subsets(train: pd.DataFrame, fractions, seed: int, stream=()) -> dict[int, pd.DataFrame]:
    """Nested per-class subsets of the training slices: one shuffle per class, prefixes of it.

    The paper kept 50% and 25% of the training *images* of each category, so sampling is per
    class at slice level; the same shuffled order makes 100% ⊇ 50% ⊇ 25% by construction.
    """
    rng = np.random.default_rng([seed, 1, *stream])
    out: dict[int, list] = {int(f): [] for f in fractions}
    for cls in sorted(train["label"].unique()):
        ids = sorted(train.loc[train["label"] == cls, "slice_id"])
        order = rng.permutation(len(ids))
        for f in out:
            k = max(1, math.ceil(len(ids) * f / 100)) if ids else 0
            out[f] += [(ids[i], cls) for i in order[:k]]
    return {f: pd.DataFrame(sorted(v), columns=["slice_id", "label"]) for f, v in out.items()}


def assert_no_leakage(patients: pd.DataFrame, manifest: pd.DataFrame, train_lists: dict, test: pd.DataFrame) -> None:
    """Fail loudly if any patient or slice could be seen on both sides of the split."""
    side = patients.set_index("patient")["split"]
    if patients["patient"].duplicated().any():
        raise AssertionError("a patient appears twice in the split table")
    train_p, test_p = set(side[side == "train"].index), set(side[side == "test"].index)
    if train_p & test_p:
        raise AssertionError(f"{len(train_p & test_p)} patient(s) in both train and test")
    if "validation" in patients and (patients["validation"].astype(bool) & (patients["split"] != "train")).any():
        raise AssertionError("a validation patient is not a training patient")
    patient_of = manifest.set_index("slice_id")["patient"]
    for f, lst in train_lists.items():
        bad = set(patient_of[lst["slice_id"]]) - train_p
        if bad:
            raise AssertionError(f"training subset f{f} holds slices of {len(bad)} test patient(s)")
    if set(patient_of[test["slice_id"]]) - test_p:
        raise AssertionError("test list holds slices of training patients")
    fr = sorted(train_lists, reverse=True)
    for big, small in zip(fr, fr[1:]):
        if not set(train_lists[small]["slice_id"]) <= set(train_lists[big]["slice_id"]):
            raise AssertionError(f"training subset f{small} is not inside f{big}")


def make_split(manifest: pd.DataFrame, out: dict, *, classes, test_fraction: float, fractions, seed: int,
               validation_fraction: float = 0.0) -> None:
    """Write patients.csv, train_f{frac}.csv and test.csv (all or nothing), after the leakage check.

    patients.csv: ``patient, group, split`` (train/test) and ``validation`` (the training patients
    that choose the segmentation model, :func:`mark_validation`).
    """
    patients = mark_validation(split_patients(manifest, test_fraction, seed, classes), validation_fraction, seed,
                               classes)
    write_split(patients, manifest, out, fractions=fractions, seed=seed)


def assign_folds(groups: pd.Series, folds: int, repeat: int, seed: int, classes) -> pd.Series:
    """Stratified patient-level K-fold: each stratum shuffled (a stream of its own per repeat) and
    dealt to the folds in turn, the turn running on from one stratum to the next, so every patient
    is in exactly one fold and fold sizes differ by at most one patient."""
    rng = np.random.default_rng([seed, 3, repeat])
    fold, turn = {}, 0
    for cls in classes:
        pts = sorted(groups[groups == cls].index)
        for i in rng.permutation(len(pts)):
            fold[pts[i]] = turn % folds
            turn += 1
    return pd.Series(fold, name="fold", dtype=int).sort_index()


def make_fold_split(manifest: pd.DataFrame, out: dict, *, classes, folds: int, fold: int, repeat: int, fractions,
                    seed: int, validation_fraction: float = 0.0) -> None:
    """The split of one replicate: fold ``fold`` of repeat ``repeat`` is the test set, the other folds
    train; validation patients and the nested subsets are drawn again for each (repeat, fold), on
    streams of their own. K = 4 gives the paper's 3:1; over the K folds of a repeat every patient is
    tested exactly once (the pooled out-of-fold predictions, :mod:`anapart.metrics.replicates`)."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not one of 0..{folds - 1}")
    groups = patient_groups(manifest)
    groups = groups[groups.isin(set(classes))]
    of = assign_folds(groups, folds, repeat, seed, classes)
    patients = pd.DataFrame({"patient": of.index, "group": groups[of.index].to_numpy(),
                             "split": np.where(of.to_numpy() == fold, "test", "train"),
                             "fold": of.to_numpy()})
    stream = (repeat, fold)
    patients = mark_validation(patients, validation_fraction, seed, classes, stream=stream)
    patients = patients.assign(repeat=repeat)
    write_split(patients, manifest, out, fractions=fractions, seed=seed, stream=stream)


def write_split(patients: pd.DataFrame, manifest: pd.DataFrame, out: dict, *, fractions, seed: int,
                stream=()) -> None:
    """The split tables of ``patients`` (``split`` train/test), all or nothing, after the leakage check."""
    side = patients.set_index("patient")["split"]
    tagged = manifest.assign(split=manifest["patient"].map(side))
    train = tagged[tagged["split"] == "train"][["slice_id", "label"]]
    test = tagged[tagged["split"] == "test"][["slice_id", "label"]].sort_values("slice_id", ignore_index=True)
    subsets = training_subsets(train, fractions, seed, stream=stream)
    assert_no_leakage(patients, manifest, subsets, test)
    frames = {"patients": patients, "test": test, **{f"train_f{f}": lst for f, lst in subsets.items()}}
    keys = list(frames)
    with atomic_paths(*(out[k] for k in keys)) as tmps:
        for k, tmp in zip(keys, tmps):
            frames[k].to_csv(tmp, index=False, lineterminator="\n")
    for f, lst in subsets.items():
        log.info("train f%d: %d slices %s", f, len(lst), lst["label"].value_counts().to_dict())
    log.info("test: %d slices from %d patients; %d training patients choose the segmentation model",
             len(test), int((patients["split"] == "test").sum()), int(patients["validation"].sum()))
    missing = sorted(set(patients["group"]) - set(patients.loc[patients["split"] == "train", "group"]))
    if missing:
        log.warning("no training patient of %s: these classes are only ever tested", missing)


# --------------------------------------------------------------------------- study B

def split_staging(index: pd.DataFrame, *, classes, test_fraction: float, seed: int,
                  validation_fraction: float = 0.0) -> dict[str, pd.DataFrame]:
    """Patient-level stratified split of a patch index (4:1 in the paper); every patch follows its
    patient. ``validation_fraction`` of each stage's training patients (stratified, a stream of
    their own) become validation patients: never trained on, they give the per-epoch validation
    curves (the paper's Fig. 5). ``train`` holds the training patients without them."""
    patients = split_patients(index, test_fraction, seed, classes)
    patients = mark_validation(patients, validation_fraction, seed, classes)
    role = patients.set_index("patient").apply(lambda r: "validation" if r["validation"] else r["split"], axis=1)
    side = index["patient"].map(role)
    lists = {s: index.loc[side == s, ["slice_id", "label"]].reset_index(drop=True)
             for s in ("train", "validation", "test")}
    assert_staging_disjoint(index, pd.concat([lists["train"], lists["validation"]]), lists["test"])
    assert_staging_disjoint(index, lists["train"], lists["validation"])
    return {"patients": patients, **lists}


def assert_staging_disjoint(index: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """No patient has patches on both sides (``index`` maps each patch to its patient)."""
    patient_of = index.set_index("slice_id")["patient"]
    both = set(patient_of[train["slice_id"]]) & set(patient_of[test["slice_id"]])
    if both:
        raise AssertionError(f"{len(both)} patient(s) have patches in both train and test")
