import json

import numpy as np
import pytest
import torch

from anapart import CLASSES, training
from anapart.cohort import load_store, split_patients
from anapart.segment import build_model, dice, select, train_segmenter


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


class _Killed(RuntimeError):
    pass


def _toy_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 6, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).clone()
    return x, y


def _toy_fit(tmp_path, kill_after_batches=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)
    x, y = _toy_problem()
    calls = {"n": 0}

    def fetch(idx):
        calls["n"] += 1
        if kill_after_batches is not None and calls["n"] > kill_after_batches:
            raise _Killed
        return x[idx], y[idx]

    cfg = training.FitConfig(epochs=6, batch_size=8, seed=3, device="cpu")
    hist = training.fit(model, opt, torch.nn.functional.mse_loss, fetch, len(x), cfg, tmp_path / "ckpt.pt")
    return model, hist


def test_fit_lowers_loss_and_resumes_after_a_kill(tmp_path):
    ref_model, ref_hist = _toy_fit(tmp_path / "ref")
    assert ref_hist[-1] < ref_hist[0]
    assert not (tmp_path / "ref" / "ckpt.pt").exists()  # removed once training completed
    run = tmp_path / "run"
    with pytest.raises(_Killed):
        _toy_fit(run, kill_after_batches=5 * 3 + 2)  # dies inside epoch 4 (5 batches/epoch)
    assert (run / "ckpt.pt").exists()
    assert torch.load(run / "ckpt.pt", weights_only=False)["epoch"] == 2  # epochs 1-3 done
    model, hist = _toy_fit(run)
    assert hist == pytest.approx(ref_hist)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)


def test_cuda_request_without_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        training.resolve_device("cuda")
    assert training.resolve_device("auto").type == "cpu"
