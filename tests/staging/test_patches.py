"""Study B from DICOM to predictions: the synthetic staging cohort, CLAHE and ROI patches
(anapart.staging.patches), the patient split (anapart.cohort.split), and one end-to-end run of training,
prediction and soft voting with the demo's validated settings."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from anapart.cohort.split import assert_staging_disjoint, split_staging
from anapart.io.errors import IngestError
from anapart.staging import models as staging_models
from anapart.staging import patches
from anapart.staging.ensemble import evaluate_stages, soft_vote
from anapart.synthetic import staging as synthetic
from support.roi import boxes_from_masks

REPO = Path(__file__).resolve().parents[2]
PERCENTILES = (0.5, 99.5)

STAGES = ["III", "IVa"]
SEQ = {"T1C": r"T1.*(C\+|POST|GD)", "T2": "T2"}


@pytest.fixture(scope="module")
def stg_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("stg") / "synthetic_staging"
    cfg = synthetic.StagingSyntheticConfig(seed=3, patients={"III": 4, "IVa": 4}, slices_per_patient=2, matrix=96)
    synthetic.generate_staging(root, cfg)
    return root


def validated_staging() -> dict:
    """The demo's ``staging`` section as the workflow sees it: validated, schema defaults filled in."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    return cfg["staging"]


def patch_out(d):
    d.mkdir(parents=True, exist_ok=True)
    return {k: d / f for k, f in (("images", "images.npy"), ("masks", "masks.npy"), ("index", "index.csv"),
                                  ("report", "report.json"), ("native_images", "native_images.npy"),
                                  ("native_masks", "native_masks.npy"))}


def build_patches(root, out_dir, clahe_cfg, **kw):
    out = patch_out(out_dir)
    patches.make_patches(root / "dicom", root / "labels.csv", root / "roi", out, classes=STAGES, sequences=SEQ,
                         size=32, margin=0.25, min_side=12, salt="s", clahe_cfg=clahe_cfg, percentiles=PERCENTILES,
                         **kw)
    return out


def test_synthetic_staging_cohort_is_dicom_with_two_sequences_and_deterministic(stg_cohort, tmp_path):
    from anapart.io import dicom_scan

    series = dicom_scan.scan_series(stg_cohort / "dicom")
    assert len(series) == 16  # 8 patients x (T1C, T2)
    assert {s.description for s in series.values()} == set(synthetic.STAGING_SEQUENCES.values())
    labels = pd.read_csv(stg_cohort / "labels.csv")
    assert list(labels.columns) == ["patient_id", "label", "tnm_stage"]
    assert labels["label"].value_counts().to_dict() == {"III": 4, "IVa": 4}
    again = tmp_path / "again"
    synthetic.generate_staging(again, synthetic.StagingSyntheticConfig(seed=3, patients={"III": 4, "IVa": 4},
                                                                       slices_per_patient=2, matrix=96))
    a = sorted(p.read_bytes() for p in (stg_cohort / "roi").rglob("*.nii.gz"))
    b = sorted(p.read_bytes() for p in (again / "roi").rglob("*.nii.gz"))
    assert a == b and (again / "labels.csv").read_text() == (stg_cohort / "labels.csv").read_text()


def test_stage_shows_in_the_images():
    """IVa patients more often have invading tumours and large necrotic nodes (with overlap)."""
    cfg = synthetic.StagingSyntheticConfig(seed=1, patients={"III": 200, "IVa": 200})
    pats = synthetic.plan_staging_cohort(cfg)
    t4 = {s: np.mean([p["t4"] for p in pats if p["stage"] == s]) for s in STAGES}
    n3 = {s: np.mean([p["n3"] for p in pats if p["stage"] == s]) for s in STAGES}
    assert t4["IVa"] > t4["III"] + 0.3 and n3["IVa"] > n3["III"] + 0.25
    assert 0 < t4["III"] and t4["IVa"] < 1  # overlap: no feature decides the stage alone


def test_clahe_changes_the_cached_patches_and_nothing_else(stg_cohort, tmp_path):
    on = build_patches(stg_cohort, tmp_path / "clahe", {"clip_limit": 2.0, "tile_grid": 8})
    off = build_patches(stg_cohort, tmp_path / "raw", None)
    a, b = np.load(on["images"]), np.load(off["images"])
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))) > 0.01
    # same windows, masks and ids: the arms differ only in preprocessing
    assert pd.read_csv(on["index"]).equals(pd.read_csv(off["index"]))
    assert np.array_equal(np.load(on["masks"]), np.load(off["masks"]))
    assert json.loads(on["report"].read_text())["clahe"] is True


def test_clahe_raises_local_contrast():
    rng = np.random.default_rng(0)
    img = (0.45 + 0.05 * rng.random((64, 64))).astype(np.float32)
    eq = patches.clahe(img, 2.0, 8)
    assert eq.shape == img.shape and eq.dtype == np.float32
    assert eq.std() > 2 * img.std() and 0 <= eq.min() and eq.max() <= 1


def test_patches_have_margin_ids_are_pseudonyms_and_no_phi(stg_cohort, tmp_path):
    out = build_patches(stg_cohort, tmp_path / "p", None)
    idx = pd.read_csv(out["index"])
    assert set(idx["kind"]) == {"tumour", "node"} and set(idx["sequence"]) == {"T1C", "T2"}
    masks = np.load(out["masks"])
    # the ROI never fills the patch: surrounding tissue is kept
    assert all(0 < m.mean() < 0.9 for m in masks)
    raw_ids = set(pd.read_csv(stg_cohort / "labels.csv")["patient_id"])
    text = out["index"].read_text() + out["report"].read_text()
    assert not any(p in text for p in raw_ids)
    assert idx["patient"].str.fullmatch(r"P[0-9a-f]{10}").all()


def test_roi_windows_one_tumour_per_slice_one_patch_per_node():
    lab = np.zeros((64, 64), np.uint8)
    lab[10:20, 10:20] = 1
    lab[22:26, 12:16] = 1  # a second tumour part (invasion): same patch
    lab[40:46, 40:46] = 2
    lab[50:54, 5:9] = 2
    wins = patches.roi_windows(lab, margin=0.5, min_side=8)
    kinds = [w[0] for w in wins]
    assert kinds.count("tumour") == 1 and kinds.count("node") == 2
    t = [w for w in wins if w[0] == "tumour"][0]
    assert t[4] == 32  # box 16 tall x (1 + 2 * 0.5)


def test_bad_staging_input_names_the_file(stg_cohort, tmp_path):
    import shutil

    bad = tmp_path / "c"
    shutil.copytree(stg_cohort, bad)
    pid = pd.read_csv(bad / "labels.csv")["patient_id"][0]
    (bad / "roi" / pid / "T2.nii.gz").unlink()
    with pytest.raises(IngestError, match=f"{pid}/T2.nii.gz"):
        build_patches(bad, tmp_path / "out", None)
    assert not any((tmp_path / "out").iterdir())  # nothing half-written
    labels = pd.read_csv(bad / "labels.csv")
    labels.loc[0, "label"] = "IVb"
    labels.to_csv(bad / "labels.csv", index=False)
    with pytest.raises(IngestError, match=r"labels.csv line 2: unknown class 'IVb'"):
        build_patches(bad, tmp_path / "out", None)


def test_staging_series_choice_lists_candidates_and_warns_about_unused_series(stg_cohort, tmp_path, caplog):
    """Study B chooses series as study A does (cohort.choose_series): a missing sequence lists the
    patient's candidates; a broken series that no sequence uses is a warning, not an error."""
    import logging
    import shutil

    import pydicom

    data = tmp_path / "c"
    shutil.copytree(stg_cohort, data)
    pids = sorted(pd.read_csv(data / "labels.csv")["patient_id"])
    survey = data / "dicom" / pids[0] / "SURVEY"
    shutil.copytree(data / "dicom" / pids[0] / "T2", survey)
    uid = pydicom.uid.generate_uid()
    for f in survey.iterdir():
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SOPInstanceUID = uid, "SURVEY", pydicom.uid.generate_uid()
        ds.save_as(f, enforce_file_format=True)
    victim = sorted(survey.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-50])
    caplog.set_level(logging.WARNING, logger="anapart")
    plans = patches.plan_staging(data / "dicom", data / "labels.csv", SEQ, STAGES)
    assert len(plans) == len(pids) and f"{victim}: pixel data are truncated" in caplog.text
    shutil.rmtree(data / "dicom" / pids[1] / "T2")
    with pytest.raises(IngestError) as err:
        patches.plan_staging(data / "dicom", data / "labels.csv", SEQ, STAGES)
    msg = str(err.value)
    assert msg.startswith("1 problem:") and f"{pids[1]}/T1C: no series matches the series rule (staging.sequences.T2: " \
        "description ~ /T2/" in msg and f"candidates: '{pids[1]}/T1C' (series" in msg


def test_a_patients_patches_never_span_train_and_test(stg_cohort, tmp_path):
    out = build_patches(stg_cohort, tmp_path / "p", None)
    idx = pd.read_csv(out["index"])
    lists = split_staging(idx, classes=STAGES, test_fraction=0.25, seed=0)
    patient = idx.set_index("slice_id")["patient"]
    tr, te = set(patient[lists["train"]["slice_id"]]), set(patient[lists["test"]["slice_id"]])
    assert tr and te and not tr & te
    assert len(lists["train"]) + len(lists["test"]) == len(idx)
    # both stages on both sides
    assert set(lists["test"]["label"]) == set(STAGES)
    with pytest.raises(AssertionError, match="both train and test"):
        assert_staging_disjoint(idx, idx[["slice_id", "label"]], idx[["slice_id", "label"]].head(1))


def test_validation_patients_are_a_third_side_of_the_split(stg_cohort, tmp_path):
    out = build_patches(stg_cohort, tmp_path / "p", None)
    idx = pd.read_csv(out["index"])
    lists = split_staging(idx, classes=STAGES, test_fraction=0.25, seed=0, validation_fraction=0.34)
    patient = idx.set_index("slice_id")["patient"]
    sides = [set(patient[lists[k]["slice_id"]]) for k in ("train", "validation", "test")]
    assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(lists[k]) for k in ("train", "validation", "test")) == len(idx)
    p = lists["patients"].set_index("patient")
    assert set(p.index[p["validation"]]) == sides[1] and (p.loc[list(sides[1]), "split"] == "train").all()
    # the test side is the one without validation patients (same draw)
    assert lists["test"].equals(split_staging(idx, classes=STAGES, test_fraction=0.25, seed=0)["test"])


def test_the_native_store_holds_each_window_unresized(stg_cohort, tmp_path):
    out = build_patches(stg_cohort, tmp_path / "p", None)
    idx = pd.read_csv(out["index"])
    flat = np.load(out["native_images"])
    flat_m = np.load(out["native_masks"])
    assert len(flat) == (idx["side"] ** 2).sum() and (idx["native_offset"].diff().dropna().to_numpy()
                                                      == (idx["side"] ** 2).to_numpy()[:-1]).all()
    stored, stored_m = np.load(out["images"]), np.load(out["masks"])
    assert (idx["spacing_row_mm"] > 0).all() and (idx["spacing_col_mm"] > 0).all()
    for r in idx.itertuples():
        win = flat[r.native_offset:r.native_offset + r.side ** 2].reshape(r.side, r.side)
        m = flat_m[r.native_offset:r.native_offset + r.side ** 2].reshape(r.side, r.side)
        # the network's patch is this window resized (patches.cut_patch on a whole-window "slice")
        assert np.allclose(patches.cut_patch(win, 0, 0, r.side, 32), stored[r.row], atol=2e-3)
        assert np.array_equal(patches.cut_patch(m, 0, 0, r.side, 32, nearest=True), stored_m[r.row])
        assert m.any()


def test_train_predict_and_ensemble_end_to_end(stg_cohort, tmp_path):
    out = build_patches(stg_cohort, tmp_path / "p", {"clip_limit": 2.0, "tile_grid": 8})
    idx = pd.read_csv(out["index"])
    lists = split_staging(idx, classes=STAGES, test_fraction=0.25, seed=0)
    lists["train"].to_csv(tmp_path / "train.csv", index=False)
    lists["test"].to_csv(tmp_path / "test.csv", index=False)
    demo = validated_staging()
    cfg = {"train": {**demo["train"], "lr": 1e-3, "batch_size": 8, "epochs": 2, "input_size": 32, "seed": 0,
                     "schedule": {"type": "exponential", "gamma": 0.5}, "augment": {"rotation": 10, "hflip": 0.5}},
           "basic_cnn": {**demo["basic_cnn"], "epochs": 2}}
    preds = []
    val = lists["test"].iloc[::2]  # stands in for validation patches here
    val.to_csv(tmp_path / "val.csv", index=False)
    for name in ("resnet50", "basic_cnn"):
        epochs = []
        hist = staging_models.train_model(tmp_path / "p", tmp_path / "train.csv", STAGES, name, cfg, tmp_path / f"{name}.pt",
                                          validation_csv=tmp_path / "val.csv", epoch_log=epochs)
        assert len(hist) == 2 and all(np.isfinite(hist))
        # Fig. 5's numbers: each epoch's training loss is the returned history, and the last
        # validation accuracy is the saved model's accuracy on those patches, predicted afresh
        assert [e["epoch"] for e in epochs] == [1, 2] and [e["loss"] for e in epochs] == hist
        assert all(0 <= e["accuracy"] <= 1 and np.isfinite(e["val_loss"]) for e in epochs)
        pv = staging_models.predict(tmp_path / f"{name}.pt", tmp_path / "p", tmp_path / "val.csv", out["index"])
        right = (np.where(pv["p_IVa"] > pv["p_III"], "IVa", "III") == pv["label"]).mean()
        assert epochs[-1]["val_accuracy"] == pytest.approx(right)
        p = staging_models.predict(tmp_path / f"{name}.pt", tmp_path / "p", tmp_path / "test.csv", out["index"])
        assert list(p.columns) == ["slice_id", "label", "p_III", "p_IVa", "patient", "sequence", "kind"]
        assert np.allclose(p[["p_III", "p_IVa"]].sum(axis=1), 1, atol=1e-5)
        preds.append(p)
    ens = soft_vote(preds, STAGES)
    assert np.allclose(ens["p_IVa"], (preds[0]["p_IVa"] + preds[1]["p_IVa"]) / 2)
    m = evaluate_stages(ens, STAGES)
    assert m["n"] == len(lists["test"]) and set(m["by_kind"]) <= {"tumour", "node"}




def test_roi_boxes_give_the_same_patches_as_the_masks_they_bound(stg_cohort, tmp_path):
    boxes = boxes_from_masks(stg_cohort)
    boxes.sample(frac=1, random_state=0).to_csv(tmp_path / "boxes.csv", index=False)  # any row order
    from_masks = build_patches(stg_cohort, tmp_path / "m", None)
    out = patch_out(tmp_path / "b")
    patches.make_patches(stg_cohort / "dicom", stg_cohort / "labels.csv", tmp_path / "boxes.csv", out,
                         classes=STAGES, sequences=SEQ, size=32, margin=0.25, min_side=12, salt="s", clahe_cfg=None,
                         percentiles=PERCENTILES)
    a, b = pd.read_csv(from_masks["index"]), pd.read_csv(out["index"])
    key = ["slice_id", "y0", "x0", "side"]
    assert set(map(tuple, a[key].values)) == set(map(tuple, b[key].values))
    ia, ib = np.load(from_masks["images"]), np.load(out["images"])
    rows_b = b.set_index("slice_id")["row"]
    assert all(np.array_equal(ia[r], ib[rows_b[sid]]) for sid, r in zip(a["slice_id"], a["row"]))
    # a box's patch mask is its rectangle: it covers the ROI shape it bounds
    ma, mb = np.load(from_masks["masks"]), np.load(out["masks"])
    assert all((mb[rows_b[sid]] >= ma[r]).all() for sid, r in zip(a["slice_id"], a["row"]))


@pytest.mark.parametrize("change, message", [
    ({"kind": "gland"}, "kind 'gland' is not one of"),
    ({"instance": 99}, "instance 99 is not in the series"),
    ({"x1": 10_000}, "leaves the"),
    ({"sequence": "FLAIR"}, "with a FLAIR series"),
])
def test_bad_roi_boxes_name_the_csv_line(stg_cohort, tmp_path, change, message):
    boxes = boxes_from_masks(stg_cohort)
    for k, v in change.items():
        boxes.loc[3, k] = v
    boxes.to_csv(tmp_path / "boxes.csv", index=False)
    with pytest.raises(IngestError, match=f"boxes.csv line 5: .*{message}"):
        patches.make_patches(stg_cohort / "dicom", stg_cohort / "labels.csv", tmp_path / "boxes.csv",
                             patch_out(tmp_path / "o"), classes=STAGES, sequences=SEQ, size=32, margin=0.25,
                             min_side=12, salt="s", clahe_cfg=None, percentiles=PERCENTILES)
    assert not any((tmp_path / "o").iterdir())


def test_staging_reads_an_export_folder_with_compressed_enhanced_series_and_junk(stg_cohort, tmp_path):
    """Study B reads through the same DICOM reader: RLE-compressed T2, an enhanced T1C, a localizer,
    a report and a README change nothing in the patches."""
    import shutil

    import pydicom

    from support.dicom_export import enhanced_from_classic, non_image, write_variant

    ref = build_patches(stg_cohort, tmp_path / "ref", {"clip_limit": 2.0, "tile_grid": 8})
    c = tmp_path / "export"
    shutil.copytree(stg_cohort, c)
    patients = sorted(p for p in (c / "dicom").iterdir())
    for t2 in sorted((c / "dicom").glob("*/T2/*.dcm")):
        write_variant(t2, t2, "rle")
    t1c = sorted((patients[0] / "T1C").iterdir())
    enhanced_from_classic([{"path": f} for f in t1c], patients[0] / "t1c_enhanced.dcm")
    shutil.rmtree(patients[0] / "T1C")
    loc = pydicom.dcmread(sorted((patients[1] / "T2").iterdir())[0])
    loc.SeriesDescription, loc.SeriesInstanceUID = "3-plane localizer", "1.2.826.0.1.3680043.10.999"
    (patients[1] / "LOC").mkdir()
    loc.save_as(patients[1] / "LOC" / "loc.dcm", enforce_file_format=True)
    non_image("sr", loc.PatientID, patients[1] / "report.dcm")
    (c / "dicom" / "README.txt").write_text("export\n")
    assert pydicom.dcmread(sorted((patients[1] / "T2").iterdir())[0]).file_meta.TransferSyntaxUID.is_compressed
    out = build_patches(c, tmp_path / "exp", {"clip_limit": 2.0, "tile_grid": 8})
    for k in ("images", "masks", "index"):
        assert out[k].read_bytes() == ref[k].read_bytes(), k


def test_a_staging_checkpoint_of_another_split_is_discarded(stg_cohort, tmp_path, caplog):
    """Study B's models resume only on the same training list and patches: killed in epoch 2, rerun
    on another split, the basic CNN starts over (the log names the list) and ends as a clean run."""
    import logging

    import torch

    from anapart.learn import data

    out = build_patches(stg_cohort, tmp_path / "p", {"clip_limit": 2.0, "tile_grid": 8})
    idx = pd.read_csv(out["index"])
    cfg = {"train": {**validated_staging()["train"], "batch_size": 8, "epochs": 3, "input_size": 32, "seed": 0},
           "basic_cnn": {**validated_staging()["basic_cnn"], "epochs": 3}}
    first = split_staging(idx, classes=STAGES, test_fraction=0.25, seed=0)["train"]
    second = split_staging(idx, classes=STAGES, test_fraction=0.25, seed=1)["train"]
    assert set(first["slice_id"]) != set(second["slice_id"])
    first.to_csv(tmp_path / "train.csv", index=False)
    calls = {"n": 0}
    real = data.CropData.batch

    def dying(self, i, augment=None):
        calls["n"] += 1
        if calls["n"] > -(-len(first) // 8) + 1:  # the second batch of epoch 2
            raise KeyboardInterrupt
        return real(self, i, augment)

    data.CropData.batch = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            staging_models.train_model(tmp_path / "p", tmp_path / "train.csv", STAGES, "basic_cnn", cfg,
                                       tmp_path / "m.pt", checkpoint=tmp_path / "m.ckpt")
    finally:
        data.CropData.batch = real
    assert (tmp_path / "m.ckpt").exists()
    second.to_csv(tmp_path / "train.csv", index=False)
    caplog.set_level(logging.INFO, logger="anapart.training")
    staging_models.train_model(tmp_path / "p", tmp_path / "train.csv", STAGES, "basic_cnn", cfg, tmp_path / "m.pt",
                               checkpoint=tmp_path / "m.ckpt")
    assert "written for other input 'training list'" in caplog.text and "resuming" not in caplog.text
    second.to_csv(tmp_path / "clean.csv", index=False)
    staging_models.train_model(tmp_path / "p", tmp_path / "clean.csv", STAGES, "basic_cnn", cfg, tmp_path / "c.pt")
    a = torch.load(tmp_path / "m.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "c.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
