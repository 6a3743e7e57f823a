"""A throw-away single-node SLURM (munge + slurmctld + slurmd) for the SLURM tests.

Everything it needs lives under one folder: its own munge key and socket, slurm.conf with a
count-only ``gpu`` GRES (so GPU requests are schedulable on a machine without a GPU), state,
spool and logs; accounting is off. The daemons run in the foreground as child processes and
are stopped by PID, so nothing of the machine's own SLURM/munge setup is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# throw-away test cluster written by anapart tests/slurm_cluster.py"


GRES_LINE = " Name=gpu Count=1 File=/dev/null\n"


def _alive_as(pid: int, names) -> str | None:
    """The daemon name ``pid`` runs as, if it is alive and one of ``names`` (not a reused PID)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return comm if comm in names and state != "Z" else None


def live_daemons(conf_text: str) -> list[tuple[str, int]]:
    """The daemons of a test cluster's config (its PID files, munged's beside its state) still running."""
    pidfiles = []
    for line in conf_text.splitlines():
        key, _, value = line.partition("=")
        if key in ("SlurmctldPidFile", "SlurmdPidFile"):
            pidfiles.append(Path(value))
        elif key == "StateSaveLocation":
            pidfiles.append(Path(value).parent / "munge" / "munged.pid")
    live = []
    for f in pidfiles:
        try:
            pid = int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        name = _alive_as(pid, DAEMONS)
        if name:
            live.append((name, pid))
    return live


class SlurmInUse(RuntimeError):
    """This machine already has a SLURM configuration; we never overwrite it."""


def installed() -> bool:
    return all(shutil.which(d) for d in DAEMONS) and bool(shutil.which("sbatch"))


def install() -> None:
    """Debian's packages, as the README says (root only)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"], check=True, env=env
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_facts() -> tuple[str, int, int]:
    """Hostname, CPUs and memory (MB) as slurmd sees them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
    facts = dict(
        kv.split("=", 1) for kv in out.stdout.split() if "=" in kv
    )  # NodeName=vm CPUs=2 ... RealMemory=24105
    return facts["NodeName"], int(facts["CPUs"]), int(facts["RealMemory"])


class SingleNodeSlurm:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.gpus = 1
        self.procs: dict[str, subprocess.Popen] = {}
        # Job steps inside a batch job drop SLURM_CONF (the Snakemake jobstep executor strips
        # SLURM_* variables before `srun`), so the config must be where every client looks.
        self.conf = SYSTEM_CONF
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._wrote: list[Path] = []
        self._contents: dict[Path, str] = {}  # what we wrote to each file: only that is removed

    # -- configuration -------------------------------------------------------------------
    def write_config(self) -> None:
        host, cpus, mem = _node_facts()
        self.host = host
        self._reclaim_stale()
        if self.conf.exists() or (self.conf.parent / "gres.conf").exists():
            raise SlurmInUse(f"{self.conf} exists: not replacing this machine's SLURM configuration")
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        for d in ("state", "spool", "log", "munge"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        self.munge_socket = self.root / "munge" / "munge.socket"
        r = self.root
        # Leave some memory to the OS; jobs ask for mem_mb below this.
        real_mem = max(1024, mem - 2048)
        self._wrote = [self.conf, self.conf.parent / "gres.conf"]
        self._write(
            self.conf,
            f"""{MARKER}
ClusterName=anapart-ci
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MpiDefault=none
ReturnToService=2
MinJobAge=86400
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
NodeName={host} CPUs={cpus} RealMemory={real_mem} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName=ci Nodes={host} Default=YES MaxTime=INFINITE State=UP
""",
        )
        # A GPU that is only counted: Slurm 22.05's gpu plugin drops file-less GPUs ("Removing
        # file-less GPU"), so it points at /dev/null; with task/none nothing is constrained, and
        # a machine without a GPU can schedule GPU jobs.
        self._write(self.conf.parent / "gres.conf", f"NodeName={host}{GRES_LINE}")
        self.real_mem = real_mem
        self.cpus = cpus

    def _reclaim_stale(self) -> None:
        """A config of ours left by a killed test run is removed, but only when every daemon its PID
        files name is gone: a live one belongs to another test run on this machine, which is left
        alone (SlurmInUse). Nothing is signalled; only the two files that run wrote are removed."""
        if not self.conf.exists() or not self.conf.read_text().startswith(MARKER):
            return
        live = live_daemons(self.conf.read_text())
        if live:
            raise SlurmInUse(
                f"{self.conf} belongs to another live test cluster ("
                + ", ".join(f"{name} PID {pid}" for name, pid in live)
                + "): not touching it; wait for that test run to end"
            )
        self.conf.unlink()
        gres = self.conf.parent / "gres.conf"
        if gres.exists() and gres.read_text().endswith(GRES_LINE):
            gres.unlink()

    # -- daemons -------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
        )

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        r = self.root
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={r}/munge/munge.key",
                f"--log-file={r}/log/munged.log",
                f"--pid-file={r}/munge/munged.pid",
                f"--seed-file={r}/munge/munged.seed",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait(self._ctld_up, timeout, "slurmctld")
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "node idle")

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {p.returncode}:\n{self.logs()}"
                )

    def _wait(self, ok, timeout: float, what: str) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self._check_alive()
            if ok():
                return
            time.sleep(0.5)
        raise TimeoutError(f"SLURM: {what} not ready after {timeout}s:\n{self.logs()}")

    def run(self, *argv: str, check: bool = True) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, env=self.env)
        if check and out.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr}")
        return out.stdout

    def _ctld_up(self) -> bool:
        return not subprocess.run(
            ["scontrol", "ping"], capture_output=True, env=self.env
        ).returncode

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip()
        return out.startswith("idle")

    def logs(self) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace")[-1500:]
            parts.append(f"--- {f.name}\n{text}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop what we started, by PID, newest first."""
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        for f in self._wrote:
            try:
                if f.read_text() == self._contents.get(f):  # still ours, not another run's since
                    f.unlink()
            except FileNotFoundError:
                pass
        self._wrote = []

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._contents[path] = text
