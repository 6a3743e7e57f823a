"""Warm worker: local jobs start in a process that has already imported torch, timm, pandas, ...

Why: Snakemake runs every ``script:`` job in a fresh Python, and on the demo's 2 cores the ~140
jobs spent a third of their time importing the same libraries (torch + timm 3.4 s, grad-cam
4.9 s, pandas + scikit-learn 1 s per job). With ``warm_worker: true`` and local execution, the
Snakefile's ``onstart`` starts one server (``python -m anapart.runtime.server``, :mod:`anapart.runtime.server`) that imports them once.
Each glue script's first statement, ``delegate()``, hands the script to the server, which forks a
child that runs the script from the top, with the job's working directory, environment, argv,
standard streams and thread counts. The script process waits, forwards signals, and exits with
the child's status; the server logs each job's wall time, CPU time and peak memory
(``logs/worker/jobs.tsv``), since Snakemake's ``benchmark:`` sees only the waiting process.

Safe by construction: of anapart, only this module (and the package's constants) is imported
before the fork, so code edits take effect as before; a script that cannot reach the server, or
runs under another interpreter (conda, containers), runs in its own process, as before; cluster
jobs, software-deployment runs and machines with NVIDIA devices (CUDA must not be initialised
before a fork) never start it; the socket is private to the user (0700 folder, peer uid
checked) and serves only descendants of the Snakemake process that started it; a job ends with its script process and with the server, and the server ends with the
Snakemake process that started it. What a job cannot get from the fork: environment variables
that a library reads once at import (e.g. ``MPLBACKEND``, ``HF_HUB_OFFLINE``) keep the values
Snakemake started with, and the string hash seed is the server's.
This module imports only the standard library: it runs in every job before anything else.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_VAR = "ANAPART_WORKER"
"""The server's socket path, set in Snakemake's environment (and so every job's) by ``start``."""

PRELOAD = (
    "numpy", "pandas", "scipy.stats", "sklearn.metrics", "matplotlib", "matplotlib.pyplot",
    "pydicom", "SimpleITK", "torch", "torchvision", "timm", "segmentation_models_pytorch",
    "pytorch_grad_cam", "pingouin", "snakemake.script", "snakemake.iocontainers",
    "snakemake.logging",
)
"""Libraries the jobs import; never anapart's own modules (they must reflect code edits)."""

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
                if hasattr(signal, n))
MAX_MESSAGE = 1 << 20
ACCEPT_TIMEOUT_S = 5.0
POLL_S = 1.0
STATS_COLUMNS = ("job", "wildcards", "pid", "wall_s", "cpu_s", "max_rss_mb", "exit")
PR_SET_PDEATHSIG = 1  # linux/prctl.h

_in_worker = False


def enter_job() -> None:
    """Mark this process as a job forked by the server: its ``delegate()`` then runs the script here."""
    global _in_worker
    _in_worker = True


def interpreter() -> dict:
    """Which Python a job runs under: the server serves only its own (not a conda env's)."""
    return {"prefix": os.path.realpath(sys.prefix), "version": sys.version}


def delegate() -> None:
    """Run the calling glue script in the warm worker and exit with its status.

    Returns (and the script runs here, in its own process) when there is no worker: no
    ``ANAPART_WORKER`` in the environment, the server not (yet) listening or refusing (another
    interpreter), or the call made inside the worker's child itself.
    """
    if _in_worker:
        return
    die_with_parent()
    path = os.environ.get(ENV_VAR)
    main = sys.modules.get("__main__")
    script = getattr(main, "__real_file__", None)  # the Snakemake script with its preamble
    if not path or script is None:
        return
    smk = getattr(main, "snakemake", None)
    wildcards = getattr(smk, "wildcards", None)
    request = {
        "script": script, "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
        "interpreter": interpreter(), "job": getattr(smk, "rule", ""),
        "wildcards": ",".join(f"{k}={v}" for k, v in wildcards.items()) if wildcards is not None else "",
    }
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except (OSError, AttributeError):  # no such sockets on this platform
        return
    try:
        sock.connect(path)
        socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
        reply = sock.recv(MAX_MESSAGE)
    except ConnectionRefusedError:  # its socket is there, nobody listens: the server died
        print(f"anapart worker: warning: the warm worker ({path}) is gone; this job runs in its own process "
              "(every later job pays its imports again; see logs/worker/server.log)", file=sys.stderr, flush=True)
        reply = b""
    except OSError:  # not listening yet (still importing), or refused this client: run here, as before
        reply = b""
    if not reply:
        sock.close()
        return
    pid = json.loads(reply)["pid"]

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in SIGNALS:
        signal.signal(s, forward)
    try:
        status = sock.recv(MAX_MESSAGE)
    except OSError:
        status = b""
    if status:
        code = json.loads(status)["exit"]
    else:  # the server is gone: so is the job (parent-death signal); this covers a failed prctl
        forward(signal.SIGKILL, None)
        print(f"anapart worker: lost the job process {pid} (the worker ended)", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def die_with_parent() -> None:
    """This job process gets SIGTERM when the process that started it (Snakemake) dies, however it
    dies: a kill -9 of Snakemake must leave no job writing outputs (or a checkpoint) that a rerun
    then writes too. SIGTERM, not SIGKILL: a training job saves where it is and exits after its
    running batch (:func:`anapart.learn.training.fit`); any other job ends at once. A waiting script
    process forwards it to its job in the worker (and a script process that dies ends that job: the
    server sees the closed connection). Linux only (``PR_SET_PDEATHSIG``); elsewhere nothing."""
    if sys.platform != "linux":
        return
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the prctl: we are an orphan already
        os._exit(1)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def gpu_present() -> bool:
    """NVIDIA devices or driver tools on this machine (then no fork server: CUDA and fork do not mix)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def server_env(**extra: str) -> dict:
    """The server's environment: one thread per library, so no thread pool exists before a fork."""
    return dict(os.environ, **{v: "1" for v in THREAD_VARS}, **extra)


class Handle:
    """The Snakefile's view of a started server."""

    def __init__(self, proc: subprocess.Popen, folder: str):
        self.proc, self.folder = proc, folder

    def ended_early(self) -> int | None:
        """The server's exit status if it ended before the run did (a crash, the OOM killer), else None."""
        return self.proc.poll()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        os.environ.pop(ENV_VAR, None)


def start(log_dir: str | os.PathLike, preload=PRELOAD) -> Handle | None:
    """Start the server for this Snakemake process (call from ``onstart``); None where it must not run.

    Returns at once: the server preloads in the background and jobs started before it listens run
    in their own processes.
    """
    if sys.platform != "linux" or gpu_present():
        return None
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="anapart-worker-")  # 0700: private to this user
    path = os.path.join(folder, "socket")
    env = server_env()
    env.pop(ENV_VAR, None)
    with open(log_dir / "server.log", "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "anapart.runtime.server", path, str(os.getpid()), str(log_dir / "jobs.tsv"),
             ",".join(preload)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )
    os.environ[ENV_VAR] = path
    return Handle(proc, folder)
