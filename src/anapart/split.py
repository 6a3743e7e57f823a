"""Patient-level splits. Study B: the paper's 4:1 split of patients, every ROI patch following its
patient (the same stratified draw as study A's :func:`split_patients`)."""

from __future__ import annotations

import pandas as pd

from .cohort import split_patients


def split_staging(index: pd.DataFrame, *, classes, test_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Patient-level stratified split of a patch index (4:1 in the paper); every patch follows its patient."""
    patients = split_patients(index, test_fraction, seed, classes)
    side = index["patient"].map(patients.set_index("patient")["split"])
    lists = {s: index.loc[side == s, ["slice_id", "label"]].reset_index(drop=True) for s in ("train", "test")}
    assert_staging_disjoint(index, lists["train"], lists["test"])
    return {"patients": patients, **lists}


def assert_staging_disjoint(index: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """No patient has patches on both sides (``index`` maps each patch to its patient)."""
    patient_of = index.set_index("slice_id")["patient"]
    both = set(patient_of[train["slice_id"]]) & set(patient_of[test["slice_id"]])
    if both:
        raise AssertionError(f"{len(both)} patient(s) have patches in both train and test")
