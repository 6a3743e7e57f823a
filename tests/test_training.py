"""The shared training loop's guards: warm-up, divergence stop, optimiser and schedule registries."""

import math

import numpy as np
import pytest
import torch

from anapart import training
from anapart.training import FitConfig, TrainingDiverged, build_optimizer, build_scheduler, fit


def linear_problem(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return x, y


def test_warmup_raises_the_rate_linearly_then_holds_it():
    x, y = linear_problem(n=32)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def loss_fn(out, target):
        seen.append(opt.param_groups[0]["lr"])
        return torch.nn.functional.cross_entropy(out, target)

    # 32 samples, batch 8: 4 steps an epoch; warm-up over 1.5 epochs = 6 steps at 1/7 ... 6/7 of the rate
    cfg = FitConfig(epochs=3, batch_size=8, warmup_epochs=1.5, channels_last=False)
    fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), 32, cfg)
    expected = [0.1 * k / 7 for k in range(1, 7)] + [0.1] * 6
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert opt.param_groups[0]["lr"] == 0.1  # the epoch's rate is restored for schedules and checkpoints


def test_warmup_composes_with_a_per_epoch_schedule():
    x, y = linear_problem(n=16)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = build_scheduler(opt, {"type": "exponential", "gamma": 0.5}, 3)
    seen = []

    def loss_fn(out, target):
        seen.append(opt.param_groups[0]["lr"])
        return torch.nn.functional.cross_entropy(out, target)

    cfg = FitConfig(epochs=3, batch_size=8, warmup_epochs=1, channels_last=False)  # 2 steps an epoch
    fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), 16, cfg, scheduler=sched)
    np.testing.assert_allclose(seen, [1 / 3, 2 / 3, 0.5, 0.5, 0.25, 0.25])


def test_exploding_loss_stops_with_a_clear_message():
    """Finite but exploding losses (epoch 2 at 100x the untrained loss) stop training after that epoch."""
    x, y = linear_problem(n=32)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * 100 if calls["n"] > 4 else loss  # 4 batches an epoch: epoch 2 explodes

    cfg = FitConfig(epochs=5, batch_size=8, channels_last=False, label="toy net")
    with pytest.raises(TrainingDiverged, match=r"toy net: mean loss .* in epoch 2 is over 5 times .*diverged; "
                                               r"lower the learning rate"):
        fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), 32, cfg)
    assert calls["n"] == 8


def test_non_finite_loss_stops_at_once():
    x, y = linear_problem(n=16)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    cfg = FitConfig(epochs=5, batch_size=8, channels_last=False)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, batch 1"):
        fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), 16, cfg)
    assert calls["n"] == 3


def test_a_stable_run_is_not_stopped():
    x, y = linear_problem(n=64)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hist = fit(model, opt, torch.nn.functional.cross_entropy, lambda idx: (x[idx], y[idx]), 64,
               FitConfig(epochs=5, batch_size=16, channels_last=False))
    assert hist[-1] < 0.5 * math.log(2)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_registry_builds_what_the_config_names(name, cls):
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = build_optimizer(p, {"optimizer": name, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.001})
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["weight_decay"] == 0.001
    if name in ("sgd", "rmsprop"):
        assert opt.param_groups[0]["momentum"] == 0.9


def test_unknown_optimizer_or_schedule_names_the_key():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match=r"classify.optimizer: unknown optimizer 'sgdd'.*adamw"):
        build_optimizer(p, {"optimizer": "sgdd", "lr": 0.1}, "classify.optimizer")
    opt = build_optimizer(p, {"optimizer": "sgd", "lr": 0.1})
    with pytest.raises(ValueError, match=r"unknown schedule type 'linear'"):
        build_scheduler(opt, {"type": "linear"}, 3)
    assert build_scheduler(opt, None, 3) is None


def test_cosine_schedule_reaches_zero_at_the_last_epoch():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], {"optimizer": "sgd", "lr": 1.0})
    sched = build_scheduler(opt, {"type": "cosine"}, 4)
    rates = []
    for _ in range(4):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(rates, [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)], atol=1e-12)


def test_fit_config_reads_the_stage_config():
    cfg = FitConfig.from_config({"epochs": 3, "batch_size": 4, "seed": 7, "grad_clip": 1.5, "warmup_epochs": 0.5,
                                 "lr": 0.1}, device="cpu", label="x")
    assert (cfg.epochs, cfg.batch_size, cfg.seed, cfg.grad_clip, cfg.warmup_epochs, cfg.label) == \
        (3, 4, 7, 1.5, 0.5, "x")
    assert training.FitConfig.from_config({"epochs": 1, "batch_size": 1, "seed": 0}).max_loss_ratio == 5.0


def test_an_unusually_low_first_batch_does_not_trigger_the_guard():
    """The reference is not the first batch alone: a lucky first batch must not make a normal run 'diverge'."""
    x, y = linear_problem(n=32)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * 0.01 if calls["n"] == 1 else loss  # first batch 100x lower than the rest

    hist = fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), 32, FitConfig(epochs=3, batch_size=8,
                                                                                channels_last=False))
    assert len(hist) == 3


def test_a_fractional_warmup_is_at_least_one_step():
    x, y = linear_problem(n=16)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    seen = []

    def loss_fn(out, target):
        seen.append(opt.param_groups[0]["lr"])
        return torch.nn.functional.cross_entropy(out, target)

    fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), 16, FitConfig(epochs=1, batch_size=8, warmup_epochs=0.1,
                                                                          channels_last=False))
    assert seen == [0.1, 0.2]  # a warm-up of 0.1 epoch is one step at half the rate, never silently none


def test_saved_model_is_the_same_bytes_whatever_the_file_name(tmp_path):
    """torch names an archive's records after the file; the temporary name is random, so without
    in-memory serialisation one model saved twice would differ (and reruns would not compare)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    training.save_model(tmp_path / "a" / "model.pt", model, {"net": "toy"})
    training.save_model(tmp_path / "b" / "other_name.pt", model, {"net": "toy"})
    a, b = (tmp_path / "a/model.pt").read_bytes(), (tmp_path / "b/other_name.pt").read_bytes()
    assert a == b
    loaded, meta = training.load_model(tmp_path / "b/other_name.pt", lambda m: torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    assert meta == {"net": "toy"}
    assert all(torch.equal(p, q) for p, q in zip(loaded.state_dict().values(), model.state_dict().values()))
