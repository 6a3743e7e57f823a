"""Segmentation of the perinasopharyngeal region (U-Net and DeepLabV3, segmentation-models-pytorch).

The paper trained both with RMSprop (lr 1e-3, batch 32, 40 epochs) on 600 annotated slices and
kept the better by Dice. Here slices are resized to ``segment.input_size`` for the network (the
region is large, so a coarser grid costs little accuracy and much time on a CPU) and predictions
are brought back to the stored field.

The model that cuts the crops is chosen on *validation* patients (training patients held out of
segmentation training, ``patients.csv``'s ``validation`` column), never on test patients: the
chosen model then crops the test slices, so choosing it by test Dice would leak. Test Dice is
reported for every model next to its validation Dice.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from anapart.io.files import pyplot, save_figure, write_text
from anapart.io.store import REGION_BIT, load_store
from anapart.learn import training
from anapart.partition.crop import centroid

log = logging.getLogger("anapart.segment")

ARCHS = {"unet": smp.Unet, "deeplabv3": smp.DeepLabV3}


# --------------------------------------------------------------------------- metrics

def dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Dice = 2|A∩B| / (|A| + |B|); two empty masks agree perfectly (1.0)."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    denom = pred.sum() + true.sum()
    if denom == 0:
        return 1.0
    return float(2.0 * np.logical_and(pred, true).sum() / denom)


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice: BCE for pixels, Dice for the region's overlap."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    soft = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + soft.mean()


# --------------------------------------------------------------------------- models

def build_model(meta: dict) -> torch.nn.Module:
    """A 1-channel-in, 1-class-out smp model; ``encoder_weights`` is None, a named set, or a local file."""
    arch = meta["arch"]
    if arch not in ARCHS:
        raise ValueError(f"unknown segmentation arch '{arch}' (known: {', '.join(ARCHS)})")
    weights = meta.get("encoder_weights")
    local = isinstance(weights, str) and (os.sep in weights or weights.endswith((".pt", ".pth", ".bin")))
    model = ARCHS[arch](encoder_name=meta["encoder"], encoder_weights=None if local else weights,
                        in_channels=1, classes=1)
    if local:
        load_encoder_weights(model, weights)
    return model


def load_encoder_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load an encoder state_dict from a local file; a 3-channel first conv is summed to 1 channel."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: encoder weights file does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    own = model.encoder.state_dict()
    matched = {}
    for k, v in state.items():
        if k in own:
            if v.shape != own[k].shape and v.ndim == 4 and v.shape[1] == 3 and own[k].shape[1] == 1:
                v = v.sum(dim=1, keepdim=True)
            if v.shape == own[k].shape:
                matched[k] = v
    if not matched:
        raise ValueError(f"{path}: no tensor matches the {type(model.encoder).__name__} encoder")
    model.encoder.load_state_dict(matched, strict=False)
    log.info("loaded %d/%d encoder tensors from %s", len(matched), len(own), path)


# --------------------------------------------------------------------------- data

def to_input(images, rows, size: int) -> torch.Tensor:
    """Rows of the store as a (n, 1, size, size) float32 tensor."""
    x = torch.from_numpy(np.asarray(images[rows], dtype=np.float32))[:, None]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear",
                          align_corners=None if x.shape[-1] > size else False)
    return x


def to_target(masks, rows, size: int) -> torch.Tensor:
    m = torch.from_numpy((np.asarray(masks[rows]) & REGION_BIT > 0).astype(np.float32))[:, None]
    if m.shape[-1] != size:
        m = F.interpolate(m, size=(size, size), mode="nearest")
    return m


SIDES = ("train", "validation", "test")


def annotated_rows(manifest: pd.DataFrame, patients: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows of slices with a region mask by side: ``train`` (segmentation training), ``validation``
    (training patients held out to choose the model) and ``test`` (held out, reported)."""
    p = patients.set_index("patient")
    val = p["validation"].astype(bool) if "validation" in p else pd.Series(False, index=p.index)
    side = p["split"].where(~(val & (p["split"] == "train")), "validation")
    side = manifest["patient"].map(side)
    ann = manifest["has_region_mask"].astype(bool)
    return {s: manifest.index[ann & (side == s)].to_numpy() for s in SIDES}


def dice_summary(model, images, masks, rows, input_size: int, batch_size: int, device: str, threshold: float) -> dict:
    """Mean ± SD (ddof 1) of per-slice Dice of the region on ``rows``; mean None without rows."""
    scores = []
    if len(rows):
        probs = predict_probs(model, images, rows, input_size, int(images.shape[-1]), batch_size, device)
        true = (np.asarray(masks[rows]) & REGION_BIT) > 0
        scores = [dice(p, t) for p, t in zip(probs >= threshold, true)]
    return {"dice_mean": float(np.mean(scores)) if scores else None,
            "dice_sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0, "n": len(scores)}


def predict_probs(model, images, rows, input_size: int, field: int, batch_size: int, device: str) -> np.ndarray:
    """Region probabilities at the stored field for ``rows`` (float32, (n, field, field))."""
    rows = np.asarray(rows)

    def fetch(idx):
        return to_input(images, rows[idx], input_size)

    logits = training.predict(model, fetch, len(rows), batch_size, device)
    if logits.numel() == 0:
        return np.zeros((0, field, field), np.float32)
    if logits.shape[-1] != field:
        logits = F.interpolate(logits, size=(field, field), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[:, 0].numpy()


def predict_regions(model, images, input_size: int, batch_size: int, device: str, threshold: float = 0.5,
                    rows=None):
    """Yield ``(row, centroid or None, area)`` for every row, batch by batch (no cohort-sized array)."""
    field = int(images.shape[-1])
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    for b in range(0, len(rows), batch_size):
        chunk = rows[b:b + batch_size]
        pred = predict_probs(model, images, chunk, input_size, field, batch_size, device) >= threshold
        for r, m in zip(chunk, pred):
            yield int(r), centroid(m), int(m.sum())


# --------------------------------------------------------------------------- train + evaluate

def train_segmenter(cohort_dir, patients_csv, arch: str, cfg: dict, out_model, out_metrics, *, device="auto",
                    checkpoint=None) -> dict:
    manifest, images, masks = load_store(cohort_dir)
    patients = pd.read_csv(patients_csv)
    rows = annotated_rows(manifest, patients)
    if len(rows["train"]) == 0:
        raise ValueError(f"{cohort_dir}: no training slice has a region mask; segmentation needs annotations")
    size = int(cfg["input_size"])
    training.seed_everything(int(cfg["seed"]))
    meta = {"arch": arch, "encoder": cfg["encoder"], "encoder_weights": cfg.get("encoder_weights"),
            "input_size": size}
    model = build_model(meta)
    x_train = to_input(images, rows["train"], size)
    y_train = to_target(masks, rows["train"], size)
    hflip = bool(cfg["hflip"])

    def fetch(idx):
        x, y = x_train[idx], y_train[idx]
        if hflip:  # torch RNG is reseeded per epoch by fit(): reproducible, resumable
            flip = torch.rand(len(idx)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            y = torch.where(flip[:, None, None, None], y.flip(-1), y)
        return x, y

    optimizer = training.build_optimizer(model.parameters(), cfg, "segment.optimizer")
    fit_cfg = training.FitConfig.from_config(cfg, device, label=f"segmentation {arch}")
    log.info("%s: %d training / %d validation / %d test annotated slices at %dx%d", arch, len(rows["train"]),
             len(rows["validation"]), len(rows["test"]), size, size)
    store = Path(cohort_dir)
    history = training.fit(model, optimizer, seg_loss, fetch, len(rows["train"]), fit_cfg, checkpoint,
                           signature_extra={"arch": arch, **{k: str(v) for k, v in cfg.items()}},
                           inputs={"patients": patients_csv, "store manifest": store / "manifest.csv",
                                   "store images": store / "images.npy", "store masks": store / "masks.npy"})
    meta["encoder_weights"] = None  # the saved state holds the weights; never reload from a hub
    training.save_model(out_model, model, meta)
    threshold = float(cfg["threshold"])
    held = {s: dice_summary(model, images, masks, rows[s], size, int(cfg["batch_size"]), device, threshold)
            for s in ("validation", "test")}
    metrics = {
        "arch": arch,
        "validation": held["validation"],  # chooses the model (seg_select)
        "test": held["test"],              # reported only
        **held["test"],                    # dice_mean/dice_sd/n at the top: the reported (test) Dice
        "n_train": int(len(rows["train"])),
        "epochs": fit_cfg.epochs,
        "loss_history": [round(v, 5) for v in history],
        "encoder": cfg["encoder"],
        "input_size": size,
    }
    write_text(out_metrics, json.dumps(metrics, indent=2) + "\n")
    for s in ("validation", "test"):
        log.info("%s: %s Dice %.3f ± %.3f on %d slices", arch, s, held[s]["dice_mean"] or float("nan"),
                 held[s]["dice_sd"], held[s]["n"])
    return metrics


def select(metrics: dict[str, dict]) -> dict:
    """The arch with the higher mean *validation* Dice; ties go to the first listed (config order).

    Test Dice is carried along for the report and plays no part in the choice.
    """
    val = {a: (m.get("validation") or {}) for a, m in metrics.items()}
    scored = {a: v for a, v in val.items() if v.get("dice_mean") is not None}
    if not scored:
        raise ValueError("no segmentation model has a validation Dice: no validation patient has an annotated "
                         "slice; raise split.validation_fraction or annotate more training slices")
    best = max(scored, key=lambda a: (scored[a]["dice_mean"], -list(metrics).index(a)))
    others = ", ".join(f"{a} {v['dice_mean']:.3f}" for a, v in scored.items() if a != best)
    return {
        "selected": best,
        "chosen_on": "validation",
        "dice_mean": scored[best]["dice_mean"],
        "reason": f"highest mean Dice on the annotated slices of validation patients (training patients held out "
                  f"of segmentation training): {best} {scored[best]['dice_mean']:.3f}" + (f" vs {others}" if others else ""),
        "candidates": {a: {s: {k: (m.get(s) or {}).get(k) for k in ("dice_mean", "dice_sd", "n")}
                           for s in ("validation", "test")} for a, m in metrics.items()},
    }


def qc_figure(cohort_dir, patients_csv, model_paths: dict, out_png, *, n_examples: int = 4, device="auto",
              threshold: float = 0.5) -> None:
    """The paper's Fig. 4: held-out slices with the true region and each model's prediction."""
    plt = pyplot()

    manifest, images, masks = load_store(cohort_dir)
    rows = annotated_rows(manifest, pd.read_csv(patients_csv))["test"]
    rows = rows[np.linspace(0, len(rows) - 1, min(n_examples, len(rows))).astype(int)] if len(rows) else rows
    field = int(images.shape[-1])
    preds = {}
    for arch, path in model_paths.items():
        model, meta = training.load_model(path, build_model)
        preds[arch] = predict_probs(model, images, rows, meta["input_size"], field, 16, device) >= threshold
    cols = ["slice", "true region", *model_paths]
    fig, axes = plt.subplots(max(len(rows), 1), len(cols), figsize=(2.2 * len(cols), 2.2 * max(len(rows), 1)),
                             squeeze=False)
    for i, r in enumerate(rows):
        img = np.asarray(images[r], np.float32)
        true = (np.asarray(masks[r]) & REGION_BIT) > 0
        overlays = [None, true, *[preds[a][i] for a in model_paths]]
        for j, (ax, ov) in enumerate(zip(axes[i], overlays)):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if ov is not None:
                ax.contour(ov, levels=[0.5], colors=["lime" if j == 1 else "red"], linewidths=1)
                if j > 1:
                    ax.set_xlabel(f"Dice {dice(ov, true):.2f}", fontsize=8)
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(manifest.at[r, "label"], fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png)
