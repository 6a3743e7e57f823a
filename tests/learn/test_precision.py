"""Mixed precision resumes exactly: the loss scaler's state goes into the checkpoint and comes back.

Run on the CPU (its autocast and ``torch.amp.GradScaler('cpu')`` are the same code path as CUDA's):
``precision.AMP_DEVICES`` gets ``cpu`` for these tests. The loss is large enough (x 1000) that
float16 gradients overflow at the scaler's initial 65536: the first run skips steps while the
scale backs off. A resumed run that restarted the scale would skip them again and end elsewhere.
"""

import os

import pytest
import torch

from anapart.learn import precision, training
from anapart.learn.training import FitConfig, build_scheduler, fit


class _Killed(RuntimeError):
    pass


@pytest.fixture
def cpu_amp(monkeypatch):
    monkeypatch.setattr(precision, "AMP_DEVICES", {"cuda", "cpu"})


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    return x, (x[:, :1] * 2 - x[:, 1:2]).clone()


def _amp_fit(ckpt, kill_at=None, dtype="float16", epochs=5, scalers=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.5)
    sched = build_scheduler(opt, {"type": "exponential", "gamma": 0.9}, epochs)
    x, y = _data()
    fetched = []

    def fetch(idx):
        if kill_at is not None and len(fetched) + 1 == kill_at:
            raise _Killed
        fetched.append(idx.tolist())
        return x[idx], y[idx]

    def loss_fn(out, target):
        return 1000.0 * torch.nn.functional.mse_loss(out.float(), target)

    cfg = FitConfig(epochs=epochs, batch_size=8, seed=3, device="cpu", amp=True, amp_dtype=dtype,
                    channels_last=False, max_loss_ratio=1e9)  # 5 batches an epoch
    fit(model, opt, loss_fn, fetch, len(x), cfg, ckpt, scheduler=sched)
    return model


def test_a_float16_checkpoint_holds_the_scaler_and_a_resumed_run_restores_it(tmp_path, cpu_amp, caplog):
    ref = _amp_fit(tmp_path / "ref.pt")
    run = tmp_path / "run.pt"
    with pytest.raises(_Killed):
        _amp_fit(run, kill_at=5 * 3 + 2)  # in epoch 4: the checkpoint holds epochs 1-3
    state = torch.load(run, weights_only=False)["scaler"]
    # overflowing steps halved the scale from its initial 2**16 (hand count: 1000 x mse ~ 1e3,
    # times 65536 is past float16's 65504); the growth tracker counts the clean steps since
    assert 0 < state["scale"] < 2.0 ** 16
    assert state["_growth_tracker"] >= 1
    caplog.set_level("INFO", logger="anapart.training")
    resumed = _amp_fit(run)
    assert f"restored the loss scale {state['scale']:g}" in caplog.text
    for a, b in zip(resumed.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)


def test_a_resume_that_restarts_the_scale_ends_elsewhere(tmp_path, cpu_amp, monkeypatch):
    """The control: the same kill and resume with the scaler's restore disabled does not reproduce
    the uninterrupted run (so the test above depends on the restore)."""
    ref = _amp_fit(tmp_path / "ref.pt")
    run = tmp_path / "run.pt"
    with pytest.raises(_Killed):
        _amp_fit(run, kill_at=5 * 3 + 2)
    monkeypatch.setattr(precision, "restore_scaler", lambda *a, **k: None)
    resumed = _amp_fit(run)
    assert any(not torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), ref.state_dict().values()))


def test_bfloat16_trains_without_a_scaler_and_resumes_exactly(tmp_path, cpu_amp):
    scaler = precision.make_scaler(torch.device("cpu"), True, "bfloat16")
    assert not scaler.is_enabled() and precision.scaler_state(scaler) == {}
    ref = _amp_fit(tmp_path / "ref.pt", dtype="bfloat16")
    run = tmp_path / "run.pt"
    with pytest.raises(_Killed):
        _amp_fit(run, kill_at=5 * 2 + 1, dtype="bfloat16")
    assert torch.load(run, weights_only=False)["scaler"] == {}
    resumed = _amp_fit(run, dtype="bfloat16")
    for a, b in zip(resumed.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_without_scaler_state_resumes_with_a_warning(cpu_amp, caplog):
    """Written where float16 AMP was off (the CPU), resumed where it is on: the scale starts over, said."""
    scaler = precision.make_scaler(torch.device("cpu"), True, "float16")
    precision.restore_scaler(scaler, {}, "c.pt")
    assert "c.pt holds no loss-scaler state" in caplog.text and "not the uninterrupted one" in caplog.text
    precision.restore_scaler(scaler, {"scale": 8.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                      "growth_interval": 2000, "_growth_tracker": 3}, "c.pt")
    assert scaler.get_scale() == 8.0 and scaler.state_dict()["_growth_tracker"] == 3


def test_amp_is_off_on_the_cpu_by_default_and_the_dtype_is_checked():
    assert not precision.make_scaler(torch.device("cpu"), True, "float16").is_enabled()
    assert precision.amp_on(torch.device("cuda"), True) and not precision.amp_on(torch.device("cuda"), False)
    assert not precision.amp_on(torch.device("cpu"), True)
    with pytest.raises(ValueError, match="amp_dtype: unknown 'float8' \\(known: float16, bfloat16\\)"):
        precision.make_scaler(torch.device("cpu"), True, "float8")
    assert FitConfig.from_config({"epochs": 1, "batch_size": 1, "seed": 0, "amp_dtype": "bfloat16"}).amp_dtype == \
        "bfloat16"


def test_seeding_sets_the_cublas_workspace_unless_the_user_did(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    training.seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    training.seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
