"""Real patients through the real workflow: a slice of config/lgg.yaml (the LGG FLAIR cohort, 31
TCGA patients as NIfTI, ../shared/data/lgg-nifti) from the NIfTI files to the AUC table: ingest,
patient-level split, both segmentation models, crops, one network x three formats x one fraction."""

import json
import os

import pandas as pd
import pytest
import yaml

from support.common import REPO, run_offline
from support.workflow import snakemake_cmd, workflow_copy

pytestmark = pytest.mark.workflow

LGG = (REPO.parent / "shared" / "data" / "lgg-nifti").resolve()
SLICE = {  # CPU-sized: a few epochs, one network, the 100% fraction, a small field
    "cohort": {"nifti_dir": str(LGG), "labels": str(LGG / "labels.csv"), "field": 64},
    "segment": {"epochs": 2, "input_size": 32},
    "split": {"fractions": [100]},
    "classify": {"nets": ["mobilenetv3_large_100"], "epochs": 2, "input_size": 32},
    "cam": {"fractions": [100]},
    "evaluate": {"n_boot": 20},
    "stats": {"primary": {"fraction": 100}},  # the declared endpoint must be one of the fractions run
}


@pytest.fixture(scope="module")
def lgg_run(tmp_path_factory):
    if not (LGG / "labels.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{LGG} is missing: CI has shared/ beside the clone")
        pytest.skip(f"{LGG} is not here")
    wd = workflow_copy(tmp_path_factory.mktemp("lgg") / "wf")
    (wd / "slice.yaml").write_text(yaml.safe_dump(SLICE))
    cmd = snakemake_cmd("results/tables/auc.csv")
    cmd = cmd[:cmd.index("--configfile")] + ["--configfile", "config/config.yaml", "config/lgg.yaml", "slice.yaml"]
    proc = run_offline(cmd, cwd=wd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return wd


def test_every_real_patient_is_ingested_from_nifti(lgg_run):
    report = json.loads((lgg_run / "results/cohort/ingest.json").read_text())
    truth = pd.read_csv(LGG / "labels.csv")
    assert report["n_patients"] == 31 and report["n_slices"] == len(truth) == 854
    assert report["classes"] == truth["label"].value_counts().to_dict()
    assert report["region_masks"] == 854 and report["lesion_masks"] == (truth["label"] != "normal").sum()


def test_the_split_is_by_patient_and_the_table_has_three_formats(lgg_run):
    patients = pd.read_csv(lgg_run / "results/split/patients.csv")
    assert len(patients) == 31 and patients["patient"].is_unique
    assert set(patients["split"]) == {"train", "test"} and (patients["split"] == "test").sum() >= 6
    auc = pd.read_csv(lgg_run / "results/tables/auc.csv")
    assert sorted(auc["fmt"]) == ["full", "seg112", "seg224"] and set(auc["frac"]) == {100}
    assert auc["aauc"].between(0, 1).all()
    per_class = [f"auc_{c}" for c in ("astrocytoma", "oligoastrocytoma", "oligodendroglioma", "normal")]
    assert auc[per_class].notna().all().all()  # every class is among the test patients' slices


def test_no_tcga_barcode_under_results(lgg_run):
    """The PatientIDs are TCGA barcodes: pseudonyms only under results/."""
    for p in (lgg_run / "results").rglob("*"):
        if p.is_file():
            assert b"TCGA" not in p.read_bytes(), p
