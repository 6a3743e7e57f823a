"""Faults of the training loop a cluster produces: a damaged checkpoint, a full disk, two trainers of
one model, a last batch of one sample."""

import errno
import logging
import multiprocessing
import os
import re

import numpy as np
import pytest
import torch

from anapart.learn import checkpoint, training
from anapart.learn.training import CheckpointWriteError, FitConfig, TrainerBusy, epoch_batches, fit


class _Killed(RuntimeError):
    pass


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, :1] * 2 - x[:, 1:2]).clone()


def _fit(ckpt, kill_at=None, epochs=3, n=40, batch_size=8, model=None):
    """A small deterministic fit; ``kill_at``: the fetch of that batch raises (a killed job)."""
    x, y = _data(n)
    torch.manual_seed(0)
    model = model or torch.nn.Linear(6, 1)
    fetched = []

    def fetch(idx):
        if kill_at is not None and len(fetched) + 1 == kill_at:
            raise _Killed
        fetched.append(np.asarray(idx).tolist())
        return x[idx], y[idx]

    hist = fit(model, torch.optim.SGD(model.parameters(), lr=0.02), torch.nn.functional.mse_loss, fetch, n,
               FitConfig(epochs=epochs, batch_size=batch_size, seed=3, device="cpu", channels_last=False), ckpt)
    return model, hist, fetched


# --------------------------------------------------------------------------- damaged checkpoints

@pytest.mark.parametrize("content, words", [
    (b"", "it cannot be read (EOFError"),  # a 0-byte file: torch's "Ran out of input"
    ("half", "it cannot be read"),  # a checkpoint cut in half
    ([1, 2, 3], "it has the wrong structure (a list, not a dict)"),  # torch's AttributeError: 'list' object has no 'get'
    ({"signature": "x", "epoch": "two"}, "it has the wrong structure ('epoch' is str"),
])
def test_a_damaged_checkpoint_is_discarded_with_a_warning_and_training_completes(tmp_path, caplog, content, words):
    ckpt = tmp_path / "checkpoint.partial.pt"
    clean, clean_hist, _ = _fit(tmp_path / "clean.pt")
    if content == "half":
        with pytest.raises(_Killed):
            _fit(ckpt, kill_at=5 * 2 + 1)
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[:len(data) // 2])
    elif isinstance(content, bytes):
        ckpt.write_bytes(content)
    else:
        torch.save(content, ckpt)
    caplog.set_level(logging.INFO, logger="anapart.training")
    model, hist, fetched = _fit(ckpt)
    assert f"discarding checkpoint {ckpt}: {words}" in caplog.text, caplog.text
    assert "training starts over" in caplog.text and "resuming" not in caplog.text
    assert len(fetched) == 3 * 5 and hist == clean_hist  # started over: the clean run's curve and weights
    assert torch.equal(model.weight, clean.weight)
    assert not ckpt.exists() and not ckpt.with_name(ckpt.name + ".lock").exists()


# --------------------------------------------------------------------------- a full disk

def test_a_checkpoint_write_on_a_full_disk_says_so_and_keeps_the_previous_one(tmp_path, monkeypatch):
    ckpt = tmp_path / "c.pt"
    with pytest.raises(_Killed):
        _fit(ckpt, kill_at=5 * 1 + 1)  # epoch 1 saved
    before = ckpt.read_bytes()
    calls = []

    def full(path, data):
        calls.append(path)
        with open(path, "wb") as fh:
            fh.write(data[:len(data) // 3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "write_bytes", full)
    with pytest.raises(CheckpointWriteError, match=f"{ckpt}: checkpoint not written: no space left on device") as e:
        _fit(ckpt)
    assert e.value.errno == errno.ENOSPC and "free space and rerun" in str(e.value) and calls
    assert ckpt.read_bytes() == before  # the previous checkpoint, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    _, _, fetched = _fit(ckpt)  # and the rerun resumes from it
    assert len(fetched) == 2 * 5


def test_another_write_error_says_the_disk_is_not_full(tmp_path, monkeypatch):
    def denied(path, data):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(checkpoint, "write_bytes", denied)
    with pytest.raises(CheckpointWriteError, match="Permission denied; the disk is not full"):
        _fit(tmp_path / "c.pt", epochs=1)


# --------------------------------------------------------------------------- one trainer per model

def _hold_lock(ckpt, ready, release):
    fh = training.lock_checkpoint(ckpt)
    ready.set()
    release.wait(30)
    fh.close()


def test_a_second_trainer_on_a_locked_checkpoint_stops_at_once_naming_the_other(tmp_path):
    ckpt = tmp_path / "checkpoint.partial.pt"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_lock, args=(ckpt, ready, release))
    other.start()
    try:
        assert ready.wait(20)
        fetched = []
        with pytest.raises(TrainerBusy, match=f"another process \\(PID {other.pid}\\) is training this model"):
            fit(torch.nn.Linear(6, 1), torch.optim.SGD(torch.nn.Linear(6, 1).parameters(), lr=0.1),
                torch.nn.functional.mse_loss, lambda idx: fetched.append(idx) or _data()[0][idx], 40,
                FitConfig(epochs=1, batch_size=8, device="cpu"), ckpt)
        assert fetched == [] and not ckpt.exists()  # stopped before reading or writing anything
    finally:
        release.set()
        other.join(20)
    _, _, fetched = _fit(ckpt, epochs=1)  # once the other has ended, the lock is free
    assert len(fetched) == 5


def test_the_lock_of_a_killed_trainer_is_free(tmp_path):
    """A trainer killed (SIGKILL) holds no lock: the kernel releases it with the process."""
    ckpt = tmp_path / "c.pt"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_lock, args=(ckpt, ready, release))
    other.start()
    assert ready.wait(20)
    other.kill()
    other.join(20)
    assert ckpt.with_name("c.pt.lock").exists()  # left behind, and harmless
    training.release_checkpoint_lock(training.lock_checkpoint(ckpt))


# --------------------------------------------------------------------------- no batch of one

@pytest.mark.parametrize("n, b", [(2 * 4 + 1, 4), (3 * 13 + 1, 13), (9, 8), (8, 4), (7, 4), (1, 4)])
def test_epoch_batches_cover_every_sample_once_with_no_single_sample_batch(n, b):
    batches = epoch_batches(n, b)
    covered = [i for start, stop in batches for i in range(start, stop)]
    assert covered == list(range(n))
    assert all(stop - start >= 2 for start, stop in batches) or n == 1
    assert all(stop - start <= b + 1 for start, stop in batches)
    assert len(batches) == (n // b if n % b == 1 and n > 1 else -(-n // b))


def test_batchnorm_trains_on_k_batches_plus_one_sample(tmp_path):
    """densenet121 with 53 slices and batch 13 stopped with 'Expected more than 1 value per channel'."""
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    _, hist, fetched = _fit(tmp_path / "c.pt", n=4 * 13 + 1, batch_size=13, epochs=2, model=model)
    assert len(hist) == 2 and all(np.isfinite(hist))
    assert [len(f) for f in fetched] == [13, 13, 13, 14] * 2
    assert sorted(i for f in fetched[:4] for i in f) == list(range(53))  # every sample, once an epoch


# --------------------------------------------------------------------------- SIGTERM / SIGUSR1 mid-epoch

def _signalled_fit(ckpt, signal_at=None, signum=None, epochs=4):
    """Momentum, a warm-up spanning epochs 1-2, a per-epoch schedule and dropout (torch RNG): every
    state an exact mid-epoch resume must restore. ``signal_at``: the fetch of that batch signals this
    process (as SLURM does), the batch itself completes."""
    import signal as _signal  # noqa: F401

    from anapart.learn.training import build_scheduler

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)
    sched = build_scheduler(opt, {"type": "exponential", "gamma": 0.8}, epochs)
    x, y = _data(40)
    fetched = []

    def fetch(idx):
        fetched.append(np.asarray(idx).tolist())
        if signal_at is not None and len(fetched) == signal_at:
            os.kill(os.getpid(), signum)
        return x[idx], y[idx]

    cfg = FitConfig(epochs=epochs, batch_size=8, seed=3, device="cpu", warmup_epochs=1.5, channels_last=False)
    hist = fit(model, opt, torch.nn.functional.mse_loss, fetch, 40, cfg, ckpt, scheduler=sched)
    return model, hist, fetched


def test_a_kept_checkpoint_lets_a_job_cut_after_training_resume_trained(tmp_path):
    """keep_checkpoint: the job removes it after its other outputs (classify_train's predictions); a
    job cut between (SLURM's warning while it predicts) reruns no batch and gets the same model."""
    ckpt = tmp_path / "checkpoint.partial.pt"
    ref, ref_hist, _ = _fit(tmp_path / "ref.pt")
    x, y = _data(40)
    for _run in (1, 2):  # the second run finds the kept, complete checkpoint
        torch.manual_seed(0)
        model, fetched = torch.nn.Linear(6, 1), []
        hist = fit(model, torch.optim.SGD(model.parameters(), lr=0.02), torch.nn.functional.mse_loss,
                   lambda idx: fetched.append(idx) or (x[idx], y[idx]), 40,
                   FitConfig(epochs=3, batch_size=8, seed=3, device="cpu", channels_last=False), ckpt,
                   keep_checkpoint=True)
        assert ckpt.exists() and hist == ref_hist
        assert torch.equal(model.weight, ref.weight) and torch.equal(model.bias, ref.bias)
    assert fetched == []  # nothing retrained
    assert not (tmp_path / "ref.pt").exists()  # without keep_checkpoint it is removed as before


def test_the_stop_line_also_reaches_the_job_output_when_the_log_took_stderr(tmp_path, capfd, monkeypatch):
    """On SLURM the rule's log is deleted when Snakemake retries the job; the cut attempt's line must
    also be on the process's own stderr (the SLURM job's output file, kept per job)."""
    import io
    import signal

    monkeypatch.setattr("sys.stderr", io.StringIO())  # what setup_logging does: stderr is the rule's log
    with pytest.raises(training.TrainingInterrupted):
        _signalled_fit(tmp_path / "checkpoint.partial.pt", 5 + 2, signal.SIGUSR1)
    err = capfd.readouterr().err
    assert re.search(r"anapart: SIGUSR1 received: stopped in epoch 2 after batch 2 of 5 \([\d.]+s into it\); saved "
                     r"\S*checkpoint.partial.pt", err), err
    state = torch.load(tmp_path / "checkpoint.partial.pt", weights_only=False)
    assert state["partial"]["elapsed"] > 0  # a resumed epoch's time counts the run that was cut


@pytest.mark.parametrize("signame, signal_at", [("SIGTERM", 5 + 3), ("SIGUSR1", 5 * 2 + 2), ("SIGTERM", 5)])
def test_a_signal_saves_mid_epoch_and_the_rerun_resumes_exactly(tmp_path, caplog, signame, signal_at):
    """5 batches an epoch; signalled in batch 3 of epoch 2 (during the warm-up), batch 2 of epoch 3,
    and in the last batch of epoch 1 (then the epoch's own checkpoint is the one kept)."""
    import signal

    signum = getattr(signal, signame)
    before = signal.getsignal(signum)
    ref_model, ref_hist, ref_fetched = _signalled_fit(tmp_path / "ref.pt")
    ckpt = tmp_path / "checkpoint.partial.pt"
    caplog.set_level(logging.INFO, logger="anapart.training")
    with pytest.raises(training.TrainingInterrupted) as e:
        _signalled_fit(ckpt, signal_at, signum)
    assert e.value.code == 128 + signum and signal.getsignal(signum) == before  # handler given back
    assert f"{signame} received: stopped" in caplog.text and str(ckpt) in caplog.text
    state = torch.load(ckpt, weights_only=False)
    epoch, batch = divmod(signal_at, 5)
    if batch:
        assert state["partial"]["epoch"] == epoch and state["partial"]["batch"] == batch
    else:
        assert state["epoch"] == epoch - 1 and "partial" not in state
    model, hist, fetched = _signalled_fit(ckpt)
    assert fetched == ref_fetched[signal_at:]  # only the batches not yet trained, in the same order
    assert hist == ref_hist  # bit for bit: the epoch's running loss was carried over
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)
    assert not ckpt.exists()
