import json

import numpy as np
import pytest
import torch

from anapart import CLASSES
from anapart.cohort.split import split_patients
from anapart.io.store import load_store
from anapart.learn import training
from anapart.partition.segment import build_model, dice, select, train_segmenter


def test_dice_known_overlaps():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0, :10] = True
    b[0, 5:] = True
    b[1, :5] = True
    assert dice(a, b) == pytest.approx(2 * 5 / 20)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def _m(val, test):
    return {"validation": {"dice_mean": val, "dice_sd": 0.1, "n": 5}, "test": {"dice_mean": test, "dice_sd": 0.1, "n": 7}}


def test_select_uses_validation_dice_never_test_dice_then_config_order():
    # deeplabv3 is better on validation, unet on test: validation decides
    m = {"unet": _m(0.80, 0.95), "deeplabv3": _m(0.90, 0.70)}
    choice = select(m)
    assert choice["selected"] == "deeplabv3" and choice["chosen_on"] == "validation"
    assert "deeplabv3 0.900 vs unet 0.800" in choice["reason"]
    assert choice["candidates"]["unet"] == {"validation": {"dice_mean": 0.80, "dice_sd": 0.1, "n": 5},
                                            "test": {"dice_mean": 0.95, "dice_sd": 0.1, "n": 7}}
    assert select({"unet": _m(0.8, 0.1), "deeplabv3": _m(0.8, 0.9)})["selected"] == "unet"  # tie: config order
    with pytest.raises(ValueError, match="validation"):
        select({"unet": _m(None, 0.9)})


SEG = dict(encoder="resnet18", encoder_weights=None, input_size=32, optimizer="rmsprop", lr=1e-3, batch_size=8,
           epochs=5, seed=0, hflip=True, threshold=0.5)


def test_segmentation_training_lowers_loss_and_writes_contract(cohort, run_ingest, tmp_path):
    _, out = run_ingest(cohort, field=32)
    manifest, _, _ = load_store(out)
    patients = split_patients(manifest, 0.25, seed=0, classes=CLASSES)
    # the tiny cohort has one training patient per class, too few for a stratified share: hold out two by hand
    patients["validation"] = patients["patient"].isin(patients.loc[patients["split"] == "train", "patient"][:2])
    patients.to_csv(tmp_path / "patients.csv", index=False)
    torch.set_num_threads(2)
    metrics = train_segmenter(out, tmp_path / "patients.csv", "unet", SEG, tmp_path / "model.pt",
                              tmp_path / "metrics.json", device="cpu")
    hist = metrics["loss_history"]
    assert len(hist) == 5 and hist[-1] < 0.9 * hist[0]  # a margin no float path erases
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    val = set(patients.loc[patients["validation"], "patient"])
    n_val = int(manifest["patient"].isin(val).sum())  # the tiny cohort annotates every slice
    n_train = int(manifest["patient"].isin(set(patients.loc[patients["split"] == "train", "patient"]) - val).sum())
    assert on_disk["validation"]["n"] == n_val > 0 and on_disk["n_train"] == n_train
    assert on_disk["test"]["n"] == on_disk["n"] > 0 and on_disk["test"]["dice_mean"] == on_disk["dice_mean"]
    assert 0.0 <= on_disk["dice_mean"] <= 1.0 and 0.0 <= on_disk["validation"]["dice_mean"] <= 1.0
    model, meta = training.load_model(tmp_path / "model.pt", build_model)
    assert meta["encoder_weights"] is None and meta["input_size"] == 32


def test_encoder_weights_from_local_file(tmp_path):
    donor = build_model({"arch": "deeplabv3", "encoder": "resnet18", "encoder_weights": None})
    path = tmp_path / "encoder.pt"
    torch.save(donor.encoder.state_dict(), path)
    fresh = build_model({"arch": "deeplabv3", "encoder": "resnet18", "encoder_weights": None})
    loaded = build_model({"arch": "deeplabv3", "encoder": "resnet18", "encoder_weights": str(path)})
    key = "layer1.0.conv1.weight"
    assert not torch.equal(fresh.encoder.state_dict()[key], donor.encoder.state_dict()[key])
    for k, v in donor.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        build_model({"arch": "unet", "encoder": "resnet18", "encoder_weights": str(tmp_path / "missing.pt")})


def _killable_segmenter(cohort, run_ingest, tmp_path, monkeypatch, epochs):
    """A tiny store, its split, and ``run(name, kill_at=..., patients_csv=..., checkpoint=True)``: the
    segmenter trained with a checkpoint and interrupted (KeyboardInterrupt) at its ``kill_at``-th
    batch; ``calls["n"]`` counts the batches of the last run."""
    from anapart.partition import segment

    _, out = run_ingest(cohort, field=32)
    manifest, _, _ = load_store(out)
    patients = split_patients(manifest, 0.25, seed=0, classes=CLASSES).assign(validation=False)
    patients.to_csv(tmp_path / "patients.csv", index=False)
    cfg = dict(SEG, epochs=epochs)
    real_loss = segment.seg_loss
    calls = {"n": 0, "kill_at": None}

    def counting_loss(logits, target):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise KeyboardInterrupt
        return real_loss(logits, target)

    monkeypatch.setattr(segment, "seg_loss", counting_loss)

    def run(name, kill_at=None, patients_csv="patients.csv", checkpoint=True):
        calls.update(n=0, kill_at=kill_at)
        return train_segmenter(out, tmp_path / patients_csv, "unet", cfg, tmp_path / f"{name}.pt",
                               tmp_path / f"{name}.json", device="cpu",
                               checkpoint=tmp_path / f"{name}.ckpt" if checkpoint else None)

    return patients, calls, run


def test_killed_segmentation_resumes_with_only_the_remaining_batches(cohort, run_ingest, tmp_path, monkeypatch, caplog):
    """train_segmenter with a checkpoint: a kill in epoch 3, then a rerun that trains epochs 3-4 only
    (counted batches, the "resuming" record) and ends with the uninterrupted run's weights."""
    import logging

    torch.set_num_threads(2)
    _, calls, run = _killable_segmenter(cohort, run_ingest, tmp_path, monkeypatch, epochs=4)

    ref = run("ref")
    per_epoch = calls["n"] // 4
    assert per_epoch * 4 == calls["n"] and per_epoch >= 2
    with pytest.raises(KeyboardInterrupt):
        run("run", kill_at=2 * per_epoch + 2)  # second batch of epoch 3
    assert not (tmp_path / "run.pt").exists() and (tmp_path / "run.ckpt").exists()
    caplog.set_level(logging.INFO, logger="anapart.training")
    resumed = run("run")
    assert calls["n"] == 2 * per_epoch  # epochs 3 and 4 only: a restart would fetch 4 epochs' batches
    assert "resuming from run.ckpt after epoch 2" in caplog.text
    assert not (tmp_path / "run.ckpt").exists()
    assert resumed["loss_history"] == ref["loss_history"] and resumed["test"] == ref["test"]
    a = torch.load(tmp_path / "ref.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "run.pt", weights_only=False)["state_dict"]
    for k, v in a.items():
        assert torch.equal(b[k], v), k


def test_a_segmentation_checkpoint_of_another_split_is_discarded(cohort, run_ingest, tmp_path, monkeypatch, caplog):
    """Killed in epoch 2, rerun after the split changed (one training patient moved to the test side):
    the checkpoint is discarded with the reason, and the model equals a clean run on the new split."""
    import logging

    patients, _, run = _killable_segmenter(cohort, run_ingest, tmp_path, monkeypatch, epochs=2)
    per_epoch = -(-int((patients["split"] == "train").sum() * 6) // SEG["batch_size"])  # 6 annotated slices each
    with pytest.raises(KeyboardInterrupt):
        run("run", kill_at=per_epoch + 1)  # the first batch of epoch 2
    assert (tmp_path / "run.ckpt").exists()
    moved = patients.index[patients["split"] == "train"][0]
    patients.loc[moved, "split"] = "test"
    patients.to_csv(tmp_path / "patients.csv", index=False)
    caplog.set_level(logging.INFO, logger="anapart.training")
    run("run")
    assert "written for other input 'patients'" in caplog.text and "resuming" not in caplog.text
    patients.to_csv(tmp_path / "clean.csv", index=False)
    run("clean", patients_csv="clean.csv", checkpoint=False)
    a = torch.load(tmp_path / "run.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "clean.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cuda_request_without_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        training.resolve_device("cuda")
    assert training.resolve_device("auto").type == "cpu"
