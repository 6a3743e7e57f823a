"""The one training loop of anapart (segmentation and classification both use :func:`fit`).

Why a hand-written loop instead of a DataLoader: every stage reads ready tensors from a
memory-mapped store, so a batch is one fancy-indexing read; no per-sample Python, no workers.
The loop checkpoints after every epoch (atomically) and resumes from the checkpoint when a killed
job is rerun, reproducing the uninterrupted run because each epoch's shuffle and torch RNG are
derived from (seed, epoch) rather than from the state of a previous epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from anapart.io.files import atomic_path
from anapart.learn import precision
from anapart.learn.checkpoint import (CheckpointWriteError, StopRequest, TrainerBusy,  # noqa: F401 - the loop's errors
                                     TrainingInterrupted, epoch_batches, lock_checkpoint, release_checkpoint_lock)
from anapart.learn.checkpoint import announce_stop
from anapart.learn.checkpoint import read_checkpoint as _read_checkpoint
from anapart.learn.checkpoint import rng_state as _rng_state
from anapart.learn.checkpoint import save_checkpoint as _save_checkpoint
from anapart.learn.checkpoint import set_rng_state as _set_rng_state

log = logging.getLogger("anapart.training")

Fetch = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present; asking for ``cuda`` without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        precision.deterministic_cuda_env()  # before cuBLAS starts, or GPU products only warn
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(int(n))


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or exploded: stop rather than train on and save a broken model."""


@dataclass
class FitConfig:
    epochs: int
    batch_size: int
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, CUDA only
    amp_dtype: str = "float16"  # float16 (with a loss scaler, saved in checkpoints) | bfloat16 (no scaler)
    channels_last: bool = True  # NHWC activations: faster convolutions on CUDA and on CPUs (oneDNN)
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    warmup_epochs: float = 0.0  # linear learning-rate warm-up over this many epochs (fractions allowed)
    max_loss_ratio: float = 5.0  # an epoch whose mean loss exceeds this multiple of the untrained loss diverged
    label: str = ""  # what is trained, for messages

    @classmethod
    def from_config(cls, cfg: dict, device: str = "auto", label: str = "") -> "FitConfig":
        """The loop's settings from a stage's config section (classify, segment, staging.train)."""
        keys = ("amp", "amp_dtype", "channels_last", "grad_clip", "warmup_epochs", "max_loss_ratio")
        return cls(epochs=int(cfg["epochs"]), batch_size=int(cfg["batch_size"]), seed=int(cfg["seed"]),
                   device=device, label=label, **{k: cfg[k] for k in keys if k in cfg})

    def signature(self, extra: dict | None = None) -> str:
        payload = json.dumps({**self.__dict__, **(extra or {})}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# Optimisers and learning-rate schedules by config name (``optimizer:``, ``schedule.type``).
OPTIMIZERS: dict[str, Callable] = {
    "sgd": lambda params, c: torch.optim.SGD(params, lr=float(c["lr"]), momentum=float(c.get("momentum", 0.0)),
                                             weight_decay=float(c.get("weight_decay", 0.0))),
    "rmsprop": lambda params, c: torch.optim.RMSprop(params, lr=float(c["lr"]), momentum=float(c.get("momentum", 0.0)),
                                                     weight_decay=float(c.get("weight_decay", 0.0))),
    "adam": lambda params, c: torch.optim.Adam(params, lr=float(c["lr"]), weight_decay=float(c.get("weight_decay", 0.0))),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=float(c["lr"]),
                                                 weight_decay=float(c.get("weight_decay", 0.01))),
}

SCHEDULERS: dict[str, Callable] = {
    "none": lambda opt, s, epochs: None,
    # the staging paper's Keras LearningRateScheduler: the rate decays with the epoch number
    "exponential": lambda opt, s, epochs: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=float(s["gamma"])),
    "step": lambda opt, s, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=int(s["step_size"]),
                                                                  gamma=float(s["gamma"])),
    "cosine": lambda opt, s, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(epochs), 1)),
}


def build_optimizer(params, cfg: dict, where: str = "optimizer") -> torch.optim.Optimizer:
    """The optimiser that ``cfg['optimizer']`` names, with ``cfg``'s lr, momentum and weight decay."""
    name = cfg["optimizer"]
    if name not in OPTIMIZERS:
        raise ValueError(f"{where}: unknown optimizer '{name}' (known: {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name](params, cfg)


def build_scheduler(optimizer, spec: dict | None, epochs: int, where: str = "schedule"):
    """A per-epoch learning-rate schedule (``{type: none|exponential|step|cosine, ...}``), or None."""
    spec = spec or {"type": "none"}
    kind = spec.get("type", "none")
    if kind not in SCHEDULERS:
        raise ValueError(f"{where}: unknown schedule type '{kind}' (known: {', '.join(SCHEDULERS)})")
    return SCHEDULERS[kind](optimizer, spec, epochs)


FULL_HASH_LIMIT = 256 << 20  # bytes; larger files (image stores at paper scale) are hashed by samples
HASH_SAMPLES = 64


def content_hash(path: str | os.PathLike, chunk: int = 1 << 20, full_limit: int = FULL_HASH_LIMIT) -> str:
    """A hash of a file's bytes (a folder: of its files' relative names and bytes, in order).

    What a checkpoint was trained on is named by content, not by path: a rerun after the split,
    the labels or an upstream store changed must not resume weights that saw other patients. Files
    over ``full_limit`` (an image store of thousands of 512-pixel slices) are hashed by their size
    and 64 evenly spaced 1 MiB blocks, so 36 training jobs do not each read gigabytes: a rewritten
    store (new ingest, new crops) differs throughout, and its small index/manifest is hashed whole.
    """
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        size = f.stat().st_size
        with open(f, "rb") as fh:
            if size <= full_limit:
                while block := fh.read(chunk):
                    h.update(block)
            else:
                h.update(str(size).encode())
                for k in range(HASH_SAMPLES):
                    fh.seek((size - chunk) * k // (HASH_SAMPLES - 1))
                    h.update(fh.read(chunk))
    return h.hexdigest()


def checkpoint_parts(cfg: FitConfig, signature_extra: dict | None, inputs: dict | None) -> dict[str, str]:
    """What a checkpoint is bound to: the settings' signature and a content hash of each named input."""
    return {"settings": cfg.signature(signature_extra),
            **{f"input '{k}'": content_hash(v) for k, v in sorted((inputs or {}).items())}}


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, fetch: Fetch, n_train: int,
        cfg: FitConfig, checkpoint: str | os.PathLike | None = None, signature_extra: dict | None = None,
        scheduler=None, inputs: dict | None = None, evaluate: Callable | None = None,
        epoch_log: list | None = None, keep_checkpoint: bool = False) -> list[float]:
    """Train for ``cfg.epochs`` epochs; returns the mean training loss of every epoch.

    ``epoch_log`` (a list) receives one dict per epoch: ``epoch``, ``loss``, ``accuracy`` (of the
    training batches as trained: augmented, in training mode) and whatever ``evaluate(model)``
    returns (e.g. the validation patients' loss and accuracy, measured in eval mode and logged on
    the epoch's line). It is kept in the checkpoint, so a resumed run has the whole curve.

    ``fetch(indices)`` returns an (inputs, targets) batch on the CPU for positions ``indices`` of
    the training set. With ``checkpoint``, state is saved after each epoch and a matching checkpoint
    is resumed: the same settings (``cfg`` and ``signature_extra``) and the same contents of every
    file in ``inputs`` (name -> path: the training list, the image store, ...). Any other checkpoint
    is discarded with a warning that names what differs, and training starts over; the checkpoint is
    removed when training completes, unless ``keep_checkpoint``: then the caller removes it once the
    job's other outputs are written, so a job cut after training (SLURM's warning while it predicts)
    resumes trained, with no epoch to redo.

    Guards, because a from-scratch net on a small cohort can blow up on one machine's float path and
    not another's: a linear warm-up of the rate over ``cfg.warmup_epochs``, optional gradient-norm
    clipping, and :class:`TrainingDiverged` when a batch loss is not finite or an epoch's mean loss
    exceeds ``cfg.max_loss_ratio`` times the untrained model's loss (the larger of the first batch's
    loss and the first epoch's median batch loss).
    """
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    scaler = precision.make_scaler(device, cfg.amp, cfg.amp_dtype)
    ckpt = Path(checkpoint) if checkpoint else None
    parts = checkpoint_parts(cfg, signature_extra, inputs) if ckpt is not None else {}
    sig = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    history: list[float] = []
    start = 0
    ref_loss = None  # the untrained model's loss: the scale against which divergence is judged
    lock = lock_checkpoint(ckpt) if ckpt is not None else None
    partial = None  # where a signal stopped the run mid-epoch: resumed at the next batch
    stopper = StopRequest(install=ckpt is not None)  # without a checkpoint there is nothing to save
    state = _read_checkpoint(ckpt, device) if ckpt is not None and ckpt.exists() else None
    if state is not None:
        if state.get("signature") == sig:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            precision.restore_scaler(scaler, state.get("scaler"), str(ckpt))
            history = list(state["history"])
            if epoch_log is not None:
                epoch_log[:] = list(state.get("epoch_log") or [])
            ref_loss = state.get("ref_loss")
            start = int(state["epoch"]) + 1
            partial = state.get("partial")
            log.info("resuming from %s after epoch %d%s", ckpt.name, start,
                     f", batch {partial['batch']}" if partial else "")
        else:
            old = state.get("parts") or {}
            differ = [k for k in parts if old.get(k) != parts[k]] or ["settings"]
            log.warning("discarding checkpoint %s after epoch %s: it was written for other %s; training starts "
                        "over", ckpt.name, int(state.get("epoch", -1)) + 1, ", ".join(differ))
            ckpt.unlink()
    batches = epoch_batches(n_train, cfg.batch_size)
    steps_per_epoch = max(1, len(batches))
    warmup_steps = math.ceil(cfg.warmup_epochs * steps_per_epoch)  # any warm-up asked for is at least a step
    what = f"{cfg.label}: " if cfg.label else ""
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
        model.train()
        base_lrs = [g["lr"] for g in optimizer.param_groups]
        total, seen, batch_losses, right = 0.0, 0, [], 0
        skip = 0
        if partial is not None and int(partial["epoch"]) == epoch:  # resume mid-epoch, exactly
            base_lrs, total, seen, right = list(partial["base_lrs"]), partial["total"], partial["seen"], partial["right"]
            batch_losses, skip = list(partial["batch_losses"]), int(partial["batch"])
            t0 -= float(partial.get("elapsed", 0.0))  # the epoch's time counts every run that trained it
            _set_rng_state(partial["rng"], cuda)
            partial = None
        for bi, (b, stop) in enumerate(batches):
            if bi < skip:
                continue
            step = epoch * steps_per_epoch + bi
            if step <= warmup_steps and warmup_steps:  # rises towards, never starts at, the rate; then holds it
                for g, lr in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = lr * min(1.0, (step + 1) / (warmup_steps + 1))
            idx = order[b:stop]
            x, y = fetch(idx)
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if cfg.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast(device, cfg.amp, cfg.amp_dtype):
                out = model(x)
                loss = loss_fn(out, y)
            value = float(loss.detach())
            if epoch_log is not None and out.ndim == 2 and y.ndim == 1:  # a classifier: its training accuracy
                right += int((out.detach().argmax(1) == y).sum())
            if not np.isfinite(value):
                raise TrainingDiverged(
                    f"{what}loss is {value} at epoch {epoch + 1}, batch {bi + 1} (learning rate "
                    f"{optimizer.param_groups[0]['lr']:.3g}): training diverged; lower the learning rate, "
                    "lengthen warmup_epochs or set grad_clip")
            batch_losses.append(value)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total += value * len(idx)
            seen += len(idx)
            if stopper.signum is not None and ckpt is not None and bi + 1 < len(batches):
                _save_checkpoint(ckpt, {
                    "signature": sig, "parts": parts, "epoch": epoch - 1, "history": history, "ref_loss": ref_loss,
                    "epoch_log": epoch_log, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": precision.scaler_state(scaler),
                    "partial": {"epoch": epoch, "batch": bi + 1, "base_lrs": base_lrs, "total": total, "seen": seen,
                                "right": right, "batch_losses": batch_losses, "rng": _rng_state(cuda),
                                "elapsed": time.perf_counter() - t0}})
                announce_stop("%s received: stopped in epoch %d after batch %d of %d (%.1fs into it); saved %s, the "
                              "rerun resumes at the next batch (on SLURM: a TIMEOUT; raise the rule's runtime if it "
                              "recurs)", signal.Signals(stopper.signum).name, epoch + 1, bi + 1, len(batches),
                              time.perf_counter() - t0, ckpt)
                stopper.restore()
                raise TrainingInterrupted(128 + stopper.signum)
        for g, lr in zip(optimizer.param_groups, base_lrs):
            g["lr"] = lr  # the warm-up scaled a copy; schedules and checkpoints see the epoch's rate
        if scheduler is not None:
            scheduler.step()
        history.append(total / max(seen, 1))
        if ref_loss is None and batch_losses:
            # The untrained scale: the first batch's loss, or the first epoch's median batch loss if a
            # lucky first batch was unusually low (a median is not moved by a late explosion).
            ref_loss = max(batch_losses[0], float(np.median(batch_losses)))
        extra = ""
        if epoch_log is not None:
            row = {"epoch": epoch + 1, "loss": history[-1], "accuracy": right / max(seen, 1)}
            if evaluate is not None:
                row.update(evaluate(model))
                model.train()
            epoch_log.append(row)
            extra = "".join(f", {k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "loss"))
        log.info("epoch %d/%d loss %.4f%s (%.1fs, %d samples, lr %.3g)", epoch + 1, cfg.epochs, history[-1], extra,
                 time.perf_counter() - t0, seen, base_lrs[0])
        if ref_loss is not None and history[-1] > cfg.max_loss_ratio * ref_loss:
            raise TrainingDiverged(
                f"{what}mean loss {history[-1]:.3g} in epoch {epoch + 1} is over {cfg.max_loss_ratio:g} times the "
                f"untrained model's {ref_loss:.3g}: training diverged; lower the learning rate, lengthen "
                "warmup_epochs or set grad_clip")
        if ckpt is not None:
            _save_checkpoint(ckpt, {"signature": sig, "parts": parts, "epoch": epoch, "history": history, "ref_loss": ref_loss,
                                    "epoch_log": epoch_log,
                                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                                    "scaler": precision.scaler_state(scaler)})
            if stopper.signum is not None and epoch + 1 < cfg.epochs:
                announce_stop("%s received: stopped after epoch %d; saved %s, the rerun resumes at the next epoch",
                              signal.Signals(stopper.signum).name, epoch + 1, ckpt)
                stopper.restore()
                raise TrainingInterrupted(128 + stopper.signum)
    if ckpt is not None and ckpt.exists() and not keep_checkpoint:
        ckpt.unlink()
    release_checkpoint_lock(lock)
    stopper.restore()
    return history


@torch.no_grad()
def predict(model: torch.nn.Module, fetch_x: Callable[[np.ndarray], torch.Tensor], n: int, batch_size: int,
            device: str = "auto", amp: bool = True) -> torch.Tensor:
    """Run ``model`` over ``n`` inputs in order; returns the concatenated float32 outputs on the CPU."""
    dev = resolve_device(device)
    model.to(dev).eval()
    outs = []
    for b in range(0, n, batch_size):
        x = fetch_x(np.arange(b, min(n, b + batch_size))).to(dev)
        with torch.autocast(device_type=dev.type, enabled=dev.type == "cuda" and amp):
            outs.append(model(x).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def save_model(path: str | os.PathLike, model: torch.nn.Module, meta: dict) -> None:
    """Atomically save weights plus what is needed to rebuild the model (``meta``).

    Serialised in memory first: torch names the archive's records after the file it writes, and
    the temporary file's name is random, so the same model would not be the same bytes twice.
    """
    buf = io.BytesIO()
    torch.save({"meta": meta, "state_dict": model.state_dict()}, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_model(path: str | os.PathLike, build: Callable[[dict], torch.nn.Module]) -> tuple[torch.nn.Module, dict]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model = build(blob["meta"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["meta"]
