"""The model package built by the real workflow (tiny config) and used as another site would:
the ``anapart`` console script in a folder with no results/, on the tiny run's external cohort.

Oracles: the workflow's own external_predictions.csv and metrics.json (its external scores, the
rows of auc_external.csv), the split's patients, the cohort's DICOM headers (no identifier may leave).
"""

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from anapart.export.archive import open_package, write_package
from anapart.export.predict import main
from anapart.metrics.evaluate import read_model_metrics
from anapart.partition.external import external_table
from support.common import REPO, run_offline
from support.phi import assert_no_phi, phi_values
from support.workflow import snakemake, workflow_copy

pytestmark = pytest.mark.workflow

MODEL = "results/classify/mobilenetv3_large_100/seg112/f100"  # the package's default for config/test.yaml
SALT = {"SITE_SALT": "anapart-demo-salt"}  # the external cohort's salt in the tiny run (config/config.yaml's)
ANAPART = str(Path(sys.executable).parent / "anapart")  # the console script pyproject installs


def anapart(cwd, *args):
    return run_offline([ANAPART, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=SALT, timeout=600)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    wd = workflow_copy(tmp_path_factory.mktemp("package") / "study")
    shutil.copy2(REPO / "requirements.lock", wd)  # a checkout has it; the package records its hash
    snakemake(wd, "results/package/model.zip", f"{MODEL}/metrics.json")
    return wd


@pytest.fixture(scope="module")
def site(packaged, tmp_path_factory) -> Path:
    """Another site's empty folder: a cohort file naming the tiny run's external cohort, and predict run there."""
    site = tmp_path_factory.mktemp("site")
    ext = packaged / "data" / "synthetic_external"
    (site / "cohort.yaml").write_text(yaml.safe_dump({"source": "dicom", "dicom_dir": str(ext / "dicom"),
                                                      "labels": str(ext / "labels.csv")}))
    proc = anapart(site, "predict", packaged / "results/package/model.zip", "--cohort", "cohort.yaml", "--out", "out",
                   "--salt", "env:SITE_SALT", "--private", "private", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return site


def test_the_workflows_package_verifies_and_holds_no_pickle_salt_path_or_identifier(packaged):
    pkg_path = packaged / "results/package/model.zip"
    proc = anapart(packaged.parent, "verify", pkg_path)
    assert proc.returncode == 0 and ": ok, 6 files match their sha256" in proc.stdout, proc.stdout + proc.stderr
    pkg = open_package(pkg_path)
    weights = [n for n in pkg.files if n.startswith("weights/")]
    assert len(weights) == 2 and all(n.endswith(".safetensors") for n in weights)
    blob = b"".join(pkg.files.values())
    assert b"anapart-demo-salt" not in blob and str(packaged).encode() not in blob
    phi = phi_values(packaged / "data" / "synthetic" / "dicom")
    assert phi and not [v for v in phi if v.encode() in blob]
    card = pkg.text("MODEL_CARD.md")
    assert "**Synthetic.**" in card and "## External metrics (another site" in card and "## Limitations" in card
    # patients per class of the training list, counted here from the split
    patients = pd.read_csv(packaged / "results/split/patients.csv")
    train = patients[patients["split"] == "train"]["group"].value_counts().sort_index()
    assert f"training: {len(train.index.repeat(train))} patients (" + \
        ", ".join(f"{k} {v}" for k, v in train.items()) + ")" in card
    m = json.loads((packaged / MODEL / "metrics.json").read_text())
    assert f"aAUC {m['external']['aauc']:.3f}" in card and f"aAUC {m['aauc']:.3f}" in card


def test_predict_in_an_empty_folder_reproduces_the_workflows_external_predictions(packaged, site):
    got = pd.read_csv(site / "out" / "predictions.csv")
    want = pd.read_csv(packaged / MODEL / "external_predictions.csv")
    assert list(got["slice_id"]) == list(want["slice_id"])
    cols = [c for c in want.columns if c.startswith("p_")]
    diff = float(np.abs(got[cols].to_numpy() - want[cols].to_numpy()).max())
    print(f"max abs difference predict vs external_predictions.csv: {diff:.3g}")
    assert diff <= 1e-6
    assert not (site / "results").exists()
    pts = pd.read_csv(site / "out" / "patients.csv")
    mean = got.groupby("patient")[cols].mean()
    assert np.allclose(pts.set_index("patient")[cols].loc[mean.index], mean, atol=1e-12)
    assert list(pts["predicted"]) == list(np.array([c[2:] for c in cols])[mean.to_numpy().argmax(1)])
    # identifiers only under --private, never beside the shareable output
    ext_phi = phi_values(packaged / "data" / "synthetic_external" / "dicom")
    assert_no_phi(site / "out", ext_phi)
    table = pd.read_csv(site / "private" / "pseudonyms.csv", dtype=str)
    assert set(table["pseudonym"]) == set(got["patient"]) and set(table["patient_id"]) <= ext_phi


def test_evaluate_reproduces_the_workflows_external_scores(packaged, site):
    proc = anapart(site, "evaluate", "out/predictions.csv", "--labels", packaged / "results/external/cohort/manifest.csv",
                   "--out", "eval")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((site / "eval" / "summary.json").read_text())
    row = external_table(read_model_metrics([packaged / MODEL / "metrics.json"]), s["classes"]).iloc[0]  # auc_external.csv's row
    assert s["aauc"] == pytest.approx(row["aauc"], abs=1e-9)
    assert s["aauc_sd"] == pytest.approx(row["aauc_sd"], abs=1e-9)
    assert s["aauc_ci"] == pytest.approx([row["ci_low"], row["ci_high"]], abs=1e-9)
    assert s["balanced_accuracy"] == pytest.approx(row["balanced_accuracy"], abs=1e-9)
    for c in s["classes"]:
        assert s["auc"][c] == pytest.approx(row[f"auc_{c}"], nan_ok=True, abs=1e-9)
    ext = json.loads((packaged / MODEL / "metrics.json").read_text())["external"]
    assert s["brier"] == pytest.approx(ext["brier"], abs=1e-9) and s["ece"] == pytest.approx(ext["ece"], abs=1e-9)
    names = sorted(p.name for p in (site / "eval").iterdir())
    assert names == ["reliability.pdf", "reliability.png", "roc.pdf", "roc.png", "summary.json"]  # PNG + vector twin
    text = (site / "eval" / "summary.json").read_text()
    assert not [p for p in pd.read_csv(site / "out" / "patients.csv")["patient"] if p in text]
    # the site's own labels table (PatientIDs) through the private folder gives the same numbers
    assert main(["evaluate", str(site / "out/predictions.csv"), "--labels",
                 str(packaged / "data/synthetic_external/labels.csv"), "--private", str(site / "private"),
                 "--out", str(site / "eval2")]) == 0
    assert json.loads((site / "eval2" / "summary.json").read_text()) == s


def test_a_tampered_package_is_refused_and_nothing_is_written(packaged, tmp_path):
    src = packaged / "results/package/model.zip"
    bad = tmp_path / "tampered.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "weights/segmentation.safetensors":
                data = data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:]
            zout.writestr(info, data)
    proc = anapart(tmp_path, "predict", bad, "--dicom", packaged / "data/synthetic_external/dicom", "--out", "out",
                   "--salt", "env:SITE_SALT")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err and "weights/segmentation.safetensors does not match its sha256" in err
    assert not (tmp_path / "out").exists()
    raw = tmp_path / "flipped.zip"  # a byte flipped in the zip file itself: refused too
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    raw.write_bytes(bytes(data))
    assert anapart(tmp_path, "verify", raw).returncode == 2


def test_an_unlabelled_cohort_is_predicted_whole_with_grad_cam(packaged, site, tmp_path, monkeypatch):
    monkeypatch.setenv("SITE_SALT", SALT["SITE_SALT"])
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(packaged / "results/package/model.zip"), "--dicom",
                 str(packaged / "data/synthetic_external/dicom"), "--out", "all", "--salt", "env:SITE_SALT",
                 "--cam", "--device", "cpu"]) == 0
    got = pd.read_csv(tmp_path / "all" / "predictions.csv")
    labelled = pd.read_csv(site / "out" / "predictions.csv")
    assert set(got["patient"]) == set(labelled["patient"]) and set(labelled["slice_id"]) < set(got["slice_id"])
    assert sorted(p.stem for p in (tmp_path / "all" / "cam").glob("*.png")) == sorted(got["slice_id"])


def test_a_cohort_the_packages_series_rule_cannot_select_fails_with_the_reason(packaged, tmp_path, monkeypatch, capsys):
    pkg = open_package(packaged / "results/package/model.zip")
    d = pkg.descriptor
    d["preprocessing"]["series"]["description"] = "FLAIR"  # a package for another sequence
    write_package(tmp_path / "flair.zip", {**pkg.files, "package.json": json.dumps(d).encode()})
    monkeypatch.setenv("SITE_SALT", SALT["SITE_SALT"])
    assert main(["predict", str(tmp_path / "flair.zip"), "--dicom", str(packaged / "data/synthetic_external/dicom"),
                 "--out", str(tmp_path / "out"), "--salt", "env:SITE_SALT"]) == 2
    err = capsys.readouterr().err
    assert "cannot take this cohort" in err and "FLAIR" in err and "6 problems" in err
    assert not (tmp_path / "out").exists()
