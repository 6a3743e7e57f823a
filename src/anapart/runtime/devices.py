"""One GPU per local job: a pool of device slots that concurrent jobs claim through file locks.

Why: ``snakemake -c16 --resources gpu=4`` lets four training jobs run at once, but gives each of
them every GPU, so all four land on ``cuda:0`` (Snakemake cannot hand a local job its own device).
The Snakefile sizes a pool (``--resources gpu=N``) and names it in the jobs' environment
(:data:`ENV_VAR`); a GPU job's first step, :func:`claim`, takes a free slot and sets
``CUDA_VISIBLE_DEVICES`` to that one device before torch starts CUDA, so ``cuda:0`` in the job is
its own card.

A slot is an exclusive ``flock`` on ``<pool>/slot<i>.lock``, held by an open file of the job's
process: the kernel drops it when the process ends, however it ends (exit, exception, SIGKILL, the
OOM killer), so a crashed job never leaks its device; nothing is cleaned up by hand. Jobs forked by
the warm worker (:mod:`anapart.runtime.worker`) claim in the forked child, which holds the lock for
its own lifetime. Standard library only.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

ENV_VAR = "ANAPART_GPU_POOL"
"""JSON ``{"dir": <pool folder>, "devices": ["0", "1", ...]}``, set for the jobs by the Snakefile."""

WAIT_S = 0.5
_held: list = []  # this process's slot files: kept open (and so locked) until the process ends


def describe(folder: str | os.PathLike, n: int, visible: str | None = None) -> str:
    """The pool's :data:`ENV_VAR` value: ``n`` slots over the devices ``visible`` (the parent's
    ``CUDA_VISIBLE_DEVICES``, when it already restricts them) or over devices 0..n-1."""
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(n)]
    if len(devices) < n:
        raise ValueError(f"a pool of {n} GPUs, but CUDA_VISIBLE_DEVICES names only {len(devices)}: {visible}")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return json.dumps({"dir": str(Path(folder).resolve()), "devices": devices[:n]})


def try_slot(folder: Path, i: int):
    """The open, locked slot file ``i``, or None when another process holds it."""
    fh = open(folder / f"slot{i}.lock", "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")  # who holds it, for a person looking at the folder
    fh.flush()
    return fh


def claim(env: dict | None = None, timeout_s: float | None = None, log=sys.stderr) -> str | None:
    """Take a free device of the pool named in ``env`` (default: ``os.environ``) and make it the only
    one this process sees; returns its id, or None when no pool is set (nothing changes).

    Waits while every slot is taken (a job started past the pool's size); ``timeout_s`` bounds the
    wait (TimeoutError). Call before anything initialises CUDA; a second call returns the same device.
    """
    env = os.environ if env is None else env
    spec = env.get(ENV_VAR)
    if not spec:
        return None
    if _held:
        return env.get("CUDA_VISIBLE_DEVICES")
    pool = json.loads(spec)
    folder, devices = Path(pool["dir"]), list(pool["devices"])
    t0 = time.monotonic()
    said = False
    while True:
        for i, dev in enumerate(devices):
            fh = try_slot(folder, i)
            if fh is not None:
                _held.append(fh)
                env["CUDA_VISIBLE_DEVICES"] = dev
                print(f"anapart: this job uses GPU {dev} (slot {i} of {len(devices)} in {folder})", file=log,
                      flush=True)
                return dev
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"all {len(devices)} GPUs of the pool {folder} stayed taken for {timeout_s:g} s")
        if not said:
            print(f"anapart: all {len(devices)} GPUs of the pool are taken; waiting for one", file=log, flush=True)
            said = True
        time.sleep(WAIT_S)


def release() -> None:
    """Give this process's device back before it ends (the end of the process does it too)."""
    while _held:
        _held.pop().close()
