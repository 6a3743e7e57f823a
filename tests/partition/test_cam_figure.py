"""What study A's Grad-CAM figure shows: per class a correctly classified slice when there is one
(the caption says so), else the best-scored one marked misclassified; flat maps counted."""

import numpy as np
import pandas as pd

from anapart.metrics.cam_stats import summarize
from anapart.partition.cam import pick_examples


def _scores():
    return pd.DataFrame({
        "slice_id": ["a1", "a2", "a3", "b1", "b2", "c1"],
        "label": ["NPC", "NPC", "NPC", "LH", "LH", "normal"],
        # a2 scores best but is wrong: a correct slice (a3) is preferred; LH has no correct slice
        "correct": [True, False, True, False, False, True],
        "corrected": [0.1, 0.9, 0.3, 0.2, np.nan, np.nan],
        "map_flat": [False, False, False, False, True, True],
    })


def test_pick_examples_prefers_correct_slices_then_the_best_score_and_keeps_the_class_order():
    picks = pick_examples(_scores())
    assert list(picks["slice_id"]) == ["a3", "b1", "c1"]  # NPC, LH, normal: the paper's class order
    assert list(picks["correct"]) == [True, False, True]
    # read back from CSV, "correct" is text: the same choice
    picks = pick_examples(_scores().astype({"correct": str}))
    assert list(picks["slice_id"]) == ["a3", "b1", "c1"]
    assert pick_examples(_scores().iloc[:0]).empty


def test_summary_counts_flat_maps():
    s = _scores().assign(score_binned=0.5, score_continuous=[0.5, 0.5, 0.5, 0.5, np.nan, np.nan], pointing=0.5,
                         chance=0.1, common_score=0.5, common_chance=0.1, common_corrected=0.4)
    row = summarize({("n1", "seg112", 100): s.astype({"map_flat": str})}).iloc[0]
    assert row["n_flat"] == 2 and row["n"] == 4
    assert np.isnan(summarize({("n1", "seg112", 100): s.drop(columns="map_flat")}).iloc[0]["n_flat"])
