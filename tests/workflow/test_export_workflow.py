"""A PACS export as hospitals hand it over, run through the real Snakemake workflow to the report;
a cohort with several problems listed by one run of the preflight; weights folders in the DAG."""

import json
import os
import shutil

import pandas as pd
import pydicom
import pytest
import torch
import yaml

from anapart import CLASSES
from anapart.cohort.preflight import ingest
from anapart.cohort.series import SeriesRule
from anapart.synthetic.partition import SyntheticConfig, generate
from support.common import REPO, run_offline, store_paths
from support.dicom_export import pacs_export
from support.phi import assert_no_phi, phi_values
from support.workflow import snakemake, snakemake_cmd, workflow_copy

pytestmark = pytest.mark.workflow

SALT = "export-salt"


def tiny_config() -> dict:
    """config/config.yaml with config/test.yaml merged over it (what the workflow tests run)."""
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    test = yaml.safe_load((REPO / "config" / "test.yaml").read_text())

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    return merge(base, test)


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_cohort") / "synthetic"
    generate(root, SyntheticConfig.from_dict(tiny_config()["synthetic"]))
    return root


def save_weights(folder, nets):
    """ImageNet-layout weights files made here (timm.create_model(...).state_dict()), never downloaded."""
    import timm
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for k, net in enumerate(nets):
        torch.manual_seed(k)
        state = timm.create_model(net, pretrained=False).state_dict()
        if k % 2:
            torch.save(state, folder / f"{net}.pth")
        else:
            save_file({n: t.contiguous() for n, t in state.items()}, str(folder / f"{net}.safetensors"))


def test_pacs_export_runs_from_snakemake_to_the_report(tiny_cohort, tmp_path):
    """Localizer + T1 + JPEG 2000 T2 per patient, a structured report, DICOMDIR and README.txt, ImageNet-
    layout weights from a folder: `snakemake -c2 --configfile config/test.yaml user.yaml` runs to the
    tables and the report with no hand edit, and the store equals the plain cohort's."""
    export = tmp_path / "CD_EXPORT"
    counts = pacs_export(tiny_cohort / "dicom", export, t2_syntax="jpeg2000_lossless")
    assert (export / "DICOMDIR").is_file() and (export / "README.txt").is_file()
    nets = tiny_config()["classify"]["nets"]
    save_weights(tmp_path / "weights", nets)
    user = tmp_path / "hospital.yaml"
    user.write_text(yaml.safe_dump({
        "cohort": {"source": "dicom", "dicom_dir": str(export), "labels": str(tiny_cohort / "labels.csv"),
                   "mask_dir": str(tiny_cohort / "masks"), "pseudonym_salt": SALT, "series": {"description": "T2"}},
        "classify": {"pretrained": str(tmp_path / "weights")},
        "staging": {"enabled": False},
    }))
    wd = workflow_copy(tmp_path / "wf")
    proc = snakemake(wd, extra_config=user)
    assert "rule weights" not in proc.stdout + proc.stderr  # the folder had every network's file
    auc = pd.read_csv(wd / "results/tables/auc.csv")
    assert len(auc) == len(nets) * 3 * 3 and auc["aauc"].between(0, 1).all()
    for net in nets:
        assert "pretrained weights from" in (wd / f"logs/classify/{net}_full_f100.log").read_text()
    # the preflight's table: one row per patient, the T2 chosen among three series, skipped files counted
    check = pd.read_csv(wd / "results/cohort/check.csv")
    labelled = pd.read_csv(tiny_cohort / "labels.csv")["patient_id"].nunique()
    assert len(check) == labelled and (check["series_found"] == 3).all() and (check["series_matching"] == 1).all()
    assert set(check["description"]) == {"AX T2 FSE"} and (check["problems"] == 0).all()
    assert set(check["transfer_syntax"]) == {"JPEG 2000 Image Compression (Lossless Only)"}
    skipped = json.loads((wd / "results/cohort/ingest.json").read_text())["files_skipped"]
    assert skipped == {"dicomdir": 1, "not_dicom": 1, "structured_report": counts["sr"]}
    log = (wd / "logs/cohort_check.log").read_text()
    assert "skipped (not_dicom): README.txt" in log and "skipped (dicomdir): DICOMDIR" in log
    # lossless: the same store as the plain, uncompressed single-series cohort
    ref = tmp_path / "ref"
    ingest(tiny_cohort / "dicom", tiny_cohort / "labels.csv", tiny_cohort / "masks", store_paths(ref),
           classes=CLASSES, field=tiny_config()["cohort"]["field"], salt=SALT,
           series=SeriesRule.from_config(tiny_config()["cohort"]["series"]),
           percentiles=tuple(tiny_config()["cohort"]["intensity_percentiles"]))
    for f in ("images.npy", "masks.npy", "manifest.csv"):
        assert (wd / "results/cohort" / f).read_bytes() == (ref / f).read_bytes(), f
    snakemake(wd, "--report", "report.html", extra_config=user)
    html = (wd / "report.html").read_text(errors="replace")
    assert "auc.csv" in html and "check.csv" in html
    assert_no_phi(wd / "results", phi_values(tiny_cohort / "dicom"))
    assert "SYN" in (wd / "private/cohort/plan.json").read_text()  # PatientIDs stay out of results/


def test_a_cohort_with_several_problems_lists_them_all_in_one_run(tiny_cohort, tmp_path):
    data = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, data)
    pids = sorted(p.name for p in (data / "dicom").iterdir())
    labels = pd.read_csv(data / "labels.csv")
    labels.loc[0, "label"] = "lymphona"  # line 2
    labels = pd.concat([labels, pd.DataFrame({"patient_id": ["GHOST-7"], "instance": [1], "label": ["NPC"]})])
    labels.to_csv(data / "labels.csv", index=False)
    victim = sorted((data / "dicom" / pids[1]).iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-100])
    (data / "dicom" / pids[2] / "IM0001.dcm").write_text("interrupted copy")
    shutil.copytree(data / "dicom" / pids[3], data / "dicom" / f"{pids[3]}_again")  # same series twice
    for f in (data / "dicom" / f"{pids[3]}_again").iterdir():
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.4242"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.4242.{ds.InstanceNumber}"
        ds.save_as(f, enforce_file_format=True)
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({"cohort": {
        "source": "dicom", "dicom_dir": str(data / "dicom"), "labels": str(data / "labels.csv"),
        "mask_dir": str(data / "masks"), "pseudonym_salt": SALT}}))
    wd = workflow_copy(tmp_path / "wf")
    proc = run_offline(snakemake_cmd("results/split/patients.csv", extra_config=user), cwd=wd,
                       capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    console = proc.stdout + proc.stderr
    assert "Error in rule cohort_check" in console and "logs/cohort_check.log" in console
    log = (wd / "logs/cohort_check.log").read_text()
    assert "IngestError: 5 problems:\n" in log
    for fragment in ("labels.csv line 2: unknown class 'lymphona'",
                     f"labels.csv line {len(labels) + 1}: no DICOM series for this patient",
                     f"{victim.name}: pixel data are truncated",
                     "IM0001.dcm: not a readable DICOM file",
                     "2 series match the series rule"):
        assert fragment in log, fragment
    assert "rule ingest" not in console  # the preflight stopped the run before anything was decoded
    leftovers = [p for p in (wd / "results").rglob("*") if p.is_file()] if (wd / "results").exists() else []
    assert leftovers == []
    table = pd.read_csv(wd / "logs/cohort_check.csv")  # kept beside the log
    assert len(table) == len(pids) + 1 and table["problems"].sum() >= 3


def test_weights_folder_in_the_dag(tmp_path):
    """classify/staging training jobs wait for their network's file; rule weights fetches only what is
    missing. The two settings may spell one folder differently (absolute, relative); two folders fail."""
    cfg = tiny_config()
    nets = cfg["classify"]["nets"]
    folder = tmp_path / "weights"
    save_weights(folder, nets)
    wd = workflow_copy(tmp_path / "wf")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"classify": {"pretrained": str(folder)},
                                     "staging": {"train": {"pretrained": str(tmp_path / "elsewhere")}}}))
    proc = run_offline(snakemake_cmd("-n", extra_config=other), cwd=wd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "name different weights folders" in proc.stdout + proc.stderr
    user = tmp_path / "w.yaml"
    user.write_text(yaml.safe_dump({"classify": {"pretrained": str(folder)},
                                    "staging": {"train": {"pretrained": os.path.relpath(folder, wd)}}}))

    def planned(*targets):
        proc = snakemake(wd, "-n", *targets, extra_config=user)
        return proc.stdout + proc.stderr

    # the folder appears relative to the working directory (the report prints rule outputs)
    rel = os.path.relpath(folder, wd)
    out = planned(f"results/classify/{nets[0]}/full/f100/model.pt")
    assert "rule weights" not in out and f"{rel}/{nets[0]}" in out and str(folder) not in out
    out = planned(*[f"results/staging/{m}/model.pt" for m in cfg["staging"]["models"]])
    assert out.count("rule weights:") == len(cfg["staging"]["models"])  # not in the folder: fetched once each
    for m in cfg["staging"]["models"]:
        assert f"{rel}/{m}.safetensors" in out
