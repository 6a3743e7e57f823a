import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from anapart.learn import weights
from anapart.learn.data import CropData
from anapart.partition.classify import build_classifier, predict_probabilities, train_classifier

CLASSES = ["a", "b", "c"]


def make_crop_store(root, n_per_class=12, side=24, seed=0):
    """A tiny format store whose classes differ in a bright square's position: learnable."""
    rng = np.random.default_rng(seed)
    imgs, rows = [], []
    for k, c in enumerate(CLASSES):
        for i in range(n_per_class):
            a = rng.normal(0.3, 0.05, (side, side)).astype(np.float32)
            y = 2 + 7 * k
            a[y:y + 5, 8:16] += 0.6
            imgs.append(a)
            rows.append((f"S{k}{i:02d}", c))
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", np.clip(np.stack(imgs), 0, 1).astype(np.float16))
    ids = [r[0] for r in rows]
    pd.DataFrame({"slice_id": ids, "row": np.arange(len(ids)), "y0": 0, "x0": 0, "size": side}).to_csv(
        root / "index.csv", index=False)
    return pd.DataFrame(rows, columns=["slice_id", "label"])


# The demo's recipe (config/config.yaml): AdamW, warm-up, cosine decay, clipping, zero-initialised head.
CFG = dict(seed=0, optimizer="adamw", lr=1e-3, weight_decay=0.05, warmup_epochs=1, grad_clip=2.0,
           schedule={"type": "cosine"}, zero_init_head=True, batch_size=8, epochs=4, input_size=32,
           augment={"hflip": 0.5}, normalize=[0.5, 0.25], pretrained=False, drop_rate=0.0)


def test_crop_data_maps_slice_ids_to_rows_and_normalises(tmp_path):
    lst = make_crop_store(tmp_path / "fmt")
    sub = lst.iloc[[5, 30, 0]]
    data = CropData(tmp_path / "fmt", sub, CLASSES, None, (0.5, 0.25))
    x, y = data.batch(np.arange(3))
    store = np.load(tmp_path / "fmt" / "images.npy").astype(np.float32)
    np.testing.assert_allclose(x[:, 0].numpy(), (store[[5, 30, 0]] - 0.5) / 0.25, atol=1e-6)
    assert y.tolist() == [0, 2, 0]
    assert CropData(tmp_path / "fmt", sub, CLASSES, 48, (0.5, 0.25)).inputs([0]).shape == (1, 1, 48, 48)
    with pytest.raises(KeyError, match="lacks 1 slices"):
        CropData(tmp_path / "fmt", pd.DataFrame({"slice_id": ["nope"], "label": ["a"]}), CLASSES, None)


def test_training_lowers_loss_for_every_seed_and_predicts_probabilities(tmp_path):
    """The recipe must learn whatever the seed and the CPU's float path: every seed, with a wide margin.

    (SGD with momentum 0.9 at lr 0.01 and a random head once went 13.4 -> 48.8 -> 8.2 -> 32.5 here.)
    """
    lst = make_crop_store(tmp_path / "fmt", n_per_class=16)
    lst.to_csv(tmp_path / "train.csv", index=False)
    torch.set_num_threads(2)
    chance = math.log(len(CLASSES))  # the zero-initialised head's loss before any step
    for seed in (0, 1, 2):
        hist = train_classifier(tmp_path / "fmt", tmp_path / "train.csv", CLASSES, "mobilenetv3_large_100",
                                dict(CFG, seed=seed, epochs=5), tmp_path / "model.pt", preload_mb=64, device="cpu")
        assert len(hist) == 5 and hist[0] < 1.05 * chance
        assert hist[-1] < 0.5 * chance, (seed, hist)
    pred, _, meta = predict_probabilities(tmp_path / "model.pt", tmp_path / "fmt", lst, device="cpu")
    assert list(pred.columns) == ["slice_id", "label", "p_a", "p_b", "p_c"]
    np.testing.assert_allclose(pred[["p_a", "p_b", "p_c"]].sum(axis=1), 1, atol=1e-5)
    assert meta["classes"] == CLASSES and meta["input_size"] == 32


def test_killed_training_resumes_to_the_same_model(tmp_path, monkeypatch, caplog):
    """Killed at the start of epoch 3, the rerun trains epoch 3 only (counted batches and the "resuming"
    record: a restart from scratch is just as deterministic, so equal weights alone cannot tell them
    apart) and ends with the uninterrupted run's weights."""
    import logging

    lst = make_crop_store(tmp_path / "fmt", n_per_class=8)
    lst.to_csv(tmp_path / "train.csv", index=False)
    cfg = dict(CFG, epochs=3)
    real_batch = CropData.batch
    calls = {"n": 0, "kill_at": None}

    def counting_batch(self, idx, augment=None):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise KeyboardInterrupt
        return real_batch(self, idx, augment)

    monkeypatch.setattr(CropData, "batch", counting_batch)

    def train(name, kill_at=None):
        calls.update(n=0, kill_at=kill_at)
        train_classifier(tmp_path / "fmt", tmp_path / "train.csv", CLASSES, "efficientnet_b0", cfg,
                         tmp_path / f"{name}.pt", preload_mb=0, device="cpu", checkpoint=tmp_path / f"{name}.ckpt")

    train("ref")
    assert calls["n"] == 3 * 3  # 24 slices, batch 8: 3 batches an epoch
    with pytest.raises(KeyboardInterrupt):
        train("run", kill_at=3 * 2 + 1)  # dies at the start of epoch 3
    assert not (tmp_path / "run.pt").exists() and (tmp_path / "run.ckpt").exists()
    caplog.set_level(logging.INFO, logger="anapart.training")
    train("run")
    assert calls["n"] == 3 and "resuming from run.ckpt after epoch 2" in caplog.text
    assert not (tmp_path / "run.ckpt").exists()
    ref = torch.load(tmp_path / "ref.pt", weights_only=False)
    run = torch.load(tmp_path / "run.pt", weights_only=False)
    assert run["meta"]["loss_history"] == ref["meta"]["loss_history"]
    for k, v in ref["state_dict"].items():
        assert torch.equal(run["state_dict"][k], v), k


KILLED_TRAINING = """
import sys, time
from anapart.learn import training
from anapart.partition.classify import train_classifier
from test_classify_support import CFG, CLASSES
save = training._save_checkpoint

def save_then_hang(path, state):  # the job is killed while it trains epoch 2
    save(path, state)
    time.sleep(600)

training._save_checkpoint = save_then_hang
root = sys.argv[1]
train_classifier(root + "/fmt", root + "/train.csv", CLASSES, "efficientnet_b0", dict(CFG, epochs=3), root + "/run.pt",
                 preload_mb=0, device="cpu", checkpoint=root + "/run.ckpt")
"""


def test_a_killed_job_never_resumes_on_a_changed_split(tmp_path, caplog):
    """The issue's probe: a training process is killed (SIGKILL) after its checkpoint is written, the
    split then changes (a third of the training slices are other patients'); the rerun discards the
    checkpoint, says which input changed, and ends with a clean run's weights on the new list."""
    import logging
    import signal
    import sys
    import time

    from support.common import popen_offline, wait_for

    lst = make_crop_store(tmp_path / "fmt", n_per_class=12)
    old, new = lst.iloc[:24], lst.iloc[12:]  # a changed split: 12 slices out, 12 others in
    old.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "test_classify_support.py").write_text(f"CFG = {CFG!r}\nCLASSES = {CLASSES!r}\n")
    proc = popen_offline([sys.executable, "-c", KILLED_TRAINING, str(tmp_path)], cwd=tmp_path)
    try:
        assert wait_for(lambda: (tmp_path / "run.ckpt").exists() or proc.poll() is not None, timeout=240)
        time.sleep(0.5)  # well inside the hang that follows the save
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert (tmp_path / "run.ckpt").exists() and not (tmp_path / "run.pt").exists()
    new.to_csv(tmp_path / "train.csv", index=False)
    caplog.set_level(logging.INFO, logger="anapart.training")
    cfg = dict(CFG, epochs=3)
    train_classifier(tmp_path / "fmt", tmp_path / "train.csv", CLASSES, "efficientnet_b0", cfg, tmp_path / "run.pt",
                     preload_mb=0, device="cpu", checkpoint=tmp_path / "run.ckpt")
    assert "it was written for other input 'training list'; training starts over" in caplog.text
    assert "resuming" not in caplog.text
    new.to_csv(tmp_path / "clean.csv", index=False)
    train_classifier(tmp_path / "fmt", tmp_path / "clean.csv", CLASSES, "efficientnet_b0", cfg, tmp_path / "clean.pt",
                     preload_mb=0, device="cpu")
    run = torch.load(tmp_path / "run.pt", weights_only=False)["state_dict"]
    clean = torch.load(tmp_path / "clean.pt", weights_only=False)["state_dict"]
    assert run.keys() == clean.keys() and all(torch.equal(run[k], clean[k]) for k in run)


def test_pretrained_weights_from_a_local_file(tmp_path):
    net = "mobilenetv3_large_100"
    torch.manual_seed(123)
    donor = timm.create_model(net, pretrained=False)  # ImageNet layout: 3 channels, 1000 classes
    path = tmp_path / "weights.pth"
    torch.save(donor.state_dict(), path)
    torch.manual_seed(0)
    fresh = build_classifier(net, 6, pretrained=False)
    torch.manual_seed(0)
    loaded = build_classifier(net, 6, pretrained=str(path))
    key = "blocks.1.0.conv_pw.weight"
    assert not torch.equal(fresh.state_dict()[key], loaded.state_dict()[key])
    assert torch.equal(loaded.state_dict()[key], donor.state_dict()[key])
    stem = donor.state_dict()["conv_stem.weight"]
    assert loaded.state_dict()["conv_stem.weight"].shape[1] == 1
    torch.testing.assert_close(loaded.state_dict()["conv_stem.weight"], stem.sum(1, keepdim=True))
    assert loaded.get_classifier().out_features == 6
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_classifier(net, 6, pretrained=str(tmp_path / "missing.pth"))


def test_pretrained_flag_parsing(tmp_path):
    assert weights.parse(False) is False
    assert weights.parse("false") is False
    assert weights.parse(None) is False
    assert weights.parse(True) is True
    assert str(weights.parse("/w/x.pth")) == "/w/x.pth"
    # a weights file names one file for every network; anything else (existing or not) is a folder
    assert weights.folder_of("/w/x.pth") is None and weights.folder_of("/w/x.safetensors") is None
    assert weights.folder_of("resources/weights") == Path("resources/weights")
    assert weights.folder_of(tmp_path) == tmp_path and weights.folder_of(True) is None
    for other in ("/w/keras.h5", "/w/weights.npz"):  # neither a weights file we read nor a folder
        with pytest.raises(ValueError, match=rf"{other}: pretrained weights must be a weights file"):
            weights.folder_of(other)


def test_download_saves_the_hub_state_dict_as_safetensors(tmp_path, monkeypatch):
    """rule weights' download, with timm's hub replaced by a seeded random model (tests never use the
    network): the file holds that model's state_dict and loads through the folder layout."""
    from safetensors.torch import load_file

    net = "mobilenetv3_large_100"
    real = timm.create_model
    made = {}

    def hub(name, pretrained=False, **kw):
        assert name == net and pretrained is True
        torch.manual_seed(7)
        made["model"] = real(name, pretrained=False, **kw)
        return made["model"]

    monkeypatch.setattr(timm, "create_model", hub)
    out = weights.download(net, tmp_path / "weights" / f"{net}.safetensors")
    monkeypatch.setattr(timm, "create_model", real)
    saved = load_file(str(out))
    want = made["model"].state_dict()
    assert saved.keys() == want.keys() and all(torch.equal(saved[k], want[k]) for k in want)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # written atomically: no temporary left
    assert weights.resolve(str(out.parent), net) == out


def test_a_failed_download_says_which_file_to_copy_where(tmp_path, monkeypatch):
    def offline(name, pretrained=False, **kw):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(timm, "create_model", offline)
    folder = tmp_path / "weights"
    with pytest.raises(RuntimeError) as err:
        weights.download("resnet50", folder / "resnet50.safetensors")
    msg = str(err.value)
    assert msg.startswith(f"{folder}/resnet50.safetensors: could not download") and "Network is unreachable" in msg
    assert f"copy resnet50.safetensors or resnet50.pth (the state_dict of timm.create_model('resnet50', " \
           f"pretrained=True)) into {folder}/" in msg
    assert not folder.exists() or not any(folder.iterdir())


def test_weights_folder_with_one_file_per_network(tmp_path):
    """The offline layout: <net>.safetensors or <net>.pth per network, files saved here (never a hub call)."""
    from safetensors.torch import save_file

    folder = tmp_path / "weights"
    folder.mkdir()
    donors = {}
    for net, fmt in (("mobilenetv3_large_100", ".safetensors"), ("efficientnet_b0", ".pth")):
        torch.manual_seed(len(net))
        donors[net] = timm.create_model(net, pretrained=False).state_dict()
        if fmt == ".safetensors":
            save_file({k: v.contiguous() for k, v in donors[net].items()}, str(folder / f"{net}{fmt}"))
        else:
            torch.save(donors[net], folder / f"{net}{fmt}")
    for net, key in (("mobilenetv3_large_100", "blocks.1.0.conv_pw.weight"), ("efficientnet_b0", "blocks.1.0.conv_pw.weight")):
        assert weights.resolve(str(folder), net).name.startswith(net)
        torch.manual_seed(0)
        loaded = build_classifier(net, 6, pretrained=str(folder))
        assert torch.equal(loaded.state_dict()[key], donors[net][key]), net
        assert loaded.get_classifier().out_features == 6
    with pytest.raises(FileNotFoundError) as err:
        build_classifier("densenet121", 6, pretrained=str(folder))
    assert f"{folder}/densenet121.safetensors or {folder}/densenet121.pth" in str(err.value)
    assert "resnet50.safetensors" in str(weights.file_in_folder(folder, "resnet50"))  # where rule weights writes


def test_no_test_can_reach_the_network():
    import socket

    with pytest.raises(RuntimeError, match="never use the network"):
        socket.create_connection(("93.184.216.34", 443), timeout=1)


def test_preloaded_inputs_equal_streamed_inputs(tmp_path):
    lst = make_crop_store(tmp_path / "fmt")
    streamed = CropData(tmp_path / "fmt", lst, CLASSES, 40)
    preloaded = CropData(tmp_path / "fmt", lst, CLASSES, 40, preload_mb=64)
    tiny_budget = CropData(tmp_path / "fmt", lst, CLASSES, 40, preload_mb=0.01)
    assert streamed.cache is None and preloaded.cache is not None and tiny_budget.cache is None
    idx = np.array([7, 3, 30, 3])
    torch.testing.assert_close(preloaded.inputs(idx), streamed.inputs(idx))


def test_balanced_class_weights_are_scikit_learns_and_weigh_the_loss():
    import torch
    import torch.nn.functional as F
    from sklearn.utils.class_weight import compute_class_weight

    from anapart.partition.classify import WeightedCrossEntropy, class_weights

    labels = ["NPC"] * 6 + ["LH"] * 2 + ["normal"] * 4
    classes = ["NPC", "LH", "normal"]
    w = class_weights(labels, classes, "balanced")
    assert w == pytest.approx(list(compute_class_weight("balanced", classes=np.array(classes), y=np.array(labels))))
    assert class_weights(labels, classes, "none") is None
    assert class_weights(labels, classes + ["chordoma"], "balanced")[-1] == 1.0  # absent: nothing to weigh
    with pytest.raises(ValueError, match="classify.class_weights: 'inverse' is not one of none, balanced"):
        class_weights(labels, classes, "inverse")
    logits, target = torch.randn(12, 3), torch.tensor([classes.index(c) for c in labels])
    # weighted mean: sum_i w_y(i) * ce_i / sum_i w_y(i) (PyTorch's definition), by hand
    ce = F.cross_entropy(logits, target, reduction="none")
    wt = torch.tensor(w, dtype=torch.float32)[target]
    assert float(WeightedCrossEntropy(w)(logits, target)) == pytest.approx(float((wt * ce).sum() / wt.sum()))
