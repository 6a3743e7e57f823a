"""Runs the real Snakemake DAG (synthetic cohort -> ingest -> split -> segmentation -> crops) on the tiny config."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from test_ingest import assert_no_phi, phi_values

pytestmark = pytest.mark.workflow

SPLIT_FILES = ("patients.csv", "test.csv", "train_f100.csv", "train_f50.csv", "train_f25.csv")


def workflow_copy(dst: Path) -> Path:
    """A checkout-like copy of the workflow (no results, no data), as a user would run it."""
    dst.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "config", "envs", "src"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst / name)
    return dst


def snakemake_cmd(*args: str, extra_config: Path | None = None) -> list[str]:
    """Targets and flags first: --configfile takes several values."""
    cmd = [sys.executable, "-m", "snakemake", "-c2", *args, "--configfile", "config/test.yaml"]
    return cmd + ([str(extra_config)] if extra_config else [])


def user_cohort_config(path: Path, data: Path, masks: bool = True, salt: str = "anapart-demo-salt") -> Path:
    """A researcher's config for their own DICOM folder (here: a copy of the synthetic one)."""
    cfg = {"source": "dicom", "dicom_dir": str(data / "dicom"), "labels": str(data / "labels.csv"),
           "mask_dir": str(data / "masks") if masks else None, "pseudonym_salt": salt}
    path.write_text(yaml.safe_dump({"cohort": cfg}))
    return path


def snakemake(cwd: Path, *args: str, extra_config: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_cmd(*args, extra_config=extra_config), cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()}" for p in sorted((cwd / "logs").glob("*.log")))
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}\n{logs}")
    return proc


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
    assert values and staging_values
    assert_no_phi(built / "results", values | staging_values)


def test_staging_from_user_dicom_with_roi_boxes(built, tmp_path):
    """Study B on a researcher's own folder (here: a copy of the synthetic one) with drawn rectangles."""
    from test_staging import boxes_from_masks

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
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=300)
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
    best = max(sel["candidates"], key=lambda a: sel["candidates"][a]["validation"]["dice_mean"])
    assert sel["selected"] == best
    man = pd.read_csv(built / "results/cohort/manifest.csv")
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
    auc = pd.read_csv(built / "results/tables/auc.csv")
    assert len(auc) == len(nets) * 3 * 3
    for row in auc.itertuples():
        d = built / f"results/classify/{row.net}/{row.fmt}/f{row.frac}"
        m = json.loads((d / "metrics.json").read_text())
        assert {"auc", "aauc", "aauc_sd", "aauc_ci"} <= set(m) and set(m["auc"]) == set(classes)
        assert m["aauc"] == pytest.approx(row.aauc, abs=1e-4)
        pred = pd.read_csv(d / "predictions.csv")
        assert list(pred.columns) == ["slice_id", "label", *[f"p_{c}" for c in classes]]
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


def test_rerunning_one_model_rebuilds_only_it_and_its_tables(built):
    """Snakemake 9 compares checksums of small inputs, so a touched-but-identical file triggers nothing;
    a *changed* one reruns exactly its dependants."""
    target = "results/tables/anova.csv"
    model_dir = built / "results/classify/efficientnet_b0/seg112/f50"
    rel = model_dir.relative_to(built).as_posix()
    assert _planned_jobs(built, target) == {}
    # one model deleted and its target asked for: only that model is retrained and rescored
    before = {p: p.stat().st_mtime_ns for p in (built / "results").rglob("*") if p.is_file()}
    old_metrics = (model_dir / "metrics.json").read_bytes()
    shutil.rmtree(model_dir)
    assert _planned_jobs(built, f"{rel}/metrics.json") == {"classify_train": 1, "classify_eval": 1}
    proc = snakemake(built, f"{rel}/metrics.json")
    assert "2 of 2 steps (100%) done" in proc.stdout + proc.stderr
    changed = {p for p in (built / "results").rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert {p.relative_to(model_dir).as_posix() for p in changed} == {"model.pt", "predictions.csv",
                                                                       "metrics.json", "roc.png"}
    # training is deterministic on the CPU: the rebuilt model scores byte-identically, tables stand
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
    assert changed == {f"{rel}/metrics.json", f"{rel}/roc.png", "results/tables/auc.csv", "results/tables/auc_groups.csv",
                       "results/figures/aauc_bars.png", "results/tables/anova.csv", "results/tables/posthoc.csv"}


def test_default_config_plans_36_classifiers():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("Job stats:")[1].split("total")[0]
    counts = {p[0]: int(p[1]) for p in (line.split() for line in table.splitlines()) if len(p) == 2 and p[1].isdigit()}
    assert counts["classify_train"] == 36 and counts["classify_eval"] == 36


def test_cam_contracts_and_report(built):
    scores = sorted((built / "results/cam").glob("*/*/f100/scores.csv"))
    assert len(scores) == 2 * 3  # test config: 2 nets x 3 formats at 100%
    from anapart.cam import SCORE_COLUMNS

    for p in scores:
        s = pd.read_csv(p)
        assert list(s.columns) == ["slice_id", "label", *SCORE_COLUMNS]
        s = s.astype({c: float for c in SCORE_COLUMNS})  # the tiny models may have no correct lesion slice
        ok = s["score_continuous"].notna() & (s["chance"] < 1)
        assert np.allclose(s.loc[ok, "corrected"], (s.loc[ok, "score_continuous"] - s.loc[ok, "chance"])
                           / (1 - s.loc[ok, "chance"]))
    # chance levels: the lesion's share of each format's window, largest for the smallest window
    summary = pd.read_csv(built / "results/tables/cam_scores.csv")
    assert len(summary) == 6
    assert {"n", "score_mean", "score_sd", "chance_mean", "corrected_mean", "corrected_sd", "binned_mean",
            "common_corrected_mean"} <= set(summary.columns)
    chance = summary.groupby("fmt")["chance_mean"].mean()
    if chance.notna().all():
        assert chance["seg112"] > chance["seg224"] > chance["full"]
    tests = pd.read_csv(built / "results/tables/cam_tests.csv")
    assert set(tests["unit"]) == {"network", "mixed", "paper"}
    assert {"contrast", "statistic", "p", "p_holm"} <= set(tests.columns)
    assert not (built / "results/tables/cam_ttest.csv").exists()
    snakemake(built, "--report", "report.html")
    html = (built / "report.html").read_text(errors="replace")
    assert "auc.csv" in html and "anova.csv" in html and "cam_scores.csv" in html and "cam_tests.csv" in html


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
        assert sum(map(sum, m["confusion"])) == len(test)
        assert (d / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    # the ensemble really is the mean of the five (here: two) transfer models
    ens = pd.read_csv(built / "results/staging/ensemble/predictions.csv")
    members = [pd.read_csv(built / f"results/staging/{m}/predictions.csv") for m in ("resnet50", "densenet121")]
    assert np.allclose(ens["p_IVa"], (members[0]["p_IVa"] + members[1]["p_IVa"]) / 2)
    t3 = pd.read_csv(built / "results/staging/tables/table3_preprocessing.csv")
    assert len(t3) == 4 and set(t3["clahe"]) == {True, False}
    t4 = pd.read_csv(built / "results/staging/tables/table4_models.csv")
    assert set(t4["method"]) == {"basic_cnn", "resnet50", "densenet121", "ensemble"} and set(t4["stage"]) == set(stages)
    t5 = pd.read_csv(built / "results/staging/tables/table5_comparison.csv")
    assert set(t5["method"]) == {"TNM staging", "radiomics", "ensemble"}
    ens_m = json.loads((built / "results/staging/ensemble/metrics.json").read_text())
    assert t4.loc[t4["method"] == "ensemble", "accuracy"].iloc[0] == pytest.approx(ens_m["accuracy"], abs=1e-3)
    assert set(t5.loc[t5["simulated"], "method"]) == {"TNM staging"}  # the demo's TNM column is generated
    pts = pd.read_csv(built / "results/staging/tables/patients.csv").set_index("method")
    assert {"accuracy", "ci_low", "ci_high", "mcnemar_p"} <= set(pts.columns)
    assert set(pts.index) == set(STAGING_METHODS) | {"TNM staging"} and bool(pts.loc["TNM staging", "simulated"])
    n_patients = index.set_index("slice_id").loc[test["slice_id"], "patient"].nunique()
    assert (pts["n_patients"] == n_patients).all() and np.isnan(pts.loc["ensemble", "mcnemar_p"])
    assert pts.drop(index="ensemble")["mcnemar_p"].between(0, 1).all()
    assert (pts.drop(index="ensemble")["mcnemar_p_holm"] >= pts.drop(index="ensemble")["mcnemar_p"]).all()
    assert ((pts["ci_low"] <= pts["accuracy"]) & (pts["accuracy"] <= pts["ci_high"])).all()
    assert pts.loc["ensemble", "patch_accuracy"] == pytest.approx(ens_m["accuracy"], abs=1e-3)
    # radiomics reads the patches without CLAHE (staging.radiomics.preprocessing: raw)
    info = json.loads((built / "results/staging/radiomics/model.json").read_text())
    assert info["patches"] == "results/staging/patches/raw"
    # CAM per model, patients pseudonymised, patches of one patient on one side only
    for m in ("resnet50", "densenet121", "basic_cnn"):
        assert (built / f"results/staging/{m}/cam.png").stat().st_size > 0
        assert "roi_share" in pd.read_csv(built / f"results/staging/{m}/cam.csv").columns
    side = pd.read_csv(built / "results/staging/split/patients.csv").set_index("patient")["split"]
    assert set(side[index.set_index("slice_id").loc[test["slice_id"], "patient"]]) == {"test"}


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(built, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    snakemake(built, "--report", "rendered.html")
    html = (built / "rendered.html").read_text(errors="replace")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]

    def shown(page: Path) -> str:
        """The page's visible text once its JavaScript ran (scripts and styles stripped from the DOM)."""
        proc = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        body = re.sub(r"<script.*?</script>|<style.*?</style>", "", proc.stdout, flags=re.S)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))

    front = shown(built / "rendered.html")
    for category in ("Segmentation", "Classification", "Statistics", "Interpretability", "QC", "Staging"):
        assert category in front, f"report did not render category {category}: {front[:500]}"
    # open a category as a reader's click does (the report app's own showCategory) and read the list
    expected = {("Statistics", None): ["results/tables/anova.csv", "results/tables/posthoc.csv",
                                       "results/tables/cam_tests.csv", "results/tables/auc_pairs.csv"],
                ("Classification", "Other"): ["results/tables/auc.csv", "results/tables/auc_groups.csv",
                                              "results/figures/aauc_bars.png"],
                ("Interpretability", "Other"): ["results/tables/cam_scores.csv"],
                ("Segmentation", None): ["results/seg/qc_examples.png", "results/seg/selected.json"],
                ("QC", None): ["results/crops/qc.csv", "results/cohort/ingest.json"],
                ("Staging", "Tables"): ["results/staging/tables/table3_preprocessing.csv",
                                        "results/staging/tables/table4_models.csv",
                                        "results/staging/tables/table5_comparison.csv",
                                        "results/staging/tables/patients.csv",
                                        "results/staging/figures/confusion_matrices.png"]}
    end = html.rfind("</body>")
    for (category, sub), tables in expected.items():
        page = tmp_path / f"{category}.html"
        action = (f'app.showCategory("{category}")' if sub is None else
                  f'app.setView({{navbarMode: "subcategory", category: "{category}", subcategory: "{sub}"}})')
        click = f"<script>setTimeout(function(){{{action};}}, 300);</script>"
        page.write_text(html[:end] + click + html[end:])
        text = shown(page)
        for t in tables:
            assert t in text, f"{category} does not list {t}: {text[:600]}"
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1280,900", f"--screenshot={shot}",
                    (built / "rendered.html").as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000  # a real page, not a blank one
