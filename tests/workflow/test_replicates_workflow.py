"""The replicate grid as a real Snakemake DAG on the tiny cohort: 2 patient-level folds x 2 training
seeds, every patient tested once, the pooled out-of-fold MRMC and Grad-CAM tables with repeat and
seed, the primary endpoint averaged over every replicate (within-fold) with its sensitivity rows,
and one classifier of one fold and seed rerunning alone."""

import pandas as pd
import pytest
import yaml

from support.workflow import snakemake, workflow_copy

pytestmark = pytest.mark.workflow

GRID = {"replicates": {"folds": 2, "repeats": 1, "seeds": [0, 1], "primary": {"repeat": 0, "seed": 1}},
        "split": {"fractions": [100, 25]}, "staging": {"enabled": False}, "cohort": {"external": None},
        "stats": {"primary": {"fraction": 25}}}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    wd = workflow_copy(tmp_path_factory.mktemp("rep") / "run")
    extra = wd / "grid.yaml"
    extra.write_text(yaml.safe_dump(GRID))
    snakemake(wd, extra_config=extra)
    return wd, extra


def test_every_patient_is_tested_once_per_repeat_and_each_fold_has_its_own_chain(grid):
    wd, _ = grid
    man = pd.read_csv(wd / "results/cohort/manifest.csv")
    tested = []
    for k in (0, 1):
        p = pd.read_csv(wd / f"results/replicates/r0/k{k}/split/patients.csv")
        tested += list(p.loc[p["split"] == "test", "patient"])
        assert p["validation"].any() and set(p["fold"]) == {0, 1} and set(p["repeat"]) == {0}
        assert (wd / f"results/replicates/r0/k{k}/seg/selected.json").exists()
        assert (wd / f"results/replicates/r0/k{k}/crops/seg112/index.csv").exists()
    assert sorted(tested) == sorted(man["patient"].unique())


def test_tables_carry_repeat_fold_and_seed_and_the_pooled_mrmc_has_both_analyses(grid):
    wd, _ = grid
    auc = pd.read_csv(wd / "results/replicates/tables/auc.csv")
    assert list(auc.columns[:3]) == ["repeat", "fold", "seed"] and len(auc) == 2 * 2 * 2 * 3 * 2
    assert set(auc["fold"]) == {0, 1} and set(auc["seed"]) == {0, 1} and (auc["ci_level"] == 0.95).all()
    mrmc = pd.read_csv(wd / "results/replicates/tables/mrmc.csv")
    a = mrmc[mrmc["figure"] == "aauc"]
    assert set(a["analysis"]) == {"RRRC", "FRRC"} and set(a["frac"]) == {100, 25} and set(a["seed"]) == {0, 1}
    pairs = a[(a["contrast"] != "all formats") & ~a["contrast"].str.contains("@")]
    assert len(pairs) == 2 * 2 * 2 * 3  # seeds x fractions x analyses x format pairs
    assert set(a["estimator"]) == {"within-fold"} and (a["ci_level"] == 0.95).all()
    inter = a[a["contrast"] == "(seg112 - full)@25 - (seg112 - full)@100"]
    assert len(inter) == 2 * 2 and inter["p"].notna().all()  # seeds x analyses
    # pooled over the folds every one of the 20 patients is a case, so the design is analysable
    assert (a["n_patients"] == 20).all() and pairs["p"].notna().all()
    spread = pd.read_csv(wd / "results/replicates/tables/mrmc_spread.csv")
    row = spread[(spread["figure"] == "aauc") & (spread["contrast"] != "all formats")].iloc[0]
    assert row["n_replicates"] == 2 and row["n_seeds"] == 2 and pd.notna(row["sd_over_seeds"])
    assert set(spread["estimator"]) == {"within-fold", "pooled", "fold-variance"}
    assert "ci_level" in spread and (spread["contrast"] == "(seg112 - full)@25 - (seg112 - full)@100").any()
    cam = pd.read_csv(wd / "results/replicates/tables/cam_tests.csv")
    assert set(cam["seed"].astype(str)) == {"0", "1", "all"} and {"OR-RRRC", "mixed", "network", "paper"} <= set(cam["unit"])
    primary = pd.read_csv(wd / "results/tables/primary.csv")
    first = primary.iloc[0]
    assert first["role"] == "primary" and first["source"] == "results/replicates/tables/mrmc_spread.csv"
    assert first["estimator"] == "within-fold" and pd.notna(first["verdict"])
    # 1 repeat x 2 folds is 1 between-fold df: what a fold's networks share cannot be estimated, and it says so
    assert "fold-shared variance not estimable: 1 repeat(s) x (K - 1) = 1" in first["note"]
    assert first["ci_level"] == pytest.approx(1 - first["alpha"]) and first["alpha"] in (0.025, 0.05)
    per = mrmc[(mrmc["frac"] == 25) & (mrmc["figure"] == "aauc") & (mrmc["analysis"] == "RRRC")
               & mrmc["contrast"].isin(["seg112 - full", "full - seg112"])]
    sign = 1 if per["contrast"].iloc[0] == "seg112 - full" else -1
    # the within-fold FOM is averaged over the replicates, so its contrast is the replicates' mean, not one picked
    assert first["estimate"] == pytest.approx(sign * per["estimate"].mean(), abs=1e-4)
    assert set(primary.loc[primary["role"] == "sensitivity", "estimator"]) >= {"pooled", "fold-variance"}
    assert (primary["role"] == "single split (supporting)").any()


def test_one_classifier_of_one_fold_and_seed_reruns_alone(grid):
    wd, extra = grid
    proc = snakemake(wd, "-n", extra_config=extra)
    assert "Nothing to be done" in proc.stdout + proc.stderr  # the crops' hard links made nothing look stale
    target = "results/replicates/r0/k1/s1/classify/efficientnet_b0/seg112/f25/model.pt"
    proc = snakemake(wd, target, "--forcerun", target, extra_config=extra)
    text = proc.stdout + proc.stderr
    table = text.split("Job stats:")[1].split("total")[0]
    jobs = {line.split()[0] for line in table.splitlines()[3:] if line.strip()}
    assert jobs == {"classify_train_replicate"}, text


def test_sample_size_is_planned_from_every_replicate(grid):
    """results/tables/sample_size.csv: the primary analysis's pilot, within-fold AUCs of every repeat and
    seed (20 patients, 2 networks); the primary first, planned at alpha / 2 (Grad-CAM co-primary); the
    front page's sentence."""
    wd, _ = grid
    t = pd.read_csv(wd / "results/tables/sample_size.csv")
    first = t.iloc[0]
    assert first["role"] == "primary" and first["contrast"] == "seg112 - full" and first["frac"] == 25
    assert first["source"] == "results/replicates (within-fold AUC averaged over every repeat and seed)"
    assert first["alpha"] == 0.025
    assert (t["pilot_patients"] == 20).all() and set(t["networks"]) == {2, 4, 6, 8, 10}
    assert set(t["effect_kind"]) == {"observed", "declared"} and set(t["target_power"]) == {0.8, 0.9}
    assert (t["reachable"] | t["max_power"].notna()).all() and set(t["study"]) == {"A"}
    sentence = (wd / "results/tables/sample_size_sentence.txt").read_text()
    assert sentence.startswith("To detect +0.05 aAUC (seg112 - full, 25% of the training data, RRRC, alpha 0.025)")
