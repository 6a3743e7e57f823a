"""The reporting checklist is filled from the run's files, never from typed-in numbers."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from anapart.report import checklist
from support.common import REPO


def _run(tmp_path, *, external=True, n_patients=37, aauc=(0.81, 0.79)) -> tuple[dict, dict]:
    """A run's files, small and hand-made; returns (paths, config)."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["classify"]["formats"] = ["full", "seg112"]
    cfg["split"]["fractions"] = [100, 50]
    paths = checklist.input_paths(fractions=[100, 50], external=external, staging=False)
    paths = {k: ({f: str(tmp_path / p) for f, p in v.items()} if k == "train" else str(tmp_path / v))
             for k, v in paths.items()}

    def write(path, obj):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            obj.to_csv(path, index=False)
        else:
            Path(path).write_text(json.dumps(obj))

    def put(key, obj):
        write(paths[key], obj)

    check = {"files": 412, "series": 41, "patients_in_dicom": 40, "patients_labelled": 39, "patients_ready": n_patients,
             "problems": 0, "files_skipped": {"dicomdir": 1}, "study_period": ["2016-02", "2019-11"],
             "scanners": {"ACME Model 3 T": n_patients}}
    put("check", check)
    put("ingest", {"n_patients": n_patients, "n_slices": 222, "field": 128, "region_masks": 50, "lesion_masks": 90,
                   "classes": {c: 37 for c in cfg["classes"]}})
    put("manifest", pd.DataFrame({"slice_id": ["P1_000"], "patient": ["P1"], "label": ["NPC"]}))
    put("patients", pd.DataFrame({"patient": [f"P{i}" for i in range(8)], "group": ["NPC"] * 4 + ["normal"] * 4,
                                  "split": ["train"] * 6 + ["test"] * 2}))
    put("test", pd.DataFrame({"slice_id": ["P6_000", "P7_000", "P7_001"], "label": ["NPC", "normal", "normal"]}))
    for f, n in ((100, 30), (50, 15)):
        write(paths["train"][f], pd.DataFrame({"slice_id": [f"s{i}" for i in range(n)], "label": ["NPC"] * n}))
    put("crops_qc", pd.DataFrame({"slice_id": ["a", "b", "c"], "fallback": [True, False, False]}))
    put("selected", {"selected": "unet", "reason": "highest mean Dice: unet 0.812 vs deeplabv3 0.700"})
    # the smaller fraction 0.2 lower: the items quote the largest fraction's numbers
    rows = [{"net": n, "fmt": f, "frac": r, "aauc": a - 0.2 * (r == 50), "ci_low": a - 0.1 - 0.2 * (r == 50),
             "ci_high": a + 0.05 - 0.2 * (r == 50)}
            for n, a in zip(("n1", "n2"), aauc) for f in ("full", "seg112") for r in (100, 50)]
    put("auc", pd.DataFrame(rows))
    put("calibration", pd.DataFrame([{**{k: r[k] for k in ("net", "fmt", "frac")}, "brier": 0.4, "ece": 0.12,
                                      "brier_external": 0.6, "ece_external": 0.2} for r in rows]))
    put("primary", pd.DataFrame([
        {"role": "primary", "endpoint": "discrimination", "frac": 50, "figure": "aauc", "analysis": "RRRC",
         "contrast": "seg112 - full", "estimate": 0.0412, "ci_low": -0.012, "ci_high": 0.0944, "p": 0.118,
         "sd_over_repeats": float("nan"), "sd_over_seeds": float("nan"), "note": "single split"},
        {"role": "secondary", "endpoint": "discrimination", "frac": 100, "figure": "aauc", "analysis": "RRRC",
         "contrast": "full - seg112", "estimate": 0.01, "ci_low": -0.05, "ci_high": 0.07, "p": 0.7,
         "sd_over_repeats": float("nan"), "sd_over_seeds": float("nan"), "note": ""}]))
    if external:
        put("ext_check", {**check, "patients_in_dicom": 12, "series": 12, "study_period": ["2020-01", "2021-06"],
                          "scanners": {"OTHER Scanner 1.5 T": 12}})
        put("ext_ingest", {"n_patients": 12, "n_slices": 70})
        put("ext_qc", pd.DataFrame({"slice_id": ["x", "y"], "fallback": [False, False]}))
        put("auc_external", pd.DataFrame([{**r, "aauc_internal": r["aauc"], "aauc_external": r["aauc"] - 0.2,
                                           "delta": -0.2} for r in rows]))
    cfg["cohort"]["external"] = {"source": "synthetic"} if external else None
    return paths, cfg


def test_every_item_is_answered_from_the_files(tmp_path):
    paths, cfg = _run(tmp_path)
    t = checklist.build(paths, cfg).set_index("item")
    assert list(t.index) == [i[1] for i in checklist.ITEMS] and list(t.columns) == checklist.COLUMNS[1:]
    assert t["answer"].str.len().gt(40).all() and t["claim"].str.len().gt(0).all()
    src = t.loc["Data source and dates", "answer"]
    assert "2016-02 to 2019-11" in src and "ACME Model 3 T 37" in src and "OTHER Scanner 1.5 T 12" in src
    assert "37 patients (222 slices)" in t.loc["Sample size", "answer"]
    assert "NPC 4, normal 4" in t.loc["Sample size", "answer"]
    splits = t.loc["Data partitions", "answer"]
    assert "6 training patients, 2 test patients (3 test slices)" in splits and "100% 30 slices, 50% 15 slices" in splits
    assert "1 of 3 slices" in t.loc["Missing data", "answer"]
    assert "unet 0.812" in t.loc["Model and training", "answer"]
    # mean over the two networks at the largest fraction: (0.81 + 0.79) / 2
    assert "full 0.800 (Brier 0.400, ECE 0.120)" in t.loc["Performance, incl. calibration", "answer"]
    ext = t.loc["External validation", "answer"]
    assert "12 patients (70 slices)" in ext and "full 0.800 -> 0.600 (ECE external 0.200)" in ext and "-0.200" in ext
    assert paths["auc_external"] in t.loc["External validation", "where"]
    assert "synthetic" in t.loc["Limitations", "answer"]
    assert "at 100% spans 0.70-0.85" in t.loc["Limitations", "answer"]  # CI means at the largest fraction only
    # the primary endpoint is the first item, with its estimate, CI and p as the table gives them
    assert t.index[0] == "Primary endpoint (declared before the run)"
    assert ("primary: seg112 - full (aauc, RRRC, 50% of the training set) +0.041, 95% CI -0.012 to +0.094, "
            "p = 0.118") in t.iloc[0]["answer"]


def test_answers_follow_the_files_not_fixed_numbers(tmp_path):
    a = checklist.build(*_run(tmp_path / "a", n_patients=37)).set_index("item")
    b = checklist.build(*_run(tmp_path / "b", n_patients=52, aauc=(0.6, 0.7))).set_index("item")
    assert "52 patients" in b.loc["Sample size", "answer"] and "37 patients" in a.loc["Sample size", "answer"]
    assert "full 0.650" in b.loc["Performance, incl. calibration", "answer"]


def test_model_item_and_limitations_follow_the_training_config(tmp_path):
    paths, cfg = _run(tmp_path)
    cfg["classify"]["pretrained"] = "false"  # the string form a user may write; still from scratch
    t = checklist.build(paths, cfg).set_index("item")
    assert "random initialisation" in t.loc["Model and training", "answer"]
    assert "trained from scratch" in t.loc["Limitations", "answer"]
    cfg["classify"]["pretrained"] = "resources/weights"
    t = checklist.build(paths, cfg).set_index("item")
    assert "ImageNet (pretrained)" in t.loc["Model and training", "answer"]
    assert "trained from scratch" not in t.loc["Limitations", "answer"]


def test_without_external_cohort_the_item_says_so(tmp_path):
    t = checklist.build(*_run(tmp_path, external=False)).set_index("item")
    assert t.loc["External validation", "answer"].startswith("No external cohort")
    assert "no external validation" in t.loc["Limitations", "answer"]


def test_an_undefined_value_is_an_error_not_nan_text(tmp_path):
    paths, cfg = _run(tmp_path)
    cal = pd.read_csv(paths["calibration"])
    cal["ece"] = float("nan")
    cal.to_csv(paths["calibration"], index=False)
    with pytest.raises(ValueError, match="Performance"):
        checklist.build(paths, cfg)


def test_flat_and_unflat_round_trip():
    p = checklist.input_paths(fractions=[100, 25], external=True, staging=True)
    assert checklist.unflat(checklist.flat(p)) == p


def test_software_item_names_versions_commit_lock_and_both_papers(tmp_path):
    paths, cfg = _run(tmp_path)
    soft = {"anapart": "9.9.9", "commit": "0123abc", "lock_sha256": "f" * 64, "packages": {"torch": "1.2.3"}}
    t = checklist.build(paths, {**cfg, "cohort": {**cfg["cohort"], "citation": "Buda M 2019"}},
                        software=soft).set_index("item")
    answer = t.loc["Software and code availability", "answer"]
    for words in ("anapart 9.9.9", "commit 0123abc", "f" * 16, "torch 1.2.3", "Li S, Hua HL", "Huang J, He R",
                  "Data set: Buda M 2019"):
        assert words in answer, words
    assert "requirements.lock" in t.loc["Software and code availability", "where"]
