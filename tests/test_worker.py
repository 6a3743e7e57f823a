"""The warm worker runs a job as the job's own process would: its streams, working directory,
environment, argv, thread count and exit status; signals reach it, a killed script process takes
its job with it, and without a reachable server the script simply runs in its own process."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anapart import worker
from conftest import popen_offline, run_offline

# A stand-in for a Snakemake glue script: the preamble sets __real_file__ and the snakemake object.
JOB = '''
__real_file__ = __file__
class snakemake:
    rule = "demo_rule"
    wildcards = {"net": "densenet121", "frac": "25"}
import sys
from anapart.worker import delegate
delegate()
import json, os, time
mode = sys.argv[1]
if mode == "report":
    torch = sys.modules.get("torch")
    print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "argv": sys.argv[1:],
                      "x": os.environ.get("X"), "stdin": sys.stdin.readline().strip(),
                      "torch_threads": torch.get_num_threads() if torch else None,
                      "preloaded": "torch" in sys.modules and "anapart.classify" not in sys.modules}))
    print("to stderr", file=sys.stderr)
    sys.exit(3)
if mode == "raise":
    raise ValueError("boom from the job")
if mode == "sleep":
    open(sys.argv[2], "w").write(str(os.getpid()))
    time.sleep(60)
'''


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server started the way ``worker.start`` starts it (one thread before the fork), preloading torch."""
    folder = tmp_path_factory.mktemp("worker")
    sock, stats = folder / "socket", folder / "jobs.tsv"
    env = dict(os.environ, **{v: "1" for v in worker.THREAD_VARS})
    with open(folder / "server.log", "w") as log:
        proc = popen_offline([sys.executable, "-m", "anapart.worker", str(sock), str(os.getpid()), str(stats),
                                 "json,torch"], env=env, stdout=log, stderr=log)
    assert wait_for(sock.exists), "server did not listen"
    yield {"proc": proc, "socket": sock, "stats": stats}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(JOB)
    return path


def client_env(server, **extra):
    return dict(os.environ, **{worker.ENV_VAR: str(server["socket"])}, **extra)


def test_job_runs_in_the_worker_as_its_own_process_would(server, job, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    proc = run_offline([sys.executable, str(job), "report", "extra"], input="from stdin\n", cwd=work,
                          env=client_env(server, X="value", OMP_NUM_THREADS="2"), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ppid"] == server["proc"].pid  # forked by the server
    assert out["preloaded"]  # torch came with the fork, anapart's own modules did not
    assert (out["cwd"], out["argv"], out["x"], out["stdin"]) == (str(work), ["report", "extra"], "value", "from stdin")
    assert out["torch_threads"] == 2  # the job's OMP_NUM_THREADS, not the server's 1
    assert "to stderr" in proc.stderr
    assert wait_for(lambda: server["stats"].exists() and str(out["pid"]) in server["stats"].read_text())
    rows = {r["pid"]: r for r in csv.DictReader(open(server["stats"]), delimiter="\t")}
    row = rows[str(out["pid"])]
    assert (row["job"], row["wildcards"], row["exit"]) == ("demo_rule", "net=densenet121,frac=25", "3")
    assert float(row["max_rss_mb"]) > 50 and float(row["wall_s"]) >= 0


def test_an_exception_fails_the_job_with_its_traceback(server, job):
    proc = run_offline([sys.executable, str(job), "raise"], env=client_env(server), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "ValueError: boom from the job" in proc.stderr and "Traceback" in proc.stderr


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_stopping_the_script_process_stops_its_job(server, job, tmp_path, how):
    """SIGTERM is forwarded (exit 128 + 15, as a shell reports it); SIGKILL, which cannot be
    forwarded, is seen by the server as a closed connection and the job is killed."""
    pidfile = tmp_path / "pid"
    client = popen_offline([sys.executable, str(job), "sleep", str(pidfile)], env=client_env(server))
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text())
    pid = int(pidfile.read_text())
    assert pid != client.pid and alive(pid)
    getattr(client, how)()
    code = client.wait(timeout=20)
    assert code == (128 + signal.SIGTERM if how == "terminate" else -signal.SIGKILL)
    assert wait_for(lambda: not alive(pid), timeout=10), "the job outlived its script process"


@pytest.mark.parametrize("case", ["no server", "slurm job", "no variable"])
def test_without_a_reachable_server_the_script_runs_in_its_own_process(server, job, tmp_path, case):
    env = {"no server": client_env(server) | {worker.ENV_VAR: str(tmp_path / "absent")},
           "slurm job": client_env(server, SLURM_JOB_ID="42"),
           "no variable": {k: v for k, v in os.environ.items() if k != worker.ENV_VAR}}[case]
    proc = popen_offline([sys.executable, str(job), "report"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate("x\n", timeout=120)
    assert proc.returncode == 3
    assert json.loads(out)["pid"] == proc.pid


def test_the_server_ends_with_the_snakemake_process_that_started_it(tmp_path):
    sock = tmp_path / "socket"
    launcher = run_offline(
        [sys.executable, "-c", "import sys, os, time; from subprocess import Popen; "  # inherits the offline env
         f"p = Popen([sys.executable, '-m', 'anapart.worker', {str(sock)!r}, str(os.getpid()), '', 'json']); "
         f"[time.sleep(0.05) for _ in range(400) if not os.path.exists({str(sock)!r})]; print(p.pid)"],
        capture_output=True, text=True, timeout=60)
    pid = int(launcher.stdout)
    assert wait_for(lambda: not alive(pid), timeout=10), "server outlived its parent"
    assert not sock.exists()


def test_start_and_stop_from_the_snakefile_hooks(tmp_path, monkeypatch, job):
    monkeypatch.setattr(worker, "gpu_present", lambda: False)
    monkeypatch.delenv(worker.ENV_VAR, raising=False)
    handle = worker.start(tmp_path / "logs", preload=("json",))
    try:
        sock = Path(os.environ[worker.ENV_VAR])
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"  # no other user can connect
        assert wait_for(sock.exists)
        proc = run_offline([sys.executable, str(job), "report"], input="\n", capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 3 and json.loads(proc.stdout)["ppid"] == handle.proc.pid
    finally:
        handle.stop()
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
