"""Disease classifiers: timm networks trained on one image format and one training fraction.

Inputs are the cached crop stores (``results/crops/{fmt}/images.npy``, memory-mapped); a batch is
one fancy-indexing read plus a resize to the network's input, so nothing is decoded in the loop.
Inputs come through :class:`anapart.learn.data.CropData`; training goes through the shared loop
:func:`anapart.learn.training.fit` (checkpoint per epoch, resume).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from anapart.learn import training, weights
from anapart.learn.data import CropData
from anapart.learn.data import predict_probabilities as predict_with

log = logging.getLogger("anapart.classify")


# --------------------------------------------------------------------------- models

def build_classifier(net: str, n_classes: int, pretrained=False, in_chans: int = 1, drop_rate: float = 0.0):
    """A timm network with ``n_classes`` outputs; ``pretrained`` as :func:`anapart.learn.weights.resolve` takes it
    (false, true for timm's hub, a weights file, or a folder with one file per network)."""
    return weights.create_model(net, pretrained, num_classes=n_classes, in_chans=in_chans, drop_rate=drop_rate)


def zero_head(model: torch.nn.Module) -> None:
    """Start the new classifier head at zero: equal class probabilities, no huge first gradients.

    Networks trained from scratch (efficientnet, mobilenetv3) otherwise start with logits large
    enough to derail the first epochs of plain SGD on a small cohort.
    """
    head = model.get_classifier()
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()


def model_from_meta(meta: dict) -> torch.nn.Module:
    """Rebuild a saved classifier (weights come from the checkpoint, never from a hub)."""
    return build_classifier(meta["net"], len(meta["classes"]), pretrained=False, in_chans=meta.get("in_chans", 1))


# --------------------------------------------------------------------------- train / predict

def crop_inputs(crops_dir, train_csv) -> dict:
    """What a classifier trains on, for its checkpoint's signature: the training list (patients,
    slices, labels) and the crop store it indexes."""
    crops_dir = Path(crops_dir)
    return {"training list": train_csv, "crop index": crops_dir / "index.csv", "crop images": crops_dir / "images.npy"}


class WeightedCrossEntropy:
    """Cross-entropy with per-class weights (moved to the logits' device on each call)."""

    def __init__(self, weight):
        self.weight = torch.as_tensor(weight, dtype=torch.float32)

    def __call__(self, logits, target):
        return F.cross_entropy(logits, target, weight=self.weight.to(logits.device))


def class_weights(labels, classes, mode: str):
    """``classify.class_weights``: ``none`` -> None (plain cross-entropy); ``balanced`` -> n / (K n_c)
    per class, scikit-learn's "balanced" (a class absent from the training list gets 1: it has no
    sample to weigh). Why: with one class at 40% of the slices a network can sit on it; the weights
    make every class count alike in the loss."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"classify.class_weights: {mode!r} is not one of none, balanced")
    counts = pd.Series(list(labels)).value_counts()
    n, k = float(len(labels)), len(classes)
    return [n / (k * counts[c]) if counts.get(c, 0) else 1.0 for c in classes]


def train_classifier(crops_dir, train_csv, classes, net: str, cfg: dict, out_model, *, preload_mb: float,
                     device="auto", checkpoint=None, keep_checkpoint=False) -> list[float]:
    """Train one (net, format, fraction) model; returns the per-epoch training loss.

    ``preload_mb`` (classify.preload_mb) is apart from ``cfg``, the settings the weights depend on:
    keeping the inputs in memory changes the speed, not the model."""
    train = pd.read_csv(train_csv)
    data = CropData(crops_dir, train, classes, cfg["input_size"], cfg["normalize"], preload_mb=float(preload_mb))
    training.seed_everything(int(cfg["seed"]))
    model = build_classifier(net, len(classes), cfg["pretrained"], drop_rate=float(cfg["drop_rate"]))
    if cfg["zero_init_head"]:
        zero_head(model)
    optimizer = training.build_optimizer(model.parameters(), cfg, "classify.optimizer")
    fit_cfg = training.FitConfig.from_config(cfg, device, label=f"{net} on {Path(crops_dir).name}")
    scheduler = training.build_scheduler(optimizer, cfg["schedule"], fit_cfg.epochs, "classify.schedule")
    augment = cfg["augment"] or None
    log.info("%s on %s: %d training slices %s, input %dx%d", net, Path(crops_dir).name, len(data),
             train["label"].value_counts().to_dict(), data.size, data.size)
    weights = class_weights(train["label"], classes, cfg.get("class_weights", "none"))
    loss = F.cross_entropy if weights is None else WeightedCrossEntropy(weights)
    if weights is not None:
        log.info("class weights (balanced): %s", {c: round(w, 3) for c, w in zip(classes, weights)})
    history = training.fit(model, optimizer, loss, lambda idx: data.batch(idx, augment), len(data),
                           fit_cfg, checkpoint, signature_extra={"net": net, "classes": list(classes),
                                                                 **{k: str(v) for k, v in cfg.items()}},
                           scheduler=scheduler, inputs=crop_inputs(crops_dir, train_csv),
                           keep_checkpoint=keep_checkpoint)
    meta = {"net": net, "classes": list(classes), "in_chans": 1, "input_size": data.size,
            "normalize": [data.mean, data.std], "format": Path(crops_dir).name, "train_list": str(train_csv),
            "epochs": fit_cfg.epochs, "loss_history": [round(v, 5) for v in history]}
    training.save_model(out_model, model, meta)
    return history


def predict_probabilities(model_path, crops_dir, slice_list: pd.DataFrame, **kwargs):
    """:func:`anapart.learn.data.predict_probabilities` for study A's classifiers (timm rebuild)."""
    return predict_with(model_path, crops_dir, slice_list, build=model_from_meta, **kwargs)
