"""Warm worker: local jobs start in a process that has already imported torch, timm, pandas, ...

Why: Snakemake runs every ``script:`` job in a fresh Python, and on the demo's 2 cores the ~140
jobs spent a third of their time importing the same libraries (torch + timm 3.4 s, grad-cam
4.9 s, pandas + scikit-learn 1 s per job). With ``warm_worker: true`` and local execution, the
Snakefile's ``onstart`` starts one server (``python -m anapart.worker``) that imports them once.
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
import importlib
import json
import os
import selectors
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
SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
                if hasattr(signal, n))
MAX_MESSAGE = 1 << 20
ACCEPT_TIMEOUT_S = 5.0
POLL_S = 1.0
STATS_COLUMNS = ("job", "wildcards", "pid", "wall_s", "cpu_s", "max_rss_mb", "exit")
PR_SET_PDEATHSIG = 1  # linux/prctl.h

_in_worker = False


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


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def gpu_present() -> bool:
    """NVIDIA devices or driver tools on this machine (then no fork server: CUDA and fork do not mix)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


class Server:
    """Accept jobs on a Unix socket; fork one child per job from the preloaded process.

    A failure while serving one job (a client gone before its reply, a failed fork, a full disk
    for the stats) costs that job at most, never the server and the jobs it is running.
    """

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
        self.sel = selectors.DefaultSelector()
        self.sel.register(srv, selectors.EVENT_READ, "accept")
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        self.fds = (srv, wake_r, wake_w)
        self.say(f"listening on {self.path} for Snakemake pid {self.parent}")
        try:
            while not self.stopping and os.getppid() == self.parent:
                for key, _ in self.sel.select(POLL_S):
                    try:
                        if key.data == "wake":
                            _drain(wake_r)
                        elif key.data == "accept":
                            self._accept(srv)
                        else:
                            self._client_gone(key.fileobj)
                    except Exception as e:  # one job's trouble, not the server's
                        self.say(f"error serving a job: {e!r}")
                        time.sleep(0.1)  # no busy loop on a lasting error (out of fds, say)
                self._reap()
        finally:
            for pid in list(self.jobs):
                _kill(pid, signal.SIGTERM)
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
        self.serve(conn)

    def serve(self, conn) -> None:
        """Start the job a client asks for, or close the connection (the client then runs its
        script itself): for another user, a process outside this run, another interpreter, a bad
        request, or a failure before the fork."""
        with_job = False
        try:
            with_job = self._start_job(conn)
        finally:
            if not with_job:
                conn.close()

    def _start_job(self, conn) -> bool:
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        client, uid = (int.from_bytes(cred[i:i + 4], sys.byteorder) for i in (0, 4))
        if uid != os.getuid() or not descends_from(client, self.parent):
            return False  # another user, or not a job of the Snakemake run that started us
        conn.settimeout(ACCEPT_TIMEOUT_S)  # a client that connects and sends nothing
        msg, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
        conn.settimeout(None)
        try:
            request = json.loads(msg)
            if len(fds) != 3 or request.get("interpreter") != interpreter():
                return False  # another Python (a conda env, a container): not ours to run
            self.sel.register(conn, selectors.EVENT_READ, "client")  # before the fork: nothing can
            sys.stdout.flush()  # fail between the fork and the job's registration
            sys.stderr.flush()
            server = os.getpid()
            try:
                pid = os.fork()
            except OSError:
                _unregister(self.sel, conn)
                raise
            if pid == 0:
                code = 1
                try:
                    code = self._child(conn, request, fds, server)
                finally:
                    os._exit(code)
        finally:
            for fd in fds:
                os.close(fd)
        self.jobs[pid] = {"conn": conn, "request": request, "start": time.perf_counter()}
        try:
            conn.send(json.dumps({"pid": pid}).encode())
        except OSError:  # the client left before its reply: its job goes too (reaped as usual)
            _kill(pid, signal.SIGKILL)
        return True

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
            _unregister(self.sel, job["conn"])
            try:
                job["conn"].send(json.dumps({"exit": code}).encode())
            except OSError:
                pass
            job["conn"].close()
            try:
                self._record(pid, job, code, usage)
            except OSError as e:
                self.say(f"could not record job {pid}: {e!r}")

    def _client_gone(self, conn) -> None:
        """The waiting script process ended (killed by Snakemake): its job ends too."""
        try:
            data = conn.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if data:
            return
        _unregister(self.sel, conn)  # the connection is closed when the child is reaped
        for pid, job in self.jobs.items():
            if job["conn"] is conn:
                _kill(pid, signal.SIGKILL)

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

    def _child(self, conn, request: dict, fds: list[int], server: int) -> int:
        """In the forked child: become the job's process, then run its script from the top."""
        global _in_worker
        _in_worker = True
        _die_with(server)
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGCHLD, *SIGNALS):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.sel.close()
        for j in self.jobs.values():
            j["conn"].close()
        conn.close()
        srv, wake_r, wake_w = self.fds
        srv.close()
        os.close(wake_r)
        os.close(wake_w)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # the job's TMPDIR (Snakemake's tmpdir resource), not the server's
        sys.argv = list(request["argv"])
        script = request["script"]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        # the streams as a fresh Python opens them (the server is one, same locale)
        sys.stdin = open(0, encoding=sys.__stdin__.encoding, errors=sys.__stdin__.errors, closefd=False)
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding=sys.__stdout__.encoding,
                          errors=sys.__stdout__.errors, closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding=sys.__stderr__.encoding, errors=sys.__stderr__.errors,
                          closefd=False)
        _match_threads(request["env"])
        _reseed()
        return _run_script(script)


def _die_with(server: int) -> None:
    """The job dies with the server (no orphan writing outputs after Snakemake marked it failed)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != server:  # the server died between fork and prctl
        os._exit(1)


def descends_from(pid: int, ancestor: int) -> bool:
    """``pid`` is ``ancestor`` or one of its descendants (a job of that Snakemake run)."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent
    return False


def _unregister(sel, conn) -> None:
    try:
        sel.unregister(conn)
    except (KeyError, ValueError):
        pass


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 512):
                return
        except BlockingIOError:
            return


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


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


def _reseed() -> None:
    """Fresh random states, as a fresh process has (the server's would be shared by every job;
    anapart seeds explicitly what its results depend on)."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def _run_script(script: str) -> int:
    """Run the script as ``python script`` would, exit handling included (threads, atexit)."""
    import atexit
    import logging
    import runpy
    import threading

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
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = 128 + signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())  # the script's own hook (setup_logging: log + console)
        code = 1
    finally:
        threading._shutdown()  # what the interpreter does at exit: executors stopped, threads joined
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr, sys.__stderr__, sys.__stdout__):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
    return code


def server_env(**extra: str) -> dict:
    """The server's environment: one thread per library, so no thread pool exists before a fork."""
    return dict(os.environ, **{v: "1" for v in THREAD_VARS}, **extra)


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
            [sys.executable, "-P", "-m", "anapart.worker", path, str(os.getpid()), str(log_dir / "jobs.tsv"),
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
