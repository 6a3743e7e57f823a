"""Study B, Methods "Transfer learning" and "Basic CNN": the single models of stage one, built by
name from a registry, trained with study A's loop and predicted with study A's loader.

:data:`SCRATCH` names the models trained from scratch (the paper's basic 3-layer CNN); every other
name is a timm network used for transfer learning (:class:`Transfer`), as timm's ``create_model``
resolves a name. A kind knows how to build its network, its input size and its training settings,
so no code branches on a model's name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from anapart.io.files import pyplot, save_figure
from anapart.learn import training, weights
from anapart.learn.data import CropData, predict_probabilities
from anapart.staging.patches import attach_index

log = logging.getLogger("anapart.staging_models")


class BasicCNN(nn.Module):
    """The paper's baseline: 3 conv layers each followed by max-pooling, then 2 dense layers."""

    def __init__(self, n_classes: int, in_chans: int = 1, channels=(32, 64, 128), hidden: int = 128,
                 dropout: float = 0.5):
        super().__init__()
        layers, c = [], in_chans
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(c, ch, 3, padding=1), nn.ReLU(inplace=True)]
            if i == len(channels) - 1:
                layers.append(nn.Identity())  # Grad-CAM hook: the last conv block's activations
            layers.append(nn.MaxPool2d(2))
            c = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c * 16, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    @property
    def cam_layer(self) -> str:
        return f"features.{len(self.features) - 2}"

    def forward(self, x):
        return self.head(self.features(x))


class TransferNet(nn.Module):
    """A timm backbone (its ImageNet classifier removed) with a new top: pool, batch-norm, dense,
    dropout, dense. The batch-norm puts any backbone's pooled features on one scale, so one
    learning rate suits all five networks (and a randomly initialised backbone cannot blow up).

    With ``freeze`` the backbone's weights never change and it stays in eval mode (batch-norm
    statistics frozen too, as Keras does for a non-trainable base); only the top is trained.
    """

    def __init__(self, net: str, n_classes: int, pretrained=False, in_chans: int = 1, hidden: int = 256,
                 dropout: float = 0.3, freeze: bool = True):
        super().__init__()
        self.backbone = weights.create_model(net, pretrained, features_only=True, out_indices=(-1,), in_chans=in_chans)
        self.features_out = nn.Identity()  # Grad-CAM hook: the backbone's last feature map
        c = self.backbone.feature_info.channels()[-1]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(c), nn.Linear(c, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        self.frozen = bool(freeze)
        if self.frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()

    cam_layer = "features_out"

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.features_out(self.backbone(x)[-1]))



class Transfer:
    """A timm network with a new top (``staging.train``): the paper's five ImageNet CNNs."""

    @staticmethod
    def build(name: str, n_classes: int, cfg: dict, pretrained) -> nn.Module:
        t = cfg["train"]
        return TransferNet(name, n_classes, pretrained, hidden=int(t["hidden"]), dropout=float(t["dropout"]),
                           freeze=bool(t["freeze_backbone"]))

    @staticmethod
    def input_size(name: str, cfg: dict) -> int:
        t = cfg["train"]
        return int((t.get("input_sizes") or {}).get(name, t["input_size"]))

    @staticmethod
    def settings(cfg: dict) -> dict:
        return dict(cfg["train"])


class Scratch:
    """The basic CNN (``staging.basic_cnn``), trained from scratch, all layers: its own ``lr``,
    ``epochs``, ``schedule`` and ``input_size`` where given, else ``staging.train``'s."""

    OWN = ("lr", "epochs", "schedule")

    @staticmethod
    def build(name: str, n_classes: int, cfg: dict, pretrained) -> nn.Module:
        b = cfg["basic_cnn"]
        return BasicCNN(n_classes, channels=tuple(b["channels"]), hidden=int(b["hidden"]), dropout=float(b["dropout"]))

    @staticmethod
    def input_size(name: str, cfg: dict) -> int:
        return int(cfg["basic_cnn"].get("input_size", cfg["train"]["input_size"]))

    @staticmethod
    def settings(cfg: dict) -> dict:
        return {**cfg["train"], **{k: v for k, v in cfg["basic_cnn"].items() if k in Scratch.OWN}}


BASIC_CNN = "basic_cnn"
SCRATCH: dict[str, type] = {BASIC_CNN: Scratch}


def kind(name: str) -> type:
    """The model kind of a stage-one name: a registered from-scratch model, else a timm network."""
    return SCRATCH.get(name, Transfer)


def build_model(name: str, n_classes: int, cfg: dict, pretrained=None) -> nn.Module:
    """A single model of stage one; ``pretrained`` None: ``staging.train.pretrained``."""
    return kind(name).build(name, n_classes, cfg, cfg["train"]["pretrained"] if pretrained is None else pretrained)


def model_from_meta(meta: dict) -> nn.Module:
    """Rebuild a saved staging model; its weights come from the checkpoint, never from a hub."""
    return build_model(meta["model"], len(meta["classes"]), meta["cfg"], pretrained=False)


def input_size(name: str, cfg: dict) -> int:
    return kind(name).input_size(name, cfg)


def train_settings(name: str, cfg: dict) -> dict:
    """The training settings of one model (``staging.train``, and a from-scratch model's own)."""
    return kind(name).settings(cfg)


def validation_scores(data: CropData, batch_size: int, device, amp: bool) -> Callable:
    """``evaluate(model)`` for :func:`anapart.learn.training.fit`: the validation patches' mean
    cross-entropy and accuracy, in eval mode (the paper's Fig. 5 curves)."""
    targets = torch.as_tensor(data.labels)

    def evaluate(model) -> dict:
        logits = training.predict(model, data.inputs, len(data), batch_size, device, amp)
        return {"val_loss": float(F.cross_entropy(logits, targets)),
                "val_accuracy": float((logits.argmax(1) == targets).float().mean())}

    return evaluate


def train_model(patches_dir, train_csv, classes, name: str, cfg: dict, out_model, *, device="auto",
                checkpoint=None, keep: dict | None = None, validation_csv=None,
                epoch_log: list | None = None) -> list[float]:
    """Stage one: train one single model on the training patches (``optimizer`` and ``schedule``
    from its settings; Adam with a decaying rate in the paper).

    With ``keep`` (a dict), the trained model and its meta are left in it for prediction. With
    ``validation_csv`` (patches of validation patients, never trained on) and ``epoch_log`` (a
    list), each epoch's training loss and accuracy and the validation loss and accuracy are logged
    and appended there (Fig. 5); nothing is chosen by them here.
    """
    t = train_settings(name, cfg)
    train = pd.read_csv(train_csv)
    size = input_size(name, cfg)
    data = CropData(patches_dir, train, classes, size, t["normalize"], preload_mb=float(t["preload_mb"]))
    training.seed_everything(int(t["seed"]))
    model = build_model(name, len(classes), cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = training.build_optimizer(params, t, "staging.train.optimizer")
    fit_cfg = training.FitConfig.from_config(t, device, label=f"staging {name}")
    scheduler = training.build_scheduler(optimizer, t["schedule"], fit_cfg.epochs, "staging.train.schedule")
    n_train = sum(p.numel() for p in params)
    log.info("%s: %d training patches %s, input %d, %d trainable parameters (%s)", name, len(data),
             train["label"].value_counts().to_dict(), size, n_train,
             "backbone frozen" if getattr(model, "frozen", False) else "all layers")
    augment = t["augment"] or None
    evaluate = None
    if validation_csv is not None and len(val := pd.read_csv(validation_csv)):
        vdata = CropData(patches_dir, val, classes, size, t["normalize"], preload_mb=float(t["preload_mb"]))
        evaluate = validation_scores(vdata, int(t["batch_size"]), device, bool(t.get("amp", True)))
        log.info("%s: %d validation patches of %d patients", name, len(vdata), val["slice_id"].str.split("_").str[0].nunique())
    history = training.fit(model, optimizer, F.cross_entropy, lambda idx: data.batch(idx, augment), len(data), fit_cfg,
                           checkpoint, signature_extra={"model": name, "classes": list(classes),
                                                        "cfg": json.dumps(cfg, sort_keys=True, default=str)},
                           scheduler=scheduler,
                           inputs={"training list": train_csv, "patch index": Path(patches_dir) / "index.csv",
                                   "patch images": Path(patches_dir) / "images.npy",
                                   **({"validation list": validation_csv} if validation_csv else {})},
                           evaluate=evaluate, epoch_log=epoch_log)
    meta = {"model": name, "classes": list(classes), "cfg": cfg, "in_chans": 1, "input_size": size,
            "normalize": [data.mean, data.std], "patches": str(patches_dir), "epochs": fit_cfg.epochs,
            "cam_layer": model.cam_layer, "loss_history": [round(v, 5) for v in history]}
    training.save_model(out_model, model, meta)
    if keep is not None:
        keep.update(model=model.eval(), meta=meta)
    return history


def predict(model_path, patches_dir, test_csv, index_csv, *, device="auto", loaded=None) -> pd.DataFrame:
    """Per-patch stage probabilities: ``slice_id, label, p_<stage>..., patient, sequence, kind``."""
    test = pd.read_csv(test_csv)
    pred, _, _ = predict_probabilities(model_path, patches_dir, test, device=device, build=model_from_meta,
                                       loaded=loaded)
    return attach_index(pred, index_csv)



def history_figure(history: pd.DataFrame, title: str, out_png) -> None:
    """Fig. 5 of the paper for one model: training and validation accuracy and loss per epoch."""
    plt = pyplot()
    fig, (ax_a, ax_l) = plt.subplots(1, 2, figsize=(7.5, 3.0), constrained_layout=True)
    for col, label, ax in (("accuracy", "training", ax_a), ("val_accuracy", "validation", ax_a),
                           ("loss", "training", ax_l), ("val_loss", "validation", ax_l)):
        if col in history and history[col].notna().any():
            ax.plot(history["epoch"], history[col], marker="o", ms=3, label=label)
    ax_a.set_ylabel("accuracy")
    ax_l.set_ylabel("cross-entropy loss")
    for ax in (ax_a, ax_l):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out_png)
