"""Atomic outputs (anapart.io.files): a killed writer leaves only a hidden temporary, and the next
run of the job removes it (start_job), touching nothing that belongs to another job."""

import signal
import sys
from types import SimpleNamespace

from anapart.io.files import atomic_path, stale_temporaries, start_job, sweep_temporaries
from support.common import popen_offline, wait_for

WRITER = """
import sys, time
from anapart.io.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as fh:
        fh.write(b"x" * 1_000_000)
        fh.flush()
        time.sleep(600)  # killed here, mid-write
"""


def test_a_writer_killed_mid_write_leaves_a_temporary_that_the_next_job_start_removes(tmp_path):
    out = tmp_path / "results" / "model.pt"
    proc = popen_offline([sys.executable, "-c", WRITER, str(out)])
    try:
        assert wait_for(lambda: any(p.stat().st_size for p in stale_temporaries(out)), timeout=120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    left = stale_temporaries(out)
    assert len(left) == 1 and left[0].name.startswith(".model.pt.") and not out.exists()
    neighbour = tmp_path / "results" / ".other.csv.0123abcd.tmp"  # another job's write in progress
    neighbour.write_text("busy")
    (tmp_path / "results" / ".model.pt.notahex.tmp").write_text("not ours")
    job = SimpleNamespace(log=[str(tmp_path / "logs" / "job.log")], output=[str(out)])
    start_job(job)
    assert stale_temporaries(out) == [] and neighbour.exists()
    assert (tmp_path / "results" / ".model.pt.notahex.tmp").exists()
    assert "removed" in (tmp_path / "logs" / "job.log").read_text()


def test_every_name_atomic_path_writes_is_found_by_the_sweep(tmp_path):
    for target in (tmp_path / "a.npy", tmp_path / "folder"):
        seen = []

        class Killed(Exception):
            pass

        try:
            with atomic_path(target) as tmp:
                tmp.mkdir() if target.name == "folder" else tmp.write_bytes(b"1")
                seen = stale_temporaries(target)
                assert seen == [tmp]
                raise Killed
        except Killed:
            pass
        assert seen and stale_temporaries(target) == []  # a clean failure removes it itself
    # a folder temporary left by a kill is removed whole
    left = tmp_path / ".folder.89abcdef.tmp"
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "f").write_text("x")
    assert sweep_temporaries([tmp_path / "folder"]) == [left] and not left.exists()
