"""One trainer per model after a kill -9 of Snakemake: the training job dies with it, in its own
process and in the warm worker alike, and the documented recovery (``--unlock``, the same command)
resumes the checkpoint alone. A real Snakemake run of a one-rule workflow whose job trains through
:func:`anapart.learn.training.fit` (a toy model, slowed so that it is killed mid-training)."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from support.common import popen_offline, run_offline, wait_for

SNAKEFILE = '''
import os, time
from anapart.runtime import worker as _worker
H = []
onstart:
    if config.get("worker"):
        H.append(_worker.start("logs/worker", preload=("json", "numpy", "torch")))
        for _ in range(600):  # the job must find it listening (else it runs in its own process)
            if os.path.exists(os.environ[_worker.ENV_VAR]):
                break
            time.sleep(0.1)
onsuccess:
    [h.stop() for h in H]
rule train:
    output: "model.txt"
    log: "train.log"
    params: checkpoint="checkpoint.partial.pt"
    script: "train.py"
'''

TRAIN = '''
from anapart.runtime.worker import delegate
delegate()
import os, time
import torch
from anapart.io.files import start_job
from anapart.learn.training import FitConfig, fit
log = start_job(snakemake, snakemake.params.checkpoint)
with open("pids", "a") as fh:
    fh.write(f"{os.getpid()}\\n")
x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
y = x.sum(1, keepdim=True)
def fetch(idx):
    time.sleep(float(os.environ.get("BATCH_S", "0")))
    return x[idx], y[idx]
model = torch.nn.Linear(4, 1)
fit(model, torch.optim.SGD(model.parameters(), lr=0.05), torch.nn.functional.mse_loss, fetch, 16,
    FitConfig(epochs=6, batch_size=8, device="cpu", channels_last=False), snakemake.params.checkpoint)
open(snakemake.output[0], "w").write("done\\n")
'''


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.workflow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("worker", [False, True], ids=["own_process", "warm_worker"])
def test_a_kill_9_of_snakemake_leaves_no_trainer_and_the_rerun_resumes_alone(tmp_path, worker):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "train.py").write_text(TRAIN)
    smk = [str(Path(sys.executable).with_name("snakemake")), "-c1", "model.txt", "--config", f"worker={int(worker)}"]
    proc = popen_offline(smk, cwd=tmp_path, env={"BATCH_S": "1"}, stdout=subprocess_devnull(),
                         stderr=subprocess_devnull())
    ckpt, pids = tmp_path / "checkpoint.partial.pt", tmp_path / "pids"
    try:
        assert wait_for(ckpt.exists, timeout=120), "no checkpoint written"  # killed after epoch 1, mid-training
        trainer = int(pids.read_text().split()[0])
        assert alive(trainer) and (trainer != proc.pid)
        if worker:
            assert os.getppid() != trainer and "anapart.runtime.server" in Path(
                f"/proc/{_ppid(trainer)}/cmdline").read_text()  # forked by the warm worker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
        assert wait_for(lambda: not alive(trainer), timeout=10), "the trainer outlived Snakemake"
    finally:
        for pid in (pids.read_text().split() if pids.exists() else []):
            if alive(int(pid)):
                os.kill(int(pid), signal.SIGKILL)
    assert not (tmp_path / "model.txt").exists() and ckpt.exists()
    run_offline([*smk, "--unlock"], cwd=tmp_path, capture_output=True, timeout=120)
    rerun = run_offline(smk, cwd=tmp_path, env={"BATCH_S": "0"}, capture_output=True, text=True,
                        timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    text = (tmp_path / "train.log").read_text()
    assert "resuming from checkpoint.partial.pt after epoch" in text and "another process" not in text
    assert (tmp_path / "model.txt").read_text() == "done\n" and not ckpt.exists()


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def subprocess_devnull():
    import subprocess

    return subprocess.DEVNULL
