"""What keeps one model's training safe from the faults a cluster produces (used by
:func:`anapart.learn.training.fit`): a damaged checkpoint discarded instead of blocking its job, a
checkpoint write that says whether the disk is full, one trainer per model (a lock beside the
checkpoint), SIGTERM/SIGUSR1 turned into a save after the running batch, and no batch of one sample.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

import torch

from anapart.io.files import atomic_path

log = logging.getLogger("anapart.training")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names it and says whether the disk is full."""


class TrainerBusy(RuntimeError):
    """Another live process trains the same model (holds its checkpoint's lock)."""


def write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialised in memory, then written atomically: a write that fails leaves the previous
    checkpoint as it was and says why in words, a full disk (ENOSPC, EDQUOT) by name (torch's own
    writer reports it as "unexpected pos ...")."""
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        with atomic_path(path) as tmp:
            write_bytes(tmp, buf.getvalue())
    except OSError as e:
        raise CheckpointWriteError(e.errno, checkpoint_write_message(path, e, len(buf.getvalue()))) from e


def checkpoint_write_message(path: Path, e: OSError, size: int) -> str:
    """Why a checkpoint write failed: a full disk (or quota) said plainly, with the space it needed."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    need = f"{size / 2**20:.1f} MiB"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if e.errno == errno.ENOSPC else "disk quota exceeded"
        return (f"{path}: checkpoint not written: {what} (it needs {need}; {free} on {path.parent}); the previous "
                "checkpoint is kept: free space and rerun the same command to resume from it")
    return f"{path}: checkpoint not written ({e.strerror or e}; the disk is not full: {free}, {need} needed)"


CHECKPOINT_FIELDS = {"signature": str, "epoch": int, "history": list, "model": dict, "optimizer": dict}


def read_checkpoint(ckpt: Path, device) -> dict | None:
    """A checkpoint's state, or None (the file removed, with a warning naming it) when it cannot be
    read (0 bytes, cut short) or is not a checkpoint of this loop: a damaged file must not block its
    job on every rerun; training starts over."""
    try:
        state = torch.load(ckpt, map_location=device, weights_only=False)
    except Exception as e:  # torch raises EOFError, RuntimeError, UnpicklingError, ... for damaged files
        why = f"it cannot be read ({type(e).__name__}: {str(e).strip() or 'empty'}; {ckpt.stat().st_size} bytes)"
    else:
        wrong = ([] if isinstance(state, dict) else [f"a {type(state).__name__}, not a dict"]) or [
            f"'{k}' is {'missing' if k not in state else type(state[k]).__name__}"
            for k, kind in CHECKPOINT_FIELDS.items() if not isinstance(state.get(k), kind)]
        if not wrong:
            return state
        why = f"it has the wrong structure ({'; '.join(wrong)})"
    log.warning("discarding checkpoint %s: %s; training starts over", ckpt, why)
    ckpt.unlink(missing_ok=True)
    return None


def lock_checkpoint(ckpt: Path):
    """An exclusive lock on ``<checkpoint>.lock``, held by the returned open file for the training's
    lifetime (the kernel releases it when the process dies, however it dies); raises
    :class:`TrainerBusy`, naming the holder's PID, when another process holds it: two writers of one
    checkpoint would interleave their epochs."""
    lock = ckpt.with_name(ckpt.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fh = open(lock, "a+")  # noqa: SIM115 - held until the training ends
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise TrainerBusy(f"{ckpt}: another process (PID {holder}) is training this model and holds {lock}; "
                              "this one stops. Wait for it or end it (kill " + holder + "), then rerun") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file that a finishing trainer removed after we opened it
            break
        fh.close()
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def release_checkpoint_lock(fh) -> None:
    """Remove the lock file (training is complete) and release the lock."""
    if fh is None:
        return
    Path(fh.name).unlink(missing_ok=True)
    fh.close()


def epoch_batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of an epoch of ``n`` shuffled samples. A last batch of one sample
    is merged into the one before it (batch_size + 1): BatchNorm cannot train on a single sample
    ("Expected more than 1 value per channel"), and every sample is still seen once an epoch. The same
    rule for every stage, since every stage trains through :func:`fit`."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [(b, starts[i + 1] if i + 1 < len(starts) else n) for i, b in enumerate(starts)]


class TrainingInterrupted(SystemExit):
    """SIGTERM or SIGUSR1 (SLURM's warning before its time limit) stopped training after a batch; a
    mid-epoch checkpoint was saved and the rerun resumes at the next batch."""


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGUSR1") if hasattr(signal, n))


class StopRequest:
    """Turns SIGTERM/SIGUSR1 into a request the loop honours after the running batch (saving where
    it is), for the duration of :func:`fit`; the previous handlers come back afterwards. Outside the
    main thread (no signal handlers there) it never fires."""

    def __init__(self, install: bool = True):
        self.signum, self.previous = None, {}
        try:
            for s in STOP_SIGNALS if install else ():
                self.previous[s] = signal.signal(s, self._note)
        except ValueError:  # not the main thread
            self.previous = {}

    def _note(self, signum, _frame):
        self.signum = signum

    def restore(self) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)
        self.previous = {}


def announce_stop(message: str, *args) -> None:
    """The stop's warning, in the rule's log and on the process's own stderr when the log took its
    place: on SLURM that is the job's output file, which outlives the retry (Snakemake deletes the
    rule's log before it reruns a job), so the attempt that was cut keeps saying so."""
    log.warning(message, *args)
    console = sys.__stderr__
    if console is not None and console is not sys.stderr:
        print("anapart: " + message % args, file=console, flush=True)


def rng_state(cuda: bool) -> dict:
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else None}


def set_rng_state(state: dict, cuda: bool) -> None:
    torch.set_rng_state(state["cpu"])
    if cuda and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
