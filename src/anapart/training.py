"""The one training loop of anapart (segmentation and classification both use :func:`fit`).

Why a hand-written loop instead of a DataLoader: every stage reads ready tensors from a
memory-mapped store, so a batch is one fancy-indexing read; no per-sample Python, no workers.
The loop checkpoints after every epoch (atomically) and resumes from the checkpoint when a killed
job is rerun, reproducing the uninterrupted run because each epoch's shuffle and torch RNG are
derived from (seed, epoch) rather than from the state of a previous epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .files import atomic_path

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
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(int(n))


@dataclass
class FitConfig:
    epochs: int
    batch_size: int
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, CUDA only
    channels_last: bool = True  # CUDA only
    grad_clip: float | None = None  # max global gradient norm; None = no clipping

    def signature(self, extra: dict | None = None) -> str:
        payload = json.dumps({**self.__dict__, **(extra or {})}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, fetch: Fetch, n_train: int,
        cfg: FitConfig, checkpoint: str | os.PathLike | None = None, signature_extra: dict | None = None,
        scheduler=None) -> list[float]:
    """Train for ``cfg.epochs`` epochs; returns the mean training loss of every epoch.

    ``fetch(indices)`` returns an (inputs, targets) batch on the CPU for positions ``indices`` of
    the training set. With ``checkpoint``, state is saved after each epoch and a matching checkpoint
    (same config signature) is resumed; the checkpoint is removed when training completes.
    """
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    model.to(device)
    if cuda and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp)
    sig = cfg.signature(signature_extra)
    history: list[float] = []
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state.get("signature") == sig:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            history = list(state["history"])
            start = int(state["epoch"]) + 1
            log.info("resuming from %s after epoch %d", ckpt.name, start)
        else:
            log.info("ignoring checkpoint %s written with other settings", ckpt.name)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
        model.train()
        total, seen = 0.0, 0
        for b in range(0, n_train, cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            x, y = fetch(idx)
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if cuda and cfg.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=cuda and cfg.amp):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        if scheduler is not None:
            scheduler.step()
        history.append(total / max(seen, 1))
        log.info("epoch %d/%d loss %.4f (%.1fs, %d samples)", epoch + 1, cfg.epochs, history[-1],
                 time.perf_counter() - t0, seen)
        if ckpt is not None:
            _save_checkpoint(ckpt, {"signature": sig, "epoch": epoch, "history": history,
                                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "scheduler": scheduler.state_dict() if scheduler is not None else None})
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
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
    """Atomically save weights plus what is needed to rebuild the model (``meta``)."""
    with atomic_path(path) as tmp:
        torch.save({"meta": meta, "state_dict": model.state_dict()}, tmp)


def load_model(path: str | os.PathLike, build: Callable[[dict], torch.nn.Module]) -> tuple[torch.nn.Module, dict]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model = build(blob["meta"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["meta"]
