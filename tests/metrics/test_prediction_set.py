"""A predictions file whose slices are not its model's test set is an error naming the model, not a
score on what is left (21 of 22 slices, and MRMC rows that then blame the truth)."""

import pandas as pd
import pytest

from anapart.metrics.evaluate import prediction_set_problem

MODEL = "results/classify/resnet18/full/f100/model.pt"
TEST = [f"P1_{i:03d}" for i in range(22)]


def _pred(ids):
    return pd.DataFrame({"slice_id": ids, "label": "normal", "p_normal": 0.5})


def test_the_whole_test_set_once_is_no_problem():
    assert prediction_set_problem(_pred(TEST[::-1]), TEST, MODEL) is None


@pytest.mark.parametrize("ids, words", [
    (TEST[:-1], "(21 rows) are not its test set (22 slices): 1 test slices have no prediction (e.g. P1_021)"),
    (TEST + ["P9_000"], "1 predicted slices are not in the test set (e.g. P9_000)"),
    (TEST[:-1] + ["P1_000"], "1 test slices have no prediction (e.g. P1_021); 1 slices are predicted twice (e.g. P1_000)"),
])
def test_a_missing_foreign_or_repeated_slice_names_the_model(ids, words):
    problem = prediction_set_problem(_pred(ids), TEST, MODEL)
    assert problem.startswith(f"{MODEL}: its predictions") and words in problem, problem
    assert f"snakemake --forcerun {MODEL}" in problem
