"""Runs the real Snakemake DAG (synthetic cohort -> ingest -> split -> segmentation -> crops) on the tiny config."""

import csv
import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml

from anapart.runtime import worker
from support import browser
from support.common import REPO, run_offline, wait_for
from support.phi import assert_no_phi, phi_values
from support.workflow import snakemake, snakemake_cmd, workflow_copy

pytestmark = pytest.mark.workflow

SPLIT_FILES = ("patients.csv", "test.csv", "train_f100.csv", "train_f50.csv", "train_f25.csv")






def user_cohort_config(path: Path, data: Path, masks: bool = True, salt: str = "anapart-demo-salt") -> Path:
    """A researcher's config for their own DICOM folder (here: a copy of the synthetic one)."""
    cfg = {"source": "dicom", "dicom_dir": str(data / "dicom"), "labels": str(data / "labels.csv"),
           "mask_dir": str(data / "masks") if masks else None, "pseudonym_salt": salt}
    path.write_text(yaml.safe_dump({"cohort": cfg}))
    return path




@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    wd = workflow_copy(tmp_path_factory.mktemp("wf") / "run1")
    snakemake(wd, "results/split/patients.csv")
    snakemake(wd, "results/crops/qc.csv", "results/seg/qc_examples.png")
    snakemake(wd, "results/tables/anova.csv")
    snakemake(wd, "results/tables/cam_tests.csv", "results/tables/auc_pairs.csv")
    # study B, then everything else of `all` (nothing of study A may be redone)
    snakemake(wd, "results/staging/tables/table5_comparison.csv")
    proc = snakemake(wd)
    assert "rule classify_train" not in proc.stdout + proc.stderr
    return wd


def test_dag_builds_cohort_ingests_and_splits(built):
    for f in SPLIT_FILES:
        assert (built / "results" / "split" / f).stat().st_size > 0
    man = pd.read_csv(built / "results" / "cohort" / "manifest.csv")
    labels = pd.read_csv(built / "data" / "synthetic" / "labels.csv")
    assert len(man) == len(labels)
    patients = pd.read_csv(built / "results" / "split" / "patients.csv")
    assert set(patients["split"]) == {"train", "test"}
    assert patients["validation"].any() and (patients.loc[patients["validation"], "split"] == "train").all()
    assert set(patients["patient"]) == set(man["patient"])
    for f in ("logs/synthetic_cohort.log", "logs/ingest.log", "logs/split.log"):
        assert (built / f).stat().st_size > 0


def test_no_phi_under_results(built):
    values = phi_values(built / "data" / "synthetic" / "dicom")
    staging_values = phi_values(built / "data" / "synthetic_staging" / "dicom")
    external_values = phi_values(built / "data" / "synthetic_external" / "dicom")
    assert values and staging_values and external_values
    assert_no_phi(built / "results", values | staging_values | external_values)
    # a study's day never reaches results/ (the checklist reports months)
    import pydicom

    dates = {pydicom.dcmread(f, stop_before_pixels=True).StudyDate
             for d in ("synthetic", "synthetic_external") for f in (built / "data" / d / "dicom").rglob("*.dcm")}
    assert len(dates) > 3
    for p in list((built / "results").rglob("*.csv")) + list((built / "results").rglob("*.json")):
        text = p.read_text()
        assert not [d for d in dates if d in text], p


def test_staging_from_user_dicom_with_roi_boxes(built, tmp_path):
    """Study B on a researcher's own folder (here: a copy of the synthetic one) with drawn rectangles."""
    from support.roi import boxes_from_masks

    data = built / "data" / "synthetic_staging"
    boxes = tmp_path / "roi_boxes.csv"
    boxes_from_masks(data).to_csv(boxes, index=False)
    cfg = tmp_path / "staging-cohort.yaml"
    cfg.write_text(yaml.safe_dump({"staging": {"cohort": {
        "source": "dicom", "dicom_dir": str(data / "dicom"), "labels": str(data / "labels.csv"),
        "roi_dir": None, "roi_boxes": str(boxes), "pseudonym_salt": "another-salt"}}}))
    wd = workflow_copy(tmp_path / "wf")
    snakemake(wd, "results/staging/split/test.csv", extra_config=cfg)
    assert not (wd / "data").exists()  # nothing generated: the user's files were read
    index = pd.read_csv(wd / "results/staging/patches/clahe/index.csv")
    assert len(index) == len(pd.read_csv(boxes)) and set(index["kind"]) == {"tumour", "node"}
    assert_no_phi(wd / "results", phi_values(data / "dicom"))


def test_nothing_left_to_do(built):
    proc = snakemake(built, "-n", "results/split/patients.csv")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_fresh_run_is_byte_identical_and_user_dicom_path_works(built, tmp_path):
    """A second checkout reading the first one's cohort as a *user* DICOM cohort gives the same split."""
    wd = workflow_copy(tmp_path / "run2")
    data = built / "data" / "synthetic"
    snakemake(wd, "results/split/patients.csv", extra_config=user_cohort_config(tmp_path / "user.yaml", data))
    assert not (wd / "data").exists()  # nothing synthetic was generated
    for f in SPLIT_FILES:
        assert (wd / "results/split" / f).read_bytes() == (built / "results/split" / f).read_bytes(), f
    for f in ("manifest.csv", "images.npy", "masks.npy"):
        assert (wd / "results/cohort" / f).read_bytes() == (built / "results/cohort" / f).read_bytes(), f


def test_bad_input_fails_with_named_file_and_no_outputs(built, tmp_path):
    wd = workflow_copy(tmp_path / "run3")
    data = tmp_path / "cohort"
    shutil.copytree(built / "data" / "synthetic", data)
    with open(data / "labels.csv", "a") as fh:
        fh.write("GHOST-0001,1,NPC\n")
    cmd = snakemake_cmd("results/split/patients.csv",
                        extra_config=user_cohort_config(tmp_path / "user.yaml", data, masks=False, salt="x"))
    proc = run_offline(cmd, cwd=wd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    log = (wd / "logs" / "cohort_check.log").read_text()  # the preflight stops the run, before ingest
    assert "labels.csv line" in log and "no DICOM series for this patient" in log
    leftovers = [p for p in (wd / "results").rglob("*") if p.is_file()] if (wd / "results").exists() else []
    assert leftovers == []


def test_segmentation_and_crop_contracts(built):
    import json

    import numpy as np

    sel = json.loads((built / "results/seg/selected.json").read_text())
    for arch in ("unet", "deeplabv3"):
        assert (built / f"results/seg/{arch}/model.pt").stat().st_size > 0
        m = json.loads((built / f"results/seg/{arch}/metrics.json").read_text())
        assert {"dice_mean", "dice_sd", "n", "validation", "test"} <= set(m)
        assert m["validation"]["n"] > 0 and m["test"]["n"] > 0
        assert not (built / f"results/seg/{arch}/checkpoint.partial.pt").exists()
        for side in ("validation", "test"):
            assert sel["candidates"][arch][side] == {k: m[side][k] for k in ("dice_mean", "dice_sd", "n")}
    assert sel["selected"] in ("unet", "deeplabv3") and sel["reason"] and sel["chosen_on"] == "validation"
    # Dice is computed on the annotated slices of each side's patients, counted here from the manifest
    man = pd.read_csv(built / "results/cohort/manifest.csv")
    patients = pd.read_csv(built / "results/split/patients.csv")
    test_p = set(patients.loc[patients["split"] == "test", "patient"])
    val_p = set(patients.loc[(patients["split"] == "train") & patients["validation"], "patient"])
    train_p = set(patients.loc[patients["split"] == "train", "patient"]) - val_p
    annotated = man[man["has_region_mask"].astype(bool)]
    counts = {side: int(annotated["patient"].isin(ps).sum()) for side, ps in
              (("test", test_p), ("validation", val_p), ("train", train_p))}
    assert min(counts.values()) > 0 and len(annotated) < len(man)  # some slices lack a region mask
    for arch in ("unet", "deeplabv3"):
        m = json.loads((built / f"results/seg/{arch}/metrics.json").read_text())
        assert (m["test"]["n"], m["n"], m["validation"]["n"], m["n_train"]) == \
            (counts["test"], counts["test"], counts["validation"], counts["train"]), arch
    best = max(sel["candidates"], key=lambda a: sel["candidates"][a]["validation"]["dice_mean"])
    assert sel["selected"] == best
    sides = {"full": 64, "seg112": 14, "seg224": 28}  # test field 64: 112/512 and 224/512 of it
    for fmt, side in sides.items():
        arr = np.load(built / f"results/crops/{fmt}/images.npy", mmap_mode="r")
        assert arr.shape == (len(man), side, side)
        idx = pd.read_csv(built / f"results/crops/{fmt}/index.csv")
        assert list(idx["slice_id"]) == list(man["slice_id"])
    qc = pd.read_csv(built / "results/crops/qc.csv")
    assert len(qc) == len(man) and qc["centroid_error_px"].notna().sum() == man["has_region_mask"].sum()
    assert (built / "results/seg/qc_examples.png").read_bytes()[:4] == b"\x89PNG"


def _planned_jobs(wd: Path, *targets: str) -> dict[str, int]:
    """Job counts of a dry run, with rerun triggers stated (code changes do not count)."""
    proc = snakemake(wd, "-n", *targets, "--rerun-triggers", "mtime", "input", "params")
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("total")[0]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_classifier_contracts_and_tables(built):
    import json

    cfg = yaml.safe_load((built / "config/test.yaml").read_text())
    nets = cfg["classify"]["nets"]
    classes = yaml.safe_load((built / "config/config.yaml").read_text())["classes"]
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, roc_auc_score

    auc = pd.read_csv(built / "results/tables/auc.csv")
    assert len(auc) == len(nets) * 3 * 3
    test = pd.read_csv(built / "results/split/test.csv")
    for row in auc.itertuples():
        d = built / f"results/classify/{row.net}/{row.fmt}/f{row.frac}"
        m = json.loads((d / "metrics.json").read_text())
        assert {"auc", "aauc", "aauc_sd", "aauc_ci"} <= set(m) and set(m["auc"]) == set(classes)
        assert m["aauc"] == pytest.approx(row.aauc, abs=1e-4)
        pred = pd.read_csv(d / "predictions.csv")
        assert list(pred.columns) == ["slice_id", "label", *[f"p_{c}" for c in classes]]
        assert sorted(pred["slice_id"]) == sorted(test["slice_id"])  # every test slice, nothing else
        # the published numbers recomputed from the predictions with scikit-learn
        for c in classes:
            y = (pred["label"] == c).to_numpy()
            if 0 < y.sum() < len(y):
                assert m["auc"][c] == pytest.approx(roc_auc_score(y, pred[f"p_{c}"]), abs=1e-9), (row, c)
            else:
                assert m["auc"][c] is None or np.isnan(m["auc"][c]), (row, c)
        defined = [v for v in m["auc"].values() if v is not None and not np.isnan(v)]
        assert m["aauc"] == pytest.approx(np.mean(defined), abs=1e-12)
        guess = np.array(classes)[pred[[f"p_{c}" for c in classes]].to_numpy().argmax(1)]
        assert m["accuracy"] == pytest.approx(accuracy_score(pred["label"], guess), abs=1e-12)
        # per-class reporting (issue 26): what the aAUC hides, from the same predictions
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(pred["label"], guess), abs=1e-12)
        assert m["confusion"]["matrix"] == confusion_matrix(pred["label"], guess, labels=classes).tolist()
        share = pd.Series(guess).value_counts(normalize=True)
        assert m["top_predicted_share"] == pytest.approx(share.max()) and row.degenerate == (share.max() >= 0.95)
        assert (d / "model.pt").stat().st_size > 0 and (d / "roc.png").stat().st_size > 0
    anova = pd.read_csv(built / "results/tables/anova.csv")
    assert {"format_within_fraction", "fraction_within_format", "format_x_fraction"} <= set(anova["analysis"])
    assert set(anova["design"]) == {"repeated_measures", "paper"}
    assert anova["p"].between(0, 1).all()
    rm = anova[anova["design"] == "repeated_measures"]  # subject = network: error df from the networks alone
    assert rm["unit"].str.startswith("network").all() and (rm["n"] <= len(nets) * 9).all()
    posthoc = pd.read_csv(built / "results/tables/posthoc.csv")
    assert set(posthoc["design"]) == {"repeated_measures", "paper"}
    groups = pd.read_csv(built / "results/tables/auc_groups.csv")
    assert list(groups.columns[:5]) == ["fmt", "frac", "n_auc", "mean", "sd"] and len(groups) == 9
    assert (groups["n_auc"] <= len(nets) * len(classes)).all()
    row = auc[(auc["fmt"] == "seg112") & (auc["frac"] == 100)]
    values = row[[f"auc_{c}" for c in classes]].to_numpy().ravel()
    values = values[~np.isnan(values)]
    g = groups[(groups["fmt"] == "seg112") & (groups["frac"] == 100)].iloc[0]
    assert g["mean"] == pytest.approx(values.mean(), abs=1e-3) and g["sd"] == pytest.approx(values.std(ddof=1), abs=1e-3)
    pairs = pd.read_csv(built / "results/tables/auc_pairs.csv")
    assert list(pairs.columns[:8]) == ["net", "frac", "fmt_a", "fmt_b", "delta_aauc", "ci_low", "ci_high", "p"]
    assert len(pairs) == len(nets) * 3 * 3 and pairs["p"].between(0, 1).all()
    assert (pairs["p_holm"] >= pairs["p"] - 1e-12).all() and pairs["p_holm"].between(0, 1).all()
    assert (pairs["ci_low"] <= pairs["delta_aauc"] + 1e-9).all() and (pairs["delta_aauc"] <= pairs["ci_high"] + 1e-9).all()
    one = pairs[(pairs["net"] == nets[0]) & (pairs["frac"] == 100) & (pairs["fmt_a"] == "seg112")
                & (pairs["fmt_b"] == "full")].iloc[0]
    a = auc[(auc["net"] == nets[0]) & (auc["frac"] == 100)].set_index("fmt")["aauc"]
    assert one["delta_aauc"] == pytest.approx(a["seg112"] - a["full"], abs=1e-3)


def worker_jobs(wd: Path) -> list[dict]:
    """The rows of every job the warm worker ran in this folder (all runs), each exit 0."""
    if not (wd / "logs/worker/jobs.tsv").exists():
        return []
    with open(wd / "logs/worker/jobs.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert all(r["exit"] == "0" for r in rows), rows
    return rows


def test_rerunning_one_model_rebuilds_only_it_and_its_tables(built):
    """Snakemake 9 compares checksums of small inputs, so a touched-but-identical file triggers nothing;
    a *changed* one reruns exactly its dependants."""
    target = "results/tables/anova.csv"
    # a model the warm worker trained, to be retrained without it (jobs that start before it has
    # loaded run in their own process; machines with NVIDIA devices start no worker)
    in_worker = [dict(kv.split("=") for kv in r["wildcards"].split(","))
                 for r in worker_jobs(built) if r["job"] == "classify_train"]
    assert worker_jobs(built) or worker.gpu_present(), "the warm worker ran no job of the built runs"
    # a 50% model: nothing but the tables reads it (the CAM test reads the 100% models' predictions,
    # which this test alters), so the planned and changed sets below hold for any of them
    fixed = {"net": "efficientnet_b0", "fmt": "seg112", "frac": "50"}
    candidates = [m for m in in_worker if m["frac"] == "50"]
    model_dir = built / "results/classify/{net}/{fmt}/f{frac}".format(
        **(fixed if fixed in candidates or not candidates else candidates[-1]))
    rel = model_dir.relative_to(built).as_posix()
    assert _planned_jobs(built, target) == {}
    # one model deleted and its target asked for: only that model is retrained and rescored
    before = {p: p.stat().st_mtime_ns for p in (built / "results").rglob("*") if p.is_file()}
    old_metrics = (model_dir / "metrics.json").read_bytes()
    shutil.rmtree(model_dir)
    assert _planned_jobs(built, f"{rel}/metrics.json") == {"classify_train": 1, "classify_eval": 1}
    # the first model came from the warm worker; this one trains in fresh processes (warm_worker
    # off), even with a live worker's socket inherited from an enclosing run
    trained_in_worker = worker_jobs(built)
    outer = worker.start(built / "outer_worker", preload=("json",))
    try:
        if outer is not None:
            assert wait_for(lambda: Path(os.environ[worker.ENV_VAR]).exists())
        proc = snakemake(built, f"{rel}/metrics.json", "--config", "warm_worker=False")
    finally:
        if outer is not None:
            outer.stop()
    assert not (built / "outer_worker/jobs.tsv").exists()
    assert worker_jobs(built) == trained_in_worker  # nothing forked by a worker this time
    assert "2 of 2 steps (100%) done" in proc.stdout + proc.stderr
    changed = {p for p in (built / "results").rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert {p.relative_to(model_dir).as_posix() for p in changed} == {"model.pt", "predictions.csv",
                                                                       "external_predictions.csv", "metrics.json",
                                                                       "roc.png", "roc.pdf"}
    # training is deterministic on the CPU, in the worker or not: the rebuilt model scores
    # byte-identically, tables stand
    assert (model_dir / "metrics.json").read_bytes() == old_metrics
    assert _planned_jobs(built, target) == {}
    # a model whose predictions really changed: it is rescored and the tables are redone, nothing else
    pred = pd.read_csv(model_dir / "predictions.csv")
    prob_cols = [c for c in pred.columns if c.startswith("p_")]
    pred[prob_cols] = pred[prob_cols].to_numpy()[:, ::-1]
    pred.to_csv(model_dir / "predictions.csv", index=False)
    assert _planned_jobs(built, target) == {"classify_eval": 1, "auc_table": 1, "anova": 1}
    snakemake(built, target)
    assert _planned_jobs(built, target) == {}
    # a touched model (its weights file newer than its scores; mtime trigger stated): only its
    # scoring and the tables downstream rerun -- no other model, no crops, no cohort
    os.utime(model_dir / "model.pt")
    assert _planned_jobs(built, target) == {"classify_eval": 1, "auc_table": 1, "anova": 1}
    before = {p: p.stat().st_mtime_ns for p in (built / "results").rglob("*") if p.is_file()}
    snakemake(built, target, "--rerun-triggers", "mtime", "input", "params")
    changed = {p.relative_to(built).as_posix() for p in (built / "results").rglob("*")
               if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert changed == {f"{rel}/metrics.json", f"{rel}/roc.png", f"{rel}/roc.pdf", "results/tables/auc.csv",
                       "results/tables/auc_groups.csv", "results/figures/aauc_bars.png", "results/figures/aauc_bars.pdf",
                       "results/tables/anova.csv", "results/tables/posthoc.csv"}


def test_mrmc_table_has_both_analyses_for_every_fraction_and_format_pair(built):
    """results/tables/mrmc.csv: RRRC and FRRC rows per fraction, figure and format pair (issue 26)."""
    t = pd.read_csv(built / "results/tables/mrmc.csv")
    aauc = t[t["figure"] == "aauc"]
    pairs = {"full - seg112", "full - seg224", "seg112 - seg224"}
    for frac in (100, 50, 25):
        for analysis in ("RRRC", "FRRC"):
            rows = aauc[(aauc["frac"] == frac) & (aauc["analysis"] == analysis) & ~aauc["contrast"].str.contains("@")]
            assert set(rows["contrast"]) == pairs | {"all formats"}, rows
    # the data-cost interaction (stats.interaction), at the smallest fraction, in both analyses
    inter = aauc[aauc["contrast"] == "(seg112 - full)@25 - (seg112 - full)@100"]
    assert set(inter["analysis"]) == {"RRRC", "FRRC"} and (inter["frac"] == 25).all()
    assert (t["ci_level"] == 0.95).all() and set(t["estimator"]) == {"single split"}
    # the tiny cohort has one test patient of most classes: the jackknife cannot leave one out, and
    # the table says so instead of printing a p-value (the numbers are tested in tests/metrics/)
    assert t.loc[t["reason"].notna(), "p"].isna().all()
    assert t.loc[t["reason"].notna() & (t["figure"] == "aauc"), "reason"].str.contains("case").all()
    ok = t[t["reason"].isna() & (t["contrast"] != "all formats")]
    assert ((ok["ci_low"] <= ok["estimate"]) & (ok["estimate"] <= ok["ci_high"])).all()
    assert (t["p"].isna() | t["p"].between(0, 1)).all()


def test_default_config_plans_36_classifiers():
    proc = run_offline([sys.executable, "-m", "snakemake", "-n", "--forceall"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("Job stats:")[1].split("total")[0]
    counts = {p[0]: int(p[1]) for p in (line.split() for line in table.splitlines()) if len(p) == 2 and p[1].isdigit()}
    assert counts["classify_train"] == 36 and counts["classify_eval"] == 36


def test_every_figure_of_the_run_is_a_300_dpi_png_with_a_vector_pdf(built):
    """What a journal asks (issue 31): every PNG the run wrote has >= 300 dpi and a PDF twin, the
    new figures (multi-panel ROC per fraction, the formats' example) among them."""
    from PIL import Image

    pngs = sorted((built / "results").rglob("*.png"))
    assert len(pngs) > 20
    for png in pngs:
        with Image.open(png) as im:
            assert min(im.info["dpi"]) >= 299.5, png
        pdf = png.with_suffix(".pdf")
        assert pdf.exists() and pdf.read_bytes()[:5] == b"%PDF-", png
    names = {p.relative_to(built).as_posix() for p in pngs}
    assert {"results/figures/crop_examples.png", "results/figures/roc_f100.png", "results/figures/roc_f25.png"} <= names


def test_cam_contracts_and_report(built, tmp_path):
    scores = sorted((built / "results/cam").glob("*/*/f100/scores.csv"))
    assert len(scores) == 2 * 3  # test config: 2 nets x 3 formats at 100%
    from anapart.metrics.cam_scores import SCORE_COLUMNS

    lesion = pd.read_csv(built / "results/cohort/manifest.csv").set_index("slice_id")["has_lesion_mask"].astype(bool)
    for p in scores:
        s = pd.read_csv(p)
        assert list(s.columns) == ["slice_id", "label", "correct", *SCORE_COLUMNS, "map_flat"]
        # every test slice that has a lesion mask (the same for every model), and whether the model got it right
        net, fmt = p.parts[-4], p.parts[-3]
        pred = pd.read_csv(built / f"results/classify/{net}/{fmt}/f100/predictions.csv")
        probs = pred[[c for c in pred.columns if c.startswith("p_")]]
        mapped = pred[pred["slice_id"].map(lesion)]
        assert sorted(zip(s["slice_id"], s["label"])) == sorted(zip(mapped["slice_id"], mapped["label"])), p
        right = set(pred.loc[probs.idxmax(axis=1).str.removeprefix("p_") == pred["label"], "slice_id"])
        assert list(s["correct"]) == [sid in right for sid in s["slice_id"]]
        s = s.astype({c: float for c in SCORE_COLUMNS})
        ok = s["score_continuous"].notna() & (s["chance"] < 1)
        assert np.allclose(s.loc[ok, "corrected"], (s.loc[ok, "score_continuous"] - s.loc[ok, "chance"])
                           / (1 - s.loc[ok, "chance"]))
    # The selection is also run on this run's real model, crops and cohort with predictions made
    # here: every third test slice right, the others wrong; every lesion slice is mapped either way.
    from anapart.partition.cam import cam_scores

    d = built / "results/classify/mobilenetv3_large_100/seg112/f100"
    pred = pd.read_csv(d / "predictions.csv")
    cols = [c for c in pred.columns if c.startswith("p_")]
    classes = [c.removeprefix("p_") for c in cols]
    truth = pred["label"].map(classes.index).to_numpy()
    right = np.arange(len(pred)) % 3 == 0
    guess = np.where(right, truth, (truth + 1) % len(classes))
    pred[cols] = np.eye(len(classes))[guess] * 0.9 + 0.1 / len(classes)
    pred.to_csv(tmp_path / "predictions.csv", index=False)
    crafted, _ = cam_scores(d / "model.pt", built / "results/crops/seg112", built / "results/cohort",
                            tmp_path / "predictions.csv", target_layer="blocks.4", threshold=0.5,
                            common_index=built / "results/crops/seg112/index.csv")
    has_lesion = pred["slice_id"].map(lesion).to_numpy()
    expected = pred.loc[has_lesion, "slice_id"]
    assert (right & has_lesion).any() and (~right & has_lesion).any()  # every kind of slice is present
    assert sorted(crafted["slice_id"]) == sorted(expected)
    correct = dict(zip(pred["slice_id"], right))
    assert list(crafted["correct"]) == [correct[sid] for sid in crafted["slice_id"]]
    # chance levels: the lesion's share of each format's window, largest for the smallest window
    summary = pd.read_csv(built / "results/tables/cam_scores.csv")
    assert len(summary) == 6
    assert {"n", "score_mean", "score_sd", "chance_mean", "corrected_mean", "corrected_sd", "binned_mean",
            "common_corrected_mean"} <= set(summary.columns)
    chance = summary.groupby("fmt")["chance_mean"].mean()
    if chance.notna().all():
        assert chance["seg112"] > chance["seg224"] > chance["full"]
    tests = pd.read_csv(built / "results/tables/cam_tests.csv")
    assert set(tests["unit"]) == {"OR-RRRC", "network", "mixed", "paper"}
    assert {"contrast", "statistic", "p", "p_holm"} <= set(tests.columns)
    assert not (built / "results/tables/cam_ttest.csv").exists()
    snakemake(built, "--report", "report.html")
    html = (built / "report.html").read_text(errors="replace")
    assert "auc.csv" in html and "anova.csv" in html and "cam_scores.csv" in html and "cam_tests.csv" in html
    assert "checklist.csv" in html and "auc_external.csv" in html and "reliability_seg112.png" in html


STAGING_METHODS = ["resnet50", "densenet121", "basic_cnn", "ensemble", "radiomics"]


def test_staging_contracts_and_tables(built):
    """Study B from the tiny config: every method's predictions and metrics, the three tables."""
    import json

    stages = ["III", "IVa"]
    test = pd.read_csv(built / "results/staging/split/test.csv")
    index = pd.read_csv(built / "results/staging/patches/clahe/index.csv")
    for name in STAGING_METHODS + ["ablation/resnet50", "ablation/densenet121"]:
        d = built / "results/staging" / name
        pred = pd.read_csv(d / "predictions.csv")
        assert list(pred.columns[:4]) == ["slice_id", "label", "p_III", "p_IVa"], name
        assert list(pred["slice_id"]) == list(test["slice_id"])
        assert np.allclose(pred[["p_III", "p_IVa"]].sum(axis=1), 1, atol=1e-4)
        m = json.loads((d / "metrics.json").read_text())
        assert set(m["per_class"]) == set(stages) and 0 <= m["accuracy"] <= 1
        assert 0 <= m["brier"] <= 1 and 0 <= m["ece"] <= 1 and m["calibration_class"] == "IVa"
        assert sum(map(sum, m["confusion"])) == len(test)
        assert (d / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    # the ensemble really is the mean of the five (here: two) transfer models
    ens = pd.read_csv(built / "results/staging/ensemble/predictions.csv")
    members = [pd.read_csv(built / f"results/staging/{m}/predictions.csv") for m in ("resnet50", "densenet121")]
    assert np.allclose(ens["p_IVa"], (members[0]["p_IVa"] + members[1]["p_IVa"]) / 2)
    t3 = pd.read_csv(built / "results/staging/tables/table3_preprocessing.csv")
    assert len(t3) == 4 and set(t3["clahe"]) == {True, False}
    # each row is its arm's model: the main arm (CLAHE in this config) or the ablation (no CLAHE), whose
    # scores are recomputed here from the arm's predictions with scikit-learn
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    cfg = yaml.safe_load((built / "config/config.yaml").read_text())["staging"]
    assert cfg["clahe"]["enabled"] and cfg["compare_clahe"]
    differ = False
    for row in t3.itertuples():
        arm = built / "results/staging" / ("" if row.clahe else "ablation") / row.model
        pred = pd.read_csv(arm / "predictions.csv")
        guess = np.where(pred["p_IVa"] > pred["p_III"], "IVa", "III")
        p, r, f, _ = precision_recall_fscore_support(pred["label"], guess, labels=["IVa"], zero_division=0)
        expected = (p[0], r[0], f[0], accuracy_score(pred["label"], guess))
        assert (row.precision, row.sensitivity, row.f1, row.accuracy) == pytest.approx(expected, abs=5e-4), row
        m = json.loads((arm / "metrics.json").read_text())
        assert (m["per_class"]["IVa"]["precision"], m["accuracy"]) == pytest.approx((p[0], expected[3]), abs=1e-9)
        other = t3[(t3["model"] == row.model) & (t3["clahe"] != row.clahe)].iloc[0]
        differ |= (row.precision, row.sensitivity, row.f1, row.accuracy) != \
            (other.precision, other.sensitivity, other.f1, other.accuracy)
    assert differ, "both arms score alike here: a swap of the arms would go unnoticed"
    t4 = pd.read_csv(built / "results/staging/tables/table4_models.csv")
    assert set(t4["method"]) == {"basic_cnn", "resnet50", "densenet121", "ensemble"} and set(t4["stage"]) == set(stages)
    t5 = pd.read_csv(built / "results/staging/tables/table5_comparison.csv")
    assert set(t5["method"]) == {"TNM staging", "radiomics", "ensemble"}
    ens_m = json.loads((built / "results/staging/ensemble/metrics.json").read_text())
    ens_p = ens[["p_IVa"]].assign(y=(ens["label"] == "IVa").astype(float))
    assert ens_m["brier"] == pytest.approx(((ens_p["p_IVa"] - ens_p["y"]) ** 2).mean())
    assert (built / "results/staging/figures/reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert t4.loc[t4["method"] == "ensemble", "accuracy"].iloc[0] == pytest.approx(ens_m["accuracy"], abs=1e-3)
    assert set(t5.loc[t5["simulated"], "method"]) == {"TNM staging"}  # the demo's TNM column is generated
    pts = pd.read_csv(built / "results/staging/tables/patients.csv", keep_default_na=False, na_values=[""])
    assert list(pts.columns) == ["method", "unit", "metric", "stage", "value", "ci_low", "ci_high", "k", "n",
                                 "interval", "simulated"]
    ablation = {f"ablation/{m}" for m in ("resnet50", "densenet121")}
    assert set(pts["method"]) == set(STAGING_METHODS) | ablation | {"TNM staging"}
    assert pts.loc[pts["method"] == "TNM staging", "simulated"].all()
    n_patients = index.set_index("slice_id").loc[test["slice_id"], "patient"].nunique()
    acc = pts[(pts["unit"] == "patient") & (pts["metric"] == "accuracy")].set_index("method")
    assert (acc["n"] == n_patients).all() and (acc["interval"] == "Clopper-Pearson").all()
    assert ((acc["ci_low"] <= acc["value"]) & (acc["value"] <= acc["ci_high"]) & (acc["ci_low"] < acc["ci_high"])).all()
    patch = pts[(pts["unit"] == "patch") & (pts["metric"] == "accuracy")].set_index("method")
    assert patch.loc["ensemble", "value"] == pytest.approx(ens_m["accuracy"], abs=1e-3)
    assert patch["ci_low"].isna().all()
    claims = pd.read_csv(built / "results/staging/tables/claims.csv")
    assert claims.iloc[0]["role"] == "primary" and (claims["role"] == "primary").sum() == 1
    assert claims.iloc[0]["a"] == "ensemble" and claims.iloc[0]["test"].startswith("exact McNemar")
    sec = claims[claims["role"] == "secondary"]
    mcn = sec[sec["test"].str.startswith("exact McNemar")]
    assert mcn["p"].between(0, 1).all() and (mcn["p_holm"] >= mcn["p"] - 1e-12).all()
    # the tiny cohort has one test patient per stage: DeLong has no variance there and says so
    dl = sec[sec["test"].str.startswith("paired DeLong")]
    assert (dl["p"].between(0, 1) | (dl["p"].isna() & dl["note"].str.contains("no p-value"))).all()
    assert {"CLAHE (Table 3)", "transfer learning", "ensemble vs single models",
            "ensemble vs baselines (Table 5)"} <= set(claims["family"])
    assert claims.loc[claims["b"] == "TNM staging", "simulated"].all()
    # Fig. 5: every single model's per-epoch curves on its validation patients, never the test ones
    val = pd.read_csv(built / "results/staging/split/validation.csv")
    assert len(val) and not set(val["slice_id"]) & set(test["slice_id"])
    for m in ("resnet50", "densenet121", "basic_cnn", "ablation/resnet50"):
        h = pd.read_csv(built / f"results/staging/{m}/history.csv")
        assert list(h.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"] and len(h) >= 1
        assert (built / f"results/staging/{m}/history.png").read_bytes()[:4] == b"\x89PNG"
    # radiomics reads the patches without CLAHE (staging.radiomics.preprocessing: raw)
    info = json.loads((built / "results/staging/radiomics/model.json").read_text())
    assert info["patches"] == "results/staging/patches/raw" and info["resolution"] == "native ROI windows"
    # CAM per model, patients pseudonymised, patches of one patient on one side only
    for m in ("resnet50", "densenet121", "basic_cnn"):
        assert (built / f"results/staging/{m}/cam.png").stat().st_size > 0
        assert "roi_share" in pd.read_csv(built / f"results/staging/{m}/cam.csv").columns
    side = pd.read_csv(built / "results/staging/split/patients.csv").set_index("patient")["split"]
    assert set(side[index.set_index("slice_id").loc[test["slice_id"], "patient"]]) == {"test"}


def _external_config(path: Path, data: Path) -> Path:
    """The external cohort as a researcher's second DICOM folder."""
    path.write_text(yaml.safe_dump({"cohort": {"external": {
        "source": "dicom", "dicom_dir": str(data / "dicom"), "labels": str(data / "labels.csv"),
        "mask_dir": str(data / "masks")}}}))
    return path


def test_external_cohort_calibration_and_checklist_contracts(built):
    import json

    # up to date after the rerun test's changed predictions (only these tables depend on them)
    snakemake(built, "results/tables/auc_external.csv", "results/tables/calibration.csv", "results/checklist.csv")

    from sklearn.metrics import brier_score_loss, roc_auc_score

    cfg = yaml.safe_load((built / "config/test.yaml").read_text())
    classes = yaml.safe_load((built / "config/config.yaml").read_text())["classes"]
    formats = ("full", "seg112", "seg224")
    auc = pd.read_csv(built / "results/tables/auc.csv")
    ext = pd.read_csv(built / "results/tables/auc_external.csv")
    assert len(ext) == len(auc) == len(cfg["classify"]["nets"]) * 3 * 3
    assert list(ext.columns) == list(auc.columns) + ["aauc_internal", "aauc_external", "delta"]
    both = auc.merge(ext, on=["net", "fmt", "frac"], suffixes=("_int", ""))
    assert np.allclose(both["aauc_internal"], both["aauc_int"], atol=1e-4)
    assert np.allclose(both["aauc_external"], both["aauc"]) and np.allclose(both["delta"], both["aauc"] - both["aauc_int"],
                                                                            atol=2e-4)
    # the external store: its own pseudonyms, the external site's patients only
    man = pd.read_csv(built / "results/cohort/manifest.csv")
    ext_man = pd.read_csv(built / "results/external/cohort/manifest.csv")
    assert ext_man["patient"].str.match(r"^E[0-9a-f]{10}$").all() and man["patient"].str.startswith("P").all()
    assert not set(ext_man["slice_id"]) & set(man["slice_id"])
    ingest = json.loads((built / "results/external/cohort/ingest.json").read_text())
    assert ingest["n_patients"] == sum(cfg["synthetic_external"]["patients"].values()) == ext_man["patient"].nunique()
    assert set(pd.read_csv(built / "results/external/crops/qc.csv")["split"]) == {"external"}
    ext_index = pd.read_csv(built / "results/external/crops/seg112/index.csv")
    assert list(ext_index["slice_id"]) == list(ext_man["slice_id"])
    cal = pd.read_csv(built / "results/tables/calibration.csv").set_index(["net", "fmt", "frac"])
    label_of = ext_man.set_index("slice_id")["label"]
    for row in ext.itertuples():
        d = built / f"results/classify/{row.net}/{row.fmt}/f{row.frac}"
        m = json.loads((d / "metrics.json").read_text())
        e = m["external"]
        assert {"auc", "aauc", "aauc_sd", "aauc_ci", "brier", "ece", "brier_per_class"} <= set(e)
        assert e["n_test_patients"] == ingest["n_patients"]
        # the external predictions are blind (no label column); scored with the manifest's labels
        pred = pd.read_csv(d / "external_predictions.csv")
        assert list(pred.columns) == ["slice_id", *[f"p_{c}" for c in classes]]
        assert list(pred["slice_id"]) == list(ext_man["slice_id"])
        y = label_of.loc[pred["slice_id"]].to_numpy()
        probs = pred[[f"p_{c}" for c in classes]].to_numpy()
        aucs = [roc_auc_score(y == c, probs[:, j]) for j, c in enumerate(classes) if 0 < (y == c).sum() < len(y)]
        assert e["aauc"] == pytest.approx(np.mean(aucs), abs=1e-9)
        # scikit-learn takes the probability columns in sorted label order
        alpha = np.argsort(classes)
        assert e["brier"] == pytest.approx(brier_score_loss(y, probs[:, alpha], labels=sorted(classes)))
        # internal calibration, and the calibration table agrees with metrics.json
        ipred = pd.read_csv(d / "predictions.csv")
        iprobs = ipred[[f"p_{c}" for c in classes]].to_numpy()[:, alpha]
        assert m["brier"] == pytest.approx(brier_score_loss(ipred["label"], iprobs, labels=sorted(classes)))
        assert 0 <= m["ece"] <= 1 and m["ece_bins"] == 10
        c = cal.loc[(row.net, row.fmt, row.frac)]
        assert c["ece"] == pytest.approx(m["ece"], abs=1e-4) and c["ece_external"] == pytest.approx(e["ece"], abs=1e-4)
    for f in [*(f"results/figures/reliability_{fmt}.png" for fmt in formats), "results/figures/external_vs_internal.png"]:
        assert (built / f).read_bytes()[:4] == b"\x89PNG", f
    # the checklist: every item, answered from the run's files
    check = pd.read_csv(built / "results/checklist.csv").set_index("item")
    assert len(check) == 13 and check["where"].fillna("").str.len().gt(0).sum() == 13
    assert check.index[0] == "Primary endpoint (declared before the run)"
    main_ingest = json.loads((built / "results/cohort/ingest.json").read_text())
    assert f"{main_ingest['n_patients']} patients ({main_ingest['n_slices']} slices)" in check.loc["Sample size", "answer"]
    assert f"{ingest['n_patients']} patients ({ingest['n_slices']} slices)" in check.loc["External validation", "answer"]
    assert "results/tables/auc_external.csv" in check.loc["External validation", "where"]
    import pydicom

    months = sorted(pydicom.dcmread(f, stop_before_pixels=True).StudyDate[:6]
                    for f in (built / "data/synthetic_external/dicom").rglob("*.dcm"))
    period = f"{months[0][:4]}-{months[0][4:]} to {months[-1][:4]}-{months[-1][4:]}"  # from the headers
    assert f"study dates {period}" in check.loc["Data source and dates", "answer"]


def test_external_labels_reach_no_model(built, tmp_path):
    """No external patient's data reaches training or selection: with every external label changed,
    every model (segmentation and all classifiers), the selection and the split come out
    byte-identical, and so do the blind external predictions; only the external scores move."""
    import json

    classes = yaml.safe_load((built / "config/config.yaml").read_text())["classes"]
    data = tmp_path / "external"
    shutil.copytree(built / "data" / "synthetic_external", data)
    labels = pd.read_csv(data / "labels.csv")
    labels["label"] = [classes[(classes.index(c) + 1) % len(classes)] for c in labels["label"]]
    labels.to_csv(data / "labels.csv", index=False)
    wd = workflow_copy(tmp_path / "wf")
    snakemake(wd, "results/tables/auc_external.csv", extra_config=_external_config(tmp_path / "ext.yaml", data))
    assert not (wd / "data" / "synthetic_external").exists()  # the changed folder was read
    changed = pd.read_csv(wd / "results/external/cohort/manifest.csv")
    assert (changed["label"] != pd.read_csv(built / "results/external/cohort/manifest.csv")["label"]).all()
    same = ["results/seg/selected.json", *(f"results/split/{f}" for f in SPLIT_FILES)]
    same += [p.relative_to(built).as_posix() for p in (built / "results/seg").glob("*/model.pt")]
    models = sorted((built / "results/classify").glob("*/*/f*/model.pt"))
    assert len(models) == 18
    for m in models:
        same += [m.relative_to(built).as_posix(), (m.parent / "external_predictions.csv").relative_to(built).as_posix()]
    for f in same:
        assert (wd / f).read_bytes() == (built / f).read_bytes(), f
    moved = [json.loads((wd / m.relative_to(built)).with_name("metrics.json").read_text())["external"]["aauc"] !=
             json.loads(m.with_name("metrics.json").read_text())["external"]["aauc"] for m in models]
    assert any(moved)


def test_external_patient_who_is_in_the_main_cohort_is_refused(built, tmp_path):
    data = built / "data" / "synthetic"
    cfg = tmp_path / "both.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": {
        **yaml.safe_load(user_cohort_config(tmp_path / "user.yaml", data).read_text())["cohort"],
        "external": {"source": "dicom", "dicom_dir": str(data / "dicom"), "labels": str(data / "labels.csv")}}}))
    wd = workflow_copy(tmp_path / "wf")
    proc = run_offline(snakemake_cmd("results/external/cohort/check.json", extra_config=cfg), cwd=wd,
                       capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    log = (wd / "logs/external/cohort_check.log").read_text()
    for pid in pd.read_csv(data / "labels.csv")["patient_id"].unique():  # every patient, by its folder
        assert f"{data / 'dicom' / pid}: PatientID is also in the main cohort" in log, pid
    assert not (wd / "results/external").exists() or not any((wd / "results/external").rglob("*.*"))
    assert (wd / "results/cohort/check.json").exists()  # the main cohort itself was fine


ARTIFACTS = REPO / "tests" / "artifacts"  # CI keeps what a run leaves here (screenshots)
# What pushes the headline out of a reader's screen: Snakemake's own centring of the content pane
# (the front page would open mid-page, its top out of reach) or anything placed above it.
PUSHED_OUT = {"snakemake_centring": "div.grow.flex.h-screen{align-items:center !important;"
                                    "justify-content:center !important}",
              "block_above": "#anapart-headline{margin-top:900px !important}"}


@pytest.fixture(scope="module")
def rendered(built) -> Path:
    """The tiny run's report, as `snakemake --report` writes it."""
    browser.require_browser()
    proc = snakemake(built, "--report", "rendered.html")
    # a category named like one of Snakemake's own panels ("Statistics") printed docutils warnings
    # and broke the front page's links
    assert not re.search(r"\((WARNING|ERROR|SEVERE)/\d\)", proc.stderr), proc.stderr[-2000:]
    return built / "rendered.html"


def test_report_headline_on_screen_images_loaded_tables_listed(rendered, tmp_path):
    """At 1366x768 the headline (both studies' primary endpoints) is the first thing seen, whole,
    without scrolling; every image of the report decodes; no docutils message is shown; every
    category lists its results (tables also as HTML), in named subcategories, ROC curves 25, 50, 100."""
    d = browser.open_browser(tmp_path)
    try:
        browser.load(d, rendered)
        info = browser.headline_box(d)
        ARTIFACTS.mkdir(exist_ok=True)
        d.save_screenshot(str(ARTIFACTS / "report-front-1366x768.png"))
        assert info["width"] <= 1366 and info["height"] <= 768
        assert browser.on_screen(info), f"the headline is not inside the viewport: {info}"
        assert browser.broken_images(d) == []
        front = browser.visible_text(d)
        assert not re.search(browser.DOCUTILS_MESSAGE, front), front[:2000]
        head = d.execute_script("return document.getElementById(arguments[0]).innerText", browser.HEADLINE_ID)
        for words in ("Synthetic demo", "Study A", "seg112 minus full", "Verdict:", "test patients",
                      "degenerate models:", "Study B", "Primary claim", "alpha 0.05"):
            assert words in head, (words, head)
        for words in ("Glossary.", "aAUC", "RRRC", "chance-corrected", "Provenance.", "requirements.lock SHA-256",
                      "J Magn Reson Imaging 2022", "Int J Comput Intell Syst 2021", "Merged configuration"):
            assert words in front, words
        for category in ("Primary endpoint", "Segmentation", "Classification", "Statistical tests",
                         "Interpretability", "QC", "Staging", "External validation", "Checklist"):
            assert category in front, f"report did not render category {category}: {front[:500]}"
        expected = {
            ("Statistical tests", None): ["results/tables/anova.csv", "results/tables/posthoc.csv",
                                          "results/tables/cam_tests.csv", "results/tables/auc_pairs.csv",
                                          "results/tables/mrmc.csv", "results/figures/mrmc.png",
                                          "results/report/tables/mrmc.html"],
            ("Primary endpoint", None): ["results/tables/primary.csv", "results/report/tables/primary.html"],
            ("Classification", "Tables"): ["results/tables/auc.csv", "results/tables/auc_groups.csv",
                                           "results/report/tables/auc.html"],
            ("Classification", "Figures"): ["results/figures/aauc_bars.png"],
            ("Interpretability", "Tables"): ["results/tables/cam_scores.csv"],
            ("Segmentation", None): ["results/seg/qc_examples.png", "results/seg/selected.json"],
            ("QC", None): ["results/crops/qc.csv", "results/cohort/ingest.json"],
            ("Staging", "Tables"): ["results/staging/tables/table3_preprocessing.csv",
                                    "results/staging/tables/table4_models.csv",
                                    "results/staging/tables/table5_comparison.csv",
                                    "results/staging/tables/patients.csv", "results/staging/tables/claims.csv",
                                    "results/report/tables/table5_comparison.html",
                                    "results/report/tables/claims.html"],
            ("Staging", "Figures"): ["results/staging/figures/confusion_matrices.png",
                                     "results/staging/figures/reliability.png"],
            ("Classification", "Calibration"): ["results/tables/calibration.csv",
                                                "results/figures/reliability_full.png",
                                                "results/figures/reliability_seg224.png"],
            ("External validation", None): ["results/tables/auc_external.csv",
                                            "results/figures/external_vs_internal.png",
                                            "results/external/cohort/check.csv"],
            ("Checklist", None): ["results/checklist.csv", "results/report/tables/checklist.html"]}
        for (category, sub), items in expected.items():
            d.execute_script("app.setView({navbarMode: 'menu'})")  # back to the menu, as a reader does
            d.execute_script("return new Promise(r => setTimeout(r, 200))")
            if sub is None:  # as a reader's click does: straight to the list of a category without subcategories
                d.execute_script("app.showCategory(arguments[0])", category)
            else:
                d.execute_script("app.setView(arguments[0])",
                                 {"navbarMode": "subcategory", "category": category, "subcategory": sub})
            text = d.execute_script("return new Promise(r => setTimeout(() => r(document.body.innerText), 300))")
            for t in items:
                assert t in text, f"{category}/{sub} does not list {t}: {text[:600]}"
        # no subcategory named "Other": every result of a category with subcategories has one
        for category in ("Classification", "Interpretability", "Staging"):
            d.execute_script("app.showCategory(arguments[0])", category)
            text = d.execute_script("return new Promise(r => setTimeout(() => r(document.body.innerText), 300))")
            assert "\nOther\n" not in text, f"{category} has an 'Other' subcategory"
        d.execute_script("app.setView(arguments[0])", {"navbarMode": "subcategory", "category": "Classification",
                                                       "subcategory": "ROC curves"})
        text = d.execute_script("return new Promise(r => setTimeout(() => r(document.body.innerText), 300))")
        fracs = re.findall(r"\t(\d+)%\t", text)
        assert fracs[:3] == ["25", "50", "100"], fracs
        # every table is an HTML page the report shows in place
        mimes = d.execute_script("return Object.keys(results).filter(p => p.startsWith('results/report/tables/'))"
                                 ".map(p => results[p].mime_type)")
        assert len(mimes) >= 9 and set(mimes) == {"text/html"}, mimes
    finally:
        d.quit()


@pytest.mark.parametrize("how", sorted(PUSHED_OUT))
def test_headline_check_fails_when_the_headline_is_pushed_out(rendered, tmp_path, how):
    """The check above can say no: with Snakemake's centring back (the state before the fix) or a
    block above the headline, its box leaves the 1366x768 viewport and on_screen is False."""
    html = rendered.read_text(errors="replace")
    end = html.rfind("</body>")
    page = tmp_path / f"{how}.html"
    page.write_text(html[:end] + f"<style>{PUSHED_OUT[how]}</style>" + html[end:])
    d = browser.open_browser(tmp_path)
    try:
        browser.load(d, page)
        info = browser.headline_box(d)
        ARTIFACTS.mkdir(exist_ok=True)
        d.save_screenshot(str(ARTIFACTS / f"report-pushed-out-{how}.png"))
    finally:
        d.quit()
    assert info["box"] is not None and not browser.on_screen(info), info


# ---------------------------------------------------------------- crash, fix, rerun (issue 23)

def test_a_killed_jobs_leftovers_are_gone_after_the_rerun(built):
    """What SIGKILL during a write leaves (hidden temporaries beside the outputs and the checkpoint,
    tests/io/test_files.py kills a real writer) is removed when the job runs again; nothing of
    another job is touched and the rebuilt model is byte-identical."""
    model_dir = built / "results/classify/mobilenetv3_large_100/full/f25"
    rel = model_dir.relative_to(built).as_posix()
    left = [model_dir / ".model.pt.0e86b605.tmp", model_dir / ".checkpoint.partial.pt.1a2b3c4d.tmp",
            model_dir / ".predictions.csv.deadbeef.tmp"]
    for f in left:
        f.write_bytes(b"half a file")
    other = built / "results/classify/efficientnet_b0/full/f25/.model.pt.0badf00d.tmp"  # not this job's
    other.write_bytes(b"another job's")
    old = (model_dir / "model.pt").read_bytes()
    snakemake(built, f"{rel}/metrics.json", "--forcerun", "classify_train")
    assert not any(f.exists() for f in left) and other.exists()
    log = built / "logs/classify/mobilenetv3_large_100_full_f25.log"
    assert "left by a killed earlier run of this job" in log.read_text()
    assert (model_dir / "model.pt").read_bytes() == old
    other.unlink()
    assert not [p for p in (built / "results").rglob("*.tmp")]


def test_report_holds_no_salt_and_no_absolute_input_path(built, tmp_path):
    """Rule params are printed in the report: a user's cohort (absolute folders, a literal salt)
    leaves neither there."""
    salt = "a-secret-salt-of-this-site"
    user = user_cohort_config(tmp_path / "user.yaml", built / "data/synthetic", salt=salt)
    snakemake(built, "--report", "private.html", extra_config=user)
    html = (built / "private.html").read_text(errors="replace")
    assert len(html) > 100_000  # the report itself, with its results
    assert salt not in html
    assert str(built) not in html and str(tmp_path) not in html
    assert "anapart-demo-salt" not in html  # the demo's own salt neither


def test_sample_size_table_and_sentence(built):
    """results/tables/sample_size.csv on the tiny cohort: study A's primary first (here with its reason:
    one test patient of a class leaves no jackknife), study B's declared primary claim, the sentence."""
    t = pd.read_csv(built / "results/tables/sample_size.csv")
    assert t.iloc[0]["role"] == "primary" and t.iloc[0]["study"] == "A" and set(t["study"]) == {"A", "B"}
    a = t[t["study"] == "A"]
    assert (a["patients_needed"].notna() | a["max_power"].notna() | a["note"].str.startswith("no OR analysis", na=False)).all()
    b = t[t["study"] == "B"]
    assert (b["role"] == "primary").all() and set(b["target_power"]) == {0.8, 0.9}
    assert (built / "results/tables/sample_size_sentence.txt").read_text().strip()


# ---------------------------------------------------------------- content, not timestamps (issue 32)

def _planned_job_list(wd: Path, *targets: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run plans; rerun triggers stated (mtime, input, params)."""
    proc = snakemake(wd, "-n", *targets, "--rerun-triggers", "mtime", "input", "params")
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n?)*)", proc.stdout + proc.stderr, re.M):
        wc = re.search(r"^\s+wildcards: (.*)$", m.group(2), re.M)
        jobs.append((m.group(1), dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}))
    return jobs


def test_a_forced_reingest_replans_the_stores_readers_exactly_when_the_store_changed(built, tmp_path):
    """Stores are read as paths only (ancient: the 'full' crop store is a hard link of the cohort
    store); each store's content fingerprint (fingerprint.json, written beside it) is the trigger.
    On a copy of the complete run, with `snakemake --forcerun ingest` to the store and then a plan of
    every job that reads a store (rerun triggers stated: mtime, input, params): the same bytes
    replan nothing, though Snakemake rewrote and touched the store and its fingerprint; one DICOM
    slice's new pixels replan the segmentation, the crops and every classifier and Grad-CAM job; after
    the crops rerun the 'full' store is the cohort store again, and exactly the classifiers of the
    formats whose store bytes changed are still planned."""
    def ignore(folder, names):  # what no store reader needs (study B, rendered reports)
        if Path(folder) == built / "results":
            return ["staging"]
        return [n for n in names if n.endswith(".html")] if Path(folder) == built else []

    wd = shutil.copytree(built, tmp_path / "run", symlinks=True, ignore=ignore)
    main = yaml.safe_load((wd / "config/config.yaml").read_text())
    nets = yaml.safe_load((wd / "config/test.yaml").read_text())["classify"]["nets"]
    formats, fracs = main["classify"]["formats"], main["split"]["fractions"]
    models = [(n, f, r) for n in nets for f in formats for r in fracs]
    cams = [(n, f, r) for n, f, r in models if r in main["cam"]["fractions"]]
    targets = ["results/crops/qc.csv", "results/external/crops/qc.csv", "results/figures/crop_examples.png",
               *(f"results/classify/{n}/{f}/f{r}/predictions.csv" for n, f, r in models),
               *(f"results/cam/{n}/{f}/f{r}/scores.csv" for n, f, r in cams)]
    cohort, crops = wd / "results/cohort", wd / "results/crops"

    def prints():
        return {p.relative_to(wd).as_posix(): json.loads(p.read_text())
                for p in [cohort / "fingerprint.json", *crops.glob("*/fingerprint.json"),
                          *(wd / "results/external").glob("crops/*/fingerprint.json")]}

    assert _planned_job_list(wd, *targets) == []  # a complete run: nothing
    before, store = prints(), {f: (cohort / f).read_bytes() for f in ("images.npy", "masks.npy")}
    touched = (cohort / "fingerprint.json").stat().st_mtime_ns
    # the same bytes again
    snakemake(wd, "results/cohort/manifest.csv", "--forcerun", "ingest")
    assert {f: (cohort / f).read_bytes() for f in store} == store and prints() == before
    assert (cohort / "fingerprint.json").stat().st_mtime_ns > touched  # rewritten: its checksum decides
    assert _planned_job_list(wd, *targets) == []
    # one slice's new pixels (the synthetic cohort is a workflow output, its files not fingerprinted:
    # the re-ingest is forced)
    dicom = sorted((wd / "data/synthetic/dicom").rglob("*.dcm"))[3]
    ds = pydicom.dcmread(dicom)
    arr = ds.pixel_array.copy()
    arr[: arr.shape[0] // 2] = arr.max()
    ds.PixelData = arr.tobytes()
    ds.save_as(dicom)
    snakemake(wd, "results/cohort/manifest.csv", "--forcerun", "ingest")
    assert (cohort / "images.npy").read_bytes() != store["images.npy"]
    new = prints()["results/cohort/fingerprint.json"]
    assert new["images.npy"] != before["results/cohort/fingerprint.json"]["images.npy"]
    planned = Counter(rule for rule, _ in _planned_job_list(wd, *targets))
    assert planned == {"seg_train": len(main["segment"]["archs"]), "seg_select": 1, "crops": 1, "crops_external": 1,
                       "crop_examples": 1, "classify_train": len(models), "cam": len(cams)}, planned
    snakemake(wd, "results/crops/qc.csv", "results/external/crops/qc.csv")
    assert os.path.samefile(crops / "full/images.npy", cohort / "images.npy")
    assert (crops / "full/images.npy").read_bytes() == (cohort / "images.npy").read_bytes()
    assert prints()["results/crops/full/fingerprint.json"]["images.npy"] == new["images.npy"]
    after = prints()
    changed = {f for f in formats if any(after[f"results/{d}crops/{f}/fingerprint.json"]
                                         != before[f"results/{d}crops/{f}/fingerprint.json"]
                                         for d in ("", "external/"))}
    assert "full" in changed
    jobs = _planned_job_list(wd, *targets)
    assert sorted((w["net"], w["fmt"], int(w["frac"])) for r, w in jobs if r == "classify_train") == \
        sorted(m for m in models if m[1] in changed)
    # Grad-CAM and the crops figure also read the cohort store, whose bytes changed: all still planned
    assert Counter(r for r, _ in jobs) == {"classify_train": sum(m[1] in changed for m in models),
                                           "cam": len(cams), "crop_examples": 1}
