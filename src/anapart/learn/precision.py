"""Mixed precision and GPU determinism for the training loop (:func:`anapart.learn.training.fit`).

Why a module of its own: what a resumed GPU job must restore beyond weights, optimiser and
schedule is the loss scaler's state (its scale and growth counter). Restarting it at 65536 after a
preemption re-skips the steps the first run already skipped while the scale backed off, so the
resumed model is not the uninterrupted one. ``float16`` autocast needs that scaler; ``bfloat16``
has float32's range and runs without one (nothing to restore).

``CUBLAS_WORKSPACE_CONFIG`` must be in the environment before cuBLAS creates its first handle, or
``torch.use_deterministic_algorithms(True, warn_only=True)`` only warns and GPU matrix products are
not bit-for-bit repeatable: :func:`deterministic_cuda_env` sets it (without overriding a user's
value) when a training job seeds itself, before any model reaches the GPU.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger("anapart.training")

AMP_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16}
"""``amp_dtype`` config names -> autocast dtypes. Only float16 uses a gradient scaler."""

SCALED = {"float16"}

AMP_DEVICES = {"cuda"}
"""Device types trained in mixed precision when ``amp`` is on; the CPU trains in float32 (its
autocast is slower than float32 on most CPUs). Tests add ``cpu`` to run the same code path."""

CUBLAS_WORKSPACE = ":4096:8"  # the value NVIDIA documents for deterministic cuBLAS


def amp_dtype(name: str) -> torch.dtype:
    if name not in AMP_DTYPES:
        raise ValueError(f"amp_dtype: unknown '{name}' (known: {', '.join(AMP_DTYPES)})")
    return AMP_DTYPES[name]


def amp_on(device: torch.device, amp: bool) -> bool:
    """Whether this device trains in mixed precision under the config's ``amp``."""
    return bool(amp) and device.type in AMP_DEVICES


def autocast(device: torch.device, amp: bool, dtype_name: str = "float16"):
    """The autocast context of one training step (disabled where :func:`amp_on` is false)."""
    return torch.autocast(device_type=device.type, dtype=amp_dtype(dtype_name), enabled=amp_on(device, amp))


def make_scaler(device: torch.device, amp: bool, dtype_name: str = "float16") -> torch.amp.GradScaler:
    """A loss scaler: enabled for float16 mixed precision only (a disabled one passes steps through)."""
    amp_dtype(dtype_name)  # validate the name even where AMP is off
    return torch.amp.GradScaler(device.type, enabled=amp_on(device, amp) and dtype_name in SCALED)


def scaler_state(scaler: torch.amp.GradScaler) -> dict:
    """What the checkpoint keeps of the scaler ({} for a disabled one)."""
    return scaler.state_dict() if scaler.is_enabled() else {}


def restore_scaler(scaler: torch.amp.GradScaler, state: dict | None, where: str = "checkpoint") -> None:
    """Put a checkpoint's scaler state back. A checkpoint without one was written where float16 AMP
    was off (device ``auto`` on a CPU node, resumed on a GPU one): that resume cannot be exact, and
    the log says so rather than failing the job."""
    if scaler.is_enabled():
        if not state:
            log.warning("%s holds no loss-scaler state (written without float16 mixed precision, e.g. on the CPU): "
                        "the loss scale starts over, so this resumed run is not the uninterrupted one", where)
            return
        scaler.load_state_dict(state)
        log.info("restored the loss scale %g (growth tracker %s)", scaler.get_scale(), state.get("_growth_tracker"))


def deterministic_cuda_env() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` for deterministic cuBLAS unless the user set it; warn when it
    comes too late (CUDA already initialised in this process: cuBLAS may have read the old value)."""
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        return
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    if torch.cuda.is_initialized():
        log.warning("CUBLAS_WORKSPACE_CONFIG was set after CUDA started: GPU matrix products of this job may "
                    "not repeat bit for bit (set it in the environment to be sure)")
