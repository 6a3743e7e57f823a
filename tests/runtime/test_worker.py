"""The warm worker runs a job as the job's own process would: its streams, working directory,
environment, argv, sys.path, TMPDIR, thread count, random state, exit handling and exit status;
signals reach it, a killed script process or server takes its job with it, one client's trouble
costs no other job, and without a usable server the script simply runs in its own process."""

import csv
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anapart.runtime import server as worker_server
from anapart.runtime import worker
from support.common import REPO, popen_offline, run_offline, wait_for

# A stand-in for a Snakemake glue script: the preamble sets __real_file__ and the snakemake object.
JOB = '''
__real_file__ = __file__
class snakemake:
    rule = "demo_rule"
    wildcards = {"net": "densenet121", "frac": "25"}
import sys
from anapart.runtime.worker import delegate
delegate()
import atexit, json, os, random, tempfile, threading, time
mode = sys.argv[1]
if mode == "report":
    torch = sys.modules.get("torch")
    print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "argv": sys.argv[1:],
                      "x": os.environ.get("X"), "server_only": os.environ.get("SERVER_ONLY"),
                      "stdin": sys.stdin.readline().strip(), "path0": sys.path[0],
                      "tmp": tempfile.gettempdir(), "random": random.random(),
                      "numpy_random": float(sys.modules["numpy"].random.random()) if "numpy" in sys.modules else None,
                      "torch_random": float(torch.rand(1)) if torch else None,
                      "torch_threads": torch.get_num_threads() if torch else None,
                      "preloaded": "torch" in sys.modules and "anapart.partition.classify" not in sys.modules}))
    print("to stderr", file=sys.stderr)
    sys.exit(3)
if mode == "raise":
    raise ValueError("boom from the job")
if mode == "sleep":
    open(sys.argv[2], "w").write(str(os.getpid()))
    time.sleep(60)
if mode == "executor":  # left running: the interpreter stops its workers at exit
    from concurrent.futures import ThreadPoolExecutor
    sys.test_pool = ThreadPoolExecutor(2)  # still referenced when the script ends
    sys.test_pool.submit(time.sleep, 0.1)
if mode == "undecodable":  # a Latin-1 folder name as os.listdir gives it under a UTF-8 locale
    name = os.fsdecode(b"patient_M\\xfcller")
    print(name)
    print(name, file=sys.stderr)
if mode == "exit_handling":  # what a fresh interpreter does at exit
    out = sys.argv[2]
    atexit.register(lambda: open(out + ".atexit", "w").write("ran"))
    threading.Thread(target=lambda: (time.sleep(0.5), open(out + ".thread", "w").write("done"))).start()
'''




def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) has finished too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def start_server(folder: Path, preload: str = "json", stats: Path | None = None):
    """A server started the way ``worker.start`` starts it (one thread before the fork), plus a
    variable only it has."""
    sock, stats = folder / "socket", stats or folder / "jobs.tsv"
    env = worker.server_env(SERVER_ONLY="leaked")
    with open(folder / "server.log", "w") as log:
        proc = popen_offline([sys.executable, "-P", "-m", "anapart.runtime.server", str(sock), str(os.getpid()), str(stats),
                              preload], env=env, stdout=log, stderr=log)
    assert wait_for(sock.exists, timeout=120), "server did not listen"
    return {"proc": proc, "socket": sock, "stats": stats}


def stop_server(server) -> None:
    server["proc"].terminate()
    server["proc"].wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # timm caches tempfile's folder at import: the job must still get its own TMPDIR
    s = start_server(tmp_path_factory.mktemp("worker"), preload="json,numpy,torch,timm")
    yield s
    stop_server(s)


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(JOB)
    return path


def client_env(server, **extra):
    return dict(os.environ, **{worker.ENV_VAR: str(server["socket"])}, **extra)


def report(job, env, cwd=None):
    proc = run_offline([sys.executable, str(job), "report", "extra"], input="from stdin\n", cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    return json.loads(proc.stdout), proc


def test_job_runs_in_the_worker_as_its_own_process_would(server, job, tmp_path):
    work, tmp = tmp_path / "cwd", tmp_path / "tmpdir"
    work.mkdir()
    tmp.mkdir()
    out, proc = report(job, client_env(server, X="value", OMP_NUM_THREADS="2", TMPDIR=str(tmp)), cwd=work)
    assert out["ppid"] == server["proc"].pid  # forked by the server
    assert out["preloaded"]  # torch came with the fork, anapart's own modules did not
    assert (out["cwd"], out["argv"], out["x"], out["stdin"]) == (str(work), ["report", "extra"], "value", "from stdin")
    assert out["server_only"] is None  # the job's environment, not the server's
    assert out["path0"] == str(job.parent)  # as `python job.py` puts it
    assert out["tmp"] == str(tmp)  # Snakemake's tmpdir resource reaches the job
    assert out["torch_threads"] == 2  # the job's OMP_NUM_THREADS, not the server's 1
    assert "to stderr" in proc.stderr
    assert wait_for(lambda: server["stats"].exists() and str(out["pid"]) in server["stats"].read_text())
    rows = {r["pid"]: r for r in csv.DictReader(open(server["stats"]), delimiter="\t")}
    row = rows[str(out["pid"])]
    assert (row["job"], row["wildcards"], row["exit"]) == ("demo_rule", "net=densenet121,frac=25", "3")
    assert float(row["max_rss_mb"]) > 50 and float(row["wall_s"]) >= 0


def test_each_job_gets_its_own_random_state(server, job):
    """The server's states would be every job's (Python, numpy and torch, as a fresh process)."""
    a, _ = report(job, client_env(server))
    b, _ = report(job, client_env(server))
    assert a["ppid"] == b["ppid"] == server["proc"].pid
    assert a["random"] != b["random"] and a["torch_random"] != b["torch_random"]
    assert a["numpy_random"] != b["numpy_random"]


def test_an_exception_fails_the_job_with_its_traceback(server, job):
    proc = run_offline([sys.executable, str(job), "raise"], env=client_env(server), capture_output=True,
                       text=True, timeout=60)
    assert proc.returncode == 1
    assert "ValueError: boom from the job" in proc.stderr and "Traceback" in proc.stderr


def test_exit_waits_for_threads_and_runs_atexit(server, job, tmp_path):
    out = tmp_path / "out"
    proc = run_offline([sys.executable, str(job), "exit_handling", str(out)], env=client_env(server), timeout=60)
    assert proc.returncode == 0
    assert Path(f"{out}.thread").read_text() == "done" and Path(f"{out}.atexit").read_text() == "ran"


def test_an_executor_left_running_does_not_hang_the_job(server, job):
    proc = run_offline([sys.executable, str(job), "executor"], env=client_env(server), timeout=60)
    assert proc.returncode == 0


def test_undecodable_names_print_as_in_a_fresh_process(server, job):
    runs = [run_offline([sys.executable, str(job), "undecodable"], env=env, capture_output=True, timeout=120)
            for env in (client_env(server), {k: v for k, v in os.environ.items() if k != worker.ENV_VAR})]
    assert [(r.returncode, r.stdout, r.stderr) for r in runs][0] == [(r.returncode, r.stdout, r.stderr)
                                                                    for r in runs][1]
    assert runs[0].returncode == 0 and runs[0].stdout.startswith(b"patient_M")


def sleeping_job(server, job, tmp_path):
    pidfile = tmp_path / "pid"
    client = popen_offline([sys.executable, str(job), "sleep", str(pidfile)], env=client_env(server),
                           stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text())
    pid = int(pidfile.read_text())
    assert pid != client.pid and alive(pid)
    return client, pid


@pytest.mark.parametrize("how", ["terminate", "kill", "interrupt"])
def test_stopping_the_script_process_stops_its_job(server, job, tmp_path, how):
    """SIGTERM and SIGINT (Ctrl-C) are forwarded, exit as a shell reports them; SIGKILL, which
    cannot be forwarded, is seen by the server as a closed connection and the job is killed."""
    client, pid = sleeping_job(server, job, tmp_path)
    {"terminate": client.terminate, "kill": client.kill, "interrupt": lambda: client.send_signal(signal.SIGINT)}[how]()
    code = client.wait(timeout=20)
    assert code == {"terminate": 128 + signal.SIGTERM, "kill": -signal.SIGKILL, "interrupt": 128 + signal.SIGINT}[how]
    if how == "interrupt":
        assert "KeyboardInterrupt" in client.stderr.read()
    assert wait_for(lambda: not alive(pid), timeout=10), "the job outlived its script process"


@pytest.mark.parametrize("client_too", [False, True])
def test_a_job_dies_with_the_server(job, tmp_path, client_too):
    """No orphan writing outputs after Snakemake marked its job failed: the job is killed with its
    server (parent-death signal) even when its script process is gone too."""
    own = start_server(tmp_path)
    client, pid = sleeping_job(own, job, tmp_path)
    if client_too:
        client.kill()
    own["proc"].kill()
    if not client_too:
        assert client.wait(timeout=20) == 1
        assert "lost the job process" in client.stderr.read()
    assert wait_for(lambda: not alive(pid), timeout=10), "the job outlived the server"
    client.wait(timeout=20)


def test_a_bad_or_vanished_client_costs_no_other_job(server, job, tmp_path):
    client, pid = sleeping_job(server, job, tmp_path)
    for _ in range(3):  # request, then leave at once: the reply with the pid finds nobody
        request = {"script": str(job), "argv": [str(job), "sleep", str(tmp_path / "x")], "cwd": str(tmp_path),
                   "env": dict(os.environ), "interpreter": worker.interpreter()}
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(str(server["socket"]))
        socket.send_fds(s, [json.dumps(request).encode()], [0, 1, 2])
        s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # and a request that is not JSON
    s.connect(str(server["socket"]))
    socket.send_fds(s, [b"{not json"], [0, 1, 2])
    assert s.recv(100) == b""  # refused: the client would run its script itself
    s.close()
    time.sleep(1)
    assert server["proc"].poll() is None and alive(pid)
    report(job, client_env(server))  # and the server still serves
    client.terminate()
    client.wait(timeout=20)


def test_a_failed_fork_refuses_the_client(monkeypatch, tmp_path):
    """The client then runs its script itself; the server keeps nothing of it."""
    server = worker_server.Server(str(tmp_path / "socket"), os.getpid())
    server.sel = selectors.DefaultSelector()
    client, conn = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    request = {"script": "job.py", "argv": [], "cwd": str(tmp_path), "env": {}, "interpreter": worker.interpreter()}
    socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(worker.os, "fork", no_fork)
    with pytest.raises(BlockingIOError):  # logged by the server's loop, which goes on
        server.serve(conn)
    assert client.recv(100) == b""  # closed: the client runs its script itself
    assert not server.jobs and not server.sel.get_map()


def test_a_stats_file_that_cannot_be_written_costs_no_job(job, tmp_path):
    stats = tmp_path / "stats_is_a_folder"
    stats.mkdir()
    own = start_server(tmp_path, stats=stats)
    try:
        for _ in range(2):
            out, _ = report(job, client_env(own))
            assert out["ppid"] == own["proc"].pid
        assert wait_for(lambda: "could not record job" in (tmp_path / "server.log").read_text())
    finally:
        stop_server(own)


def test_a_process_outside_the_run_is_not_served(server, job, tmp_path):
    """Only jobs of the Snakemake run that started the server (its descendants): never a process
    that inherited the socket's path some other way (e.g. an enclosing run with --no-hooks)."""
    out = tmp_path / "out.json"
    run_offline(["bash", "-c", f"(sleep 1; exec {sys.executable} {job} report < /dev/null > {out}) &"],
                env=client_env(server), timeout=60)  # orphaned at once: no longer our descendant
    assert wait_for(lambda: out.exists() and out.read_text().strip(), timeout=60)
    assert json.loads(out.read_text())["ppid"] != server["proc"].pid


@pytest.mark.parametrize("case", ["no server", "no variable", "another interpreter"])
def test_without_a_usable_server_the_script_runs_in_its_own_process(server, job, tmp_path, case):
    python = sys.executable
    env = client_env(server)
    if case == "no server":
        env[worker.ENV_VAR] = str(tmp_path / "absent")
    elif case == "no variable":
        env.pop(worker.ENV_VAR)
    else:  # a conda env or container: a Python with another prefix, never served by ours
        run_offline([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
        python = str(tmp_path / "venv/bin/python")
        env["PYTHONPATH"] = str(REPO / "src")
    proc = popen_offline([python, str(job), "report"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    out, _ = proc.communicate("x\n", timeout=120)
    assert proc.returncode == 3
    assert json.loads(out)["pid"] == proc.pid


def test_a_worker_that_died_is_named_as_a_warning_and_the_job_still_runs(job, tmp_path):
    """A killed server leaves its socket: the next job says so on stderr (the run would otherwise
    finish several times slower with no word why) and runs in its own process; a server that is not
    listening yet is no warning."""
    dead = start_server(tmp_path)
    dead["proc"].kill()
    dead["proc"].wait(timeout=20)
    assert dead["socket"].exists()
    env = client_env(dead)
    out, proc = report(job, env)
    assert out["argv"] == ["report", "extra"] and "the warm worker" in proc.stderr  # it ran, here
    assert "is gone; this job runs in its own process" in proc.stderr
    env[worker.ENV_VAR] = str(tmp_path / "not-yet")
    _, quiet = report(job, env)
    assert "warm worker" not in quiet.stderr


def test_the_server_ends_with_the_snakemake_process_that_started_it(tmp_path):
    sock = tmp_path / "socket"
    launcher = run_offline(
        [sys.executable, "-c", "import sys, os, time; from subprocess import Popen; "  # inherits the offline env
         f"p = Popen([sys.executable, '-m', 'anapart.runtime.server', {str(sock)!r}, str(os.getpid()), '', 'json']); "
         f"[time.sleep(0.05) for _ in range(400) if not os.path.exists({str(sock)!r})]; print(p.pid)"],
        capture_output=True, text=True, timeout=60)
    pid = int(launcher.stdout)
    try:
        assert wait_for(lambda: not alive(pid), timeout=10), "server outlived its parent"
        assert not sock.exists()
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_start_and_stop_from_the_snakefile_hooks(tmp_path, monkeypatch, job):
    monkeypatch.setattr(worker, "gpu_present", lambda: False)
    monkeypatch.delenv(worker.ENV_VAR, raising=False)
    handle = worker.start(tmp_path / "logs", preload=("json",))
    try:
        sock = Path(os.environ[worker.ENV_VAR])
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"  # no other user can connect
        assert wait_for(sock.exists, timeout=120)
        out, _ = report(job, dict(os.environ))
        assert out["ppid"] == handle.proc.pid
        # stopping the server (onsuccess/onerror) ends a job still running
        client, pid = sleeping_job({"socket": sock}, job, tmp_path)
    finally:
        handle.stop()
    assert client.wait(timeout=20) != 0
    assert wait_for(lambda: not alive(pid), timeout=10)
    assert handle.proc.returncode is not None and not sock.parent.exists()
    assert worker.ENV_VAR not in os.environ
    assert "preloaded 1 modules" in (tmp_path / "logs/server.log").read_text()
    assert (tmp_path / "logs/jobs.tsv").exists()


def test_no_worker_where_cuda_may_be_used(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "gpu_present", lambda: True)
    assert worker.start(tmp_path / "logs") is None
    assert worker.ENV_VAR not in os.environ


def test_exit_codes_read_as_a_shell_reports_them():
    assert worker.exit_code(3 << 8) == 3
    assert worker.exit_code(signal.SIGKILL) == 128 + signal.SIGKILL
