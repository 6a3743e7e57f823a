"""Study A over replicates (anapart.metrics.replicates): the folds' predictions pooled so every
patient is a case once, refusals of a pool that is not that, the OR analysis per (repeat, seed)
against the single-table analysis, and the spread against numpy."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anapart.metrics.mrmc_formats import format_mrmc, pooled_figures
from anapart.metrics.replicates import pool_out_of_fold, replicate_mrmc, replicate_of, spread
from metrics.test_mrmc_formats import CLASSES, _preds


def _write_folds(root, preds, folds=2, repeats=(0,), seeds=(0, 1)):
    """Every model's test slices dealt to ``folds`` disjoint test sets (by row: pooling is by slice),
    written in the replicate layout."""
    paths = []
    for r in repeats:
        for s in seeds:
            for (net, fmt, frac), frame in preds.items():
                for k in range(folds):
                    part = frame.iloc[k::folds]
                    d = root / f"r{r}" / f"k{k}" / f"s{s}" / "classify" / net / fmt / f"f{frac}"
                    d.mkdir(parents=True, exist_ok=True)
                    part.to_csv(d / "predictions.csv", index=False)
                    paths.append(d / "predictions.csv")
    return paths


def test_replicate_of_reads_the_layout(tmp_path):
    p = tmp_path / "results/replicates/r2/k3/s7/classify/efficientnet_b0/seg112/f25/predictions.csv"
    assert replicate_of(p) == (2, 3, 7)
    with pytest.raises(ValueError, match="not a replicate path"):
        replicate_of(tmp_path / "results/classify/a/b/c/efficientnet_b0/seg112/f25/predictions.csv")


def test_pooled_folds_hold_every_slice_once_and_match_the_single_table(tmp_path):
    preds, patient_of = _preds(seed=3)
    paths = _write_folds(tmp_path, preds)
    pooled = pool_out_of_fold(paths, folds=2)
    assert sorted(pooled) == [(0, 0), (0, 1)]
    for models in pooled.values():
        for key, table in models.items():
            assert sorted(table["slice_id"]) == sorted(preds[key]["slice_id"])
    table = replicate_mrmc(pooled, patient_of, CLASSES)
    assert list(table.columns[:2]) == ["repeat", "seed"] and set(table["estimator"]) == {"within-fold"}
    assert (table["n_patients"] == patient_of.nunique()).all()
    # the pooled AUC of the pooled table is the whole cohort's: the OR analysis of the unsplit
    # predictions, to the digit
    one = format_mrmc(pooled[(0, 1)], patient_of, CLASSES, figures=pooled_figures(CLASSES), estimator="x")
    whole = format_mrmc(preds, patient_of, CLASSES, estimator="x")
    pd.testing.assert_frame_equal(one.drop(columns="reason"), whole.drop(columns="reason"), check_dtype=False)


def test_a_missing_fold_or_a_slice_in_two_folds_is_refused(tmp_path):
    preds, _ = _preds(seed=1, nets=2)
    paths = _write_folds(tmp_path, preds, seeds=(0,))
    with pytest.raises(ValueError, match=r"folds \[0\], expected 0..1"):
        pool_out_of_fold([p for p in paths if "/k1/" not in str(p)], folds=2)
    twice = Path(str(paths[0]).replace("/k0/", "/k1/"))
    pd.concat([pd.read_csv(twice), pd.read_csv(paths[0]).head(1)]).to_csv(twice, index=False)
    with pytest.raises(ValueError, match="predicted by two folds"):
        pool_out_of_fold(paths, folds=2)


def test_spread_is_the_sd_over_repeats_and_over_seeds():
    rows = []
    est = {(0, 0): 0.10, (0, 1): 0.14, (1, 0): 0.02, (1, 1): 0.08}
    for (r, s), e in est.items():
        rows.append({"repeat": r, "seed": s, "frac": 100, "figure": "aauc", "analysis": "RRRC",
                     "contrast": "seg112 - full", "estimate": e, "ci_low": e - 0.1, "ci_high": e + 0.1,
                     "p": 0.01 if e > 0.05 else 0.4, "p_holm": 0.02, "reason": None})
    out = spread(pd.DataFrame(rows), primary=(0, 0)).iloc[0]
    assert out["estimate"] == 0.10 and out["ci_low"] == pytest.approx(0.0)  # the declared replicate, not the best
    assert out["mean_over_replicates"] == pytest.approx(np.mean(list(est.values())))
    # over repeats within seed 0: sd(0.10, 0.02); seed 1: sd(0.14, 0.08); averaged
    assert out["sd_over_repeats"] == pytest.approx((np.std([0.10, 0.02], ddof=1) + np.std([0.14, 0.08], ddof=1)) / 2)
    assert out["sd_over_seeds"] == pytest.approx((np.std([0.10, 0.14], ddof=1) + np.std([0.02, 0.08], ddof=1)) / 2)
    assert out["share_p_below_alpha"] == 0.75 and out["n_replicates"] == 4


def test_grad_cam_tests_per_replicate_are_the_single_table_tests_of_the_pooled_maps(tmp_path):
    """Pooled Grad-CAM scores of each (repeat, seed) get cam_stats' tests, with repeat and seed."""
    import warnings

    from anapart.metrics.cam_stats import cam_tests
    from anapart.metrics.replicates import replicate_cam_tests
    from metrics.test_cam_stats import _slice_scores

    scores = _slice_scores(seed=2)
    paths = _write_folds(tmp_path, scores, seeds=(0, 3))
    pooled = pool_out_of_fold(paths, folds=2)
    ids = pd.concat([s["slice_id"] for s in scores.values()]).unique()
    patient_of = pd.Series([i.split("_")[0] for i in ids], index=ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = replicate_cam_tests(pooled, patient_of, ["full", "seg112", "seg224"])
        whole = cam_tests(scores, patient_of, ["full", "seg112", "seg224"])
    assert list(table.columns[:2]) == ["repeat", "seed"] and set(table["seed"]) == {0, 3, "all"}
    # every replicate together: both seeds hold the same maps, so the patient means are the whole table's
    every = table[table["seed"] == "all"].reset_index(drop=True)
    assert set(every["unit"]) == {"OR-RRRC"}
    orr = whole[whole["unit"] == "OR-RRRC"].reset_index(drop=True)
    pd.testing.assert_frame_equal(every[["score", "contrast", "estimate", "se", "p"]],
                                  orr[["score", "contrast", "estimate", "se", "p"]], check_dtype=False)
    one = table[table["seed"] == 3].drop(columns=["repeat", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(one[["unit", "score", "contrast", "estimate", "p"]],
                                  whole[["unit", "score", "contrast", "estimate", "p"]], check_dtype=False)
