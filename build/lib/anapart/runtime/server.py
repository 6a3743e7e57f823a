"""The warm worker's server: accepts jobs on a Unix socket and forks one child per job from a process
that has already imported the libraries (:data:`anapart.runtime.worker.PRELOAD`).

The client side (``delegate()``, ``start()``) is :mod:`anapart.runtime.worker`; this module holds
what runs only in the server and its forked children. Standard library only, like the client.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from anapart.runtime.worker import (ACCEPT_TIMEOUT_S, MAX_MESSAGE, POLL_S, PR_SET_PDEATHSIG, PRELOAD, SIGNALS,
                                    STATS_COLUMNS, enter_job, exit_code, interpreter)


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
        enter_job()
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


def main(argv: list[str]) -> None:
    """``python -m anapart.runtime.server SOCKET PARENT_PID STATS_TSV [MODULE,MODULE...]`` (default PRELOAD)."""
    path, parent, stats = argv[:3]
    server = Server(path, int(parent), stats or None)
    server.preload(argv[3].split(",") if len(argv) > 3 else PRELOAD)
    server.run()


if __name__ == "__main__":
    # Through the package, not as __main__: the job scripts import anapart.runtime.server's names
    # from the package, and two copies of this module would hold two servers' state.
    from anapart.runtime import server

    server.main(sys.argv[1:])
