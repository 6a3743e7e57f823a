"""The throw-away SLURM fixture leaves other test clusters alone: a marked config whose daemons still
run is another test run's (nothing signalled, nothing removed); one whose daemons are gone is
reclaimed; stop() removes only files whose content is still what it wrote. No SLURM needed: the
daemons are stand-ins (``sleep`` copied under a daemon's name) and the config folder is a tmp one."""

import shutil
from pathlib import Path

import pytest

from support import slurm_cluster
from support.common import popen_offline, wait_for
from support.slurm_cluster import MARKER, SingleNodeSlurm, SlurmInUse


def _stale_config(conf: Path, root: Path, pids: dict) -> None:
    """A marked config as a test run writes it, with PID files naming ``pids`` (daemon -> pid)."""
    (root / "munge").mkdir(parents=True, exist_ok=True)
    files = {"slurmctld": root / "slurmctld.pid", "slurmd": root / "slurmd.pid", "munged": root / "munge" / "munged.pid"}
    for name, pid in pids.items():
        files[name].write_text(f"{pid}\n")
    conf.write_text(f"{MARKER}\nStateSaveLocation={root}/state\nSlurmctldPidFile={files['slurmctld']}\n"
                    f"SlurmdPidFile={files['slurmd']}\n")
    (conf.parent / "gres.conf").write_text("NodeName=vm Name=gpu Count=1 File=/dev/null\n")


def _daemon(tmp_path: Path, name: str):
    exe = tmp_path / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    shutil.copy(shutil.which("sleep"), exe)
    proc = popen_offline([str(exe), "60"])
    comm = Path(f"/proc/{proc.pid}/comm")
    assert wait_for(lambda: comm.read_text().strip() == name), "the stand-in daemon did not start"
    return proc


def _cluster(tmp_path: Path) -> SingleNodeSlurm:
    c = SingleNodeSlurm(tmp_path / "mine")
    c.conf = tmp_path / "etc" / "slurm.conf"
    c.conf.parent.mkdir(parents=True, exist_ok=True)
    return c


@pytest.mark.parametrize("name", ["slurmctld", "slurmd", "munged"])
def test_a_live_clusters_config_is_neither_signalled_nor_removed(tmp_path, name):
    c = _cluster(tmp_path)
    other = _daemon(tmp_path, name)
    try:
        _stale_config(c.conf, tmp_path / "other", {name: other.pid})
        before = c.conf.read_text()
        with pytest.raises(SlurmInUse, match=f"another live test cluster \\({name} PID {other.pid}\\)"):
            c._reclaim_stale()
        assert other.poll() is None  # still running: not signalled
        assert c.conf.read_text() == before and (c.conf.parent / "gres.conf").exists()
    finally:
        other.kill()
        other.wait()


def test_a_dead_clusters_config_is_reclaimed_even_with_its_pids_reused(tmp_path):
    """Dead daemons, and a PID file naming a live process that is no daemon (a reused PID)."""
    c = _cluster(tmp_path)
    dead = popen_offline(["true"])
    dead.wait()
    unrelated = popen_offline(["sleep", "60"])
    try:
        _stale_config(c.conf, tmp_path / "other", {"slurmctld": dead.pid, "slurmd": unrelated.pid})
        c._reclaim_stale()
        assert not c.conf.exists() and not (c.conf.parent / "gres.conf").exists()
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


def test_stop_removes_only_what_it_wrote(tmp_path):
    c = _cluster(tmp_path)
    c._wrote = [c.conf, c.conf.parent / "gres.conf"]
    c._write(c.conf, f"{MARKER}\nmine\n")
    c._write(c.conf.parent / "gres.conf", "NodeName=vm" + slurm_cluster.GRES_LINE)
    c.conf.write_text(f"{MARKER}\nanother run's, written since\n")
    c.stop()
    assert c.conf.read_text().endswith("written since\n")  # another run's file stays
    assert not (c.conf.parent / "gres.conf").exists()  # ours goes
