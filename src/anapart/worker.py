"""Warm worker: local jobs start in a process that has already imported torch, timm, pandas, ...

Why: Snakemake runs every ``script:`` job in a fresh Python, and on the demo's 2 cores the ~140
jobs spend a fifth of their time importing the same libraries (torch + timm 3.4 s, grad-cam
4.9 s, pandas + scikit-learn 1 s per job). With ``warm_worker: true`` and local execution, the
Snakefile's ``onstart`` starts one server (``python -m anapart.worker``) that imports them once.
Each glue script's first statement, ``delegate()``, hands the script to the server, which forks a
child that runs the script from the top, with the job's working directory, environment, argv and
standard streams, and the thread counts Snakemake gave the job. The script process waits,
forwards signals, and exits with the child's status; the server logs each job's wall time, CPU
time and peak memory (``logs/worker/jobs.tsv``, since Snakemake's ``benchmark:`` sees only the
waiting process).

Safe by construction: nothing of anapart but this module is imported before the fork, so code
edits take effect as before; a script that cannot reach the server runs in its own process, as
before; cluster jobs (SLURM) and machines with NVIDIA devices (CUDA must not be initialised
before a fork) never use it; the socket is private to the user (0700 folder, peer uid checked);
the server and its jobs end with the Snakemake process that started it.
This module imports only the standard library: it runs in every job before anything else.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
MAX_MESSAGE = 1 << 20
POLL_S = 1.0
STATS_COLUMNS = ("job", "wildcards", "pid", "wall_s", "cpu_s", "max_rss_mb", "exit")

_in_worker = False


def delegate() -> None:
    """Run the calling glue script in the warm worker and exit with its status.

    Returns (and the script runs here, in its own process) when there is no worker: no
    ``ANAPART_WORKER`` in the environment, a SLURM job, the server not (yet) listening, or the
    call made inside the worker's child itself.
    """
    if _in_worker:
        return
    path = os.environ.get(ENV_VAR)
    main = sys.modules.get("__main__")
    script = getattr(main, "__real_file__", None)  # the Snakemake script with its preamble
    if not path or script is None or "SLURM_JOB_ID" in os.environ:
        return
    smk = getattr(main, "snakemake", None)
    wildcards = getattr(smk, "wildcards", None)
    request = {
        "script": script, "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
        "job": getattr(smk, "rule", ""),
        "wildcards": ",".join(f"{k}={v}" for k, v in wildcards.items()) if wildcards is not None else "",
    }
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
        socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
        reply = sock.recv(MAX_MESSAGE)
    except OSError:
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
    status = sock.recv(MAX_MESSAGE)
    if status:
        code = json.loads(status)["exit"]
    else:
        print(f"anapart worker: lost the job process {pid} (the worker ended)", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def gpu_present() -> bool:
    """NVIDIA devices or driver tools on this machine (then no fork server: CUDA and fork do not mix)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


class Server:
    """Accept jobs on a Unix socket; fork one child per job from the preloaded process."""

    def __init__(self, path: str, parent: int, stats: str | None = None, log=None):
        self.path, self.parent, self.stats, self.log = path, parent, stats, log or sys.stderr
        self.jobs: dict[int, dict] = {}  # child pid -> {conn, request, start}
        self.stopping = False

    def say(self, msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=self.log, flush=True)

    def preload(self, modules=PRELOAD) -> None:
        t0 = time.perf_counter()
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as e:  # a missing optional library: its jobs import it themselves
                self.say(f"preload {name} failed: {e!r}")
        self.say(f"preloaded {len(modules)} modules in {time.perf_counter() - t0:.1f} s")

    def run(self) -> None:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        srv.bind(self.path)
        srv.listen(64)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.say(f"listening on {self.path} for Snakemake pid {self.parent}")
        self.fds = (srv, wake_r, wake_w)
        try:
            while not self.stopping and os.getppid() == self.parent:
                conns = [j["conn"] for j in self.jobs.values()]
                ready, _, _ = select.select([srv, wake_r, *conns], [], [], POLL_S)
                if wake_r in ready:
                    while True:
                        try:
                            if not os.read(wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                self._reap()
                if srv in ready:
                    self._accept(srv)
                for conn in ready:
                    if conn in conns:
                        self._client_gone(conn)
        finally:
            for pid in list(self.jobs):
                os.kill(pid, signal.SIGTERM)
            srv.close()
            os.unlink(self.path)
            try:
                os.rmdir(os.path.dirname(self.path))  # start()'s private folder
            except OSError:
                pass
            self.say(f"stopped ({len(self.jobs)} jobs still running were terminated)")

    def _stop(self, *_):
        self.stopping = True

    def _accept(self, srv) -> None:
        conn, _ = srv.accept()
        uid = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        if int.from_bytes(uid[4:8], sys.byteorder) != os.getuid():
            conn.close()  # another user: never run their code
            return
        try:
            msg, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
            request = json.loads(msg)
        except (OSError, ValueError) as e:
            self.say(f"bad request: {e!r}")
            conn.close()
            return
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = self._child(conn, request, fds)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        self.jobs[pid] = {"conn": conn, "request": request, "start": time.perf_counter()}
        conn.send(json.dumps({"pid": pid}).encode())

    def _reap(self) -> None:
        while self.jobs:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.jobs.pop(pid, None)
            if job is None:
                continue
            code = exit_code(status)
            try:
                job["conn"].send(json.dumps({"exit": code}).encode())
            except OSError:
                pass
            job["conn"].close()
            self._record(pid, job, code, usage)

    def _client_gone(self, conn) -> None:
        """The waiting script process ended (killed by Snakemake): its job ends too."""
        try:
            data = conn.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if data:
            return
        for pid, job in self.jobs.items():
            if job["conn"] is conn:
                os.kill(pid, signal.SIGKILL)

    def _record(self, pid: int, job: dict, code: int, usage) -> None:
        r = job["request"]
        row = (r.get("job", ""), r.get("wildcards", ""), pid, f"{time.perf_counter() - job['start']:.2f}",
               f"{usage.ru_utime + usage.ru_stime:.2f}", f"{usage.ru_maxrss / 1024:.1f}", code)
        self.say(f"job {row[0]} {row[1]} pid {pid}: exit {code}, wall {row[3]} s, CPU {row[4]} s, "
                 f"peak RSS {row[5]} MB")
        if self.stats:
            new = not os.path.exists(self.stats)
            with open(self.stats, "a") as fh:
                if new:
                    fh.write("\t".join(STATS_COLUMNS) + "\n")
                fh.write("\t".join(map(str, row)) + "\n")

    def _child(self, conn, request: dict, fds: list[int]) -> int:
        """In the forked child: become the job's process, then run its script from the top."""
        global _in_worker
        _in_worker = True
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGCHLD, signal.SIGTERM, *SIGNALS):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for j in self.jobs.values():
            j["conn"].close()
        conn.close()
        srv, wake_r, wake_w = self.fds
        srv.close()
        os.close(wake_r)
        os.close(wake_w)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        script = request["script"]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        _match_threads(request["env"])
        import random

        random.seed()  # as a fresh process: not the server's state (anapart seeds what it uses)
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        return _run_script(script)


def _match_threads(env: dict) -> None:
    """Apply the job's thread count, which a fresh process would read from OMP_NUM_THREADS at import."""
    n = env.get("OMP_NUM_THREADS")
    if not n or not n.isdigit():
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(n))
    except ImportError:
        pass


def _run_script(script: str) -> int:
    import logging
    import runpy

    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())  # the script's own hook (setup_logging: log + console)
        code = 1
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr, sys.__stderr__, sys.__stdout__):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
    return code


class Handle:
    """The Snakefile's view of a started server."""

    def __init__(self, proc: subprocess.Popen, folder: str):
        self.proc, self.folder = proc, folder

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
        os.environ.pop(ENV_VAR, None)


def start(log_dir: str | os.PathLike, preload=PRELOAD) -> Handle | None:
    """Start the server for this Snakemake process (call from ``onstart``); None where it must not run.

    Returns at once: the server preloads in the background and jobs started before it listens run
    in their own processes.
    """
    if gpu_present():
        return None
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="anapart-worker-")  # 0700: private to this user
    path = os.path.join(folder, "socket")
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})  # no thread pools before the fork
    env.pop(ENV_VAR, None)
    with open(log_dir / "server.log", "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anapart.worker", path, str(os.getpid()), str(log_dir / "jobs.tsv"),
             ",".join(preload)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )
    os.environ[ENV_VAR] = path
    return Handle(proc, folder)


def main(argv: list[str]) -> None:
    """``python -m anapart.worker SOCKET PARENT_PID STATS_TSV [MODULE,MODULE...]`` (default PRELOAD)."""
    path, parent, stats = argv[:3]
    server = Server(path, int(parent), stats or None)
    server.preload(argv[3].split(",") if len(argv) > 3 else PRELOAD)
    server.run()


if __name__ == "__main__":
    # Through the package, so that the child's ``delegate()`` sees the same module (``_in_worker``).
    from anapart import worker

    worker.main(sys.argv[1:])
