"""The shared training loop's guards: warm-up, divergence stop, optimiser and schedule registries."""

import logging
import math

import numpy as np
import pytest
import torch

from anapart.learn import training
from anapart.learn.training import FitConfig, TrainingDiverged, build_optimizer, build_scheduler, content_hash, fit


def linear_problem(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return x, y


def _rates_seen(n: int, lr: float, cfg: FitConfig, schedule: dict | None = None):
    """The learning rate of every batch of a ``fit`` of a toy model on ``n`` samples, and the optimiser."""
    x, y = linear_problem(n=n)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    seen = []

    def loss_fn(out, target):
        seen.append(opt.param_groups[0]["lr"])
        return torch.nn.functional.cross_entropy(out, target)

    fit(model, opt, loss_fn, lambda idx: (x[idx], y[idx]), n, cfg,
        scheduler=build_scheduler(opt, schedule, cfg.epochs) if schedule else None)
    return seen, opt


def test_warmup_raises_the_rate_linearly_then_holds_it():
    # 32 samples, batch 8: 4 steps an epoch; warm-up over 1.5 epochs = 6 steps at 1/7 ... 6/7 of the rate
    seen, opt = _rates_seen(32, 0.1, FitConfig(epochs=3, batch_size=8, warmup_epochs=1.5, channels_last=False))
    expected = [0.1 * k / 7 for k in range(1, 7)] + [0.1] * 6
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert opt.param_groups[0]["lr"] == 0.1  # the epoch's rate is restored for schedules and checkpoints


def test_warmup_composes_with_a_per_epoch_schedule():
    cfg = FitConfig(epochs=3, batch_size=8, warmup_epochs=1, channels_last=False)  # 2 steps an epoch
    seen, _ = _rates_seen(16, 1.0, cfg, {"type": "exponential", "gamma": 0.5})
    np.testing.assert_allclose(seen, [1 / 3, 2 / 3, 0.5, 0.5, 0.25, 0.25])


def _fit_scaled(scale, cfg: FitConfig, calls: dict):
    """32 rows of a linear problem at learning rate 0 (the loss never changes by itself): the n-th
    batch loss is multiplied by ``scale(n)``, so only the divergence guard can act."""
    x, y = linear_problem(n=32)
    model = torch.nn.Linear(4, 2)

    def loss_fn(out, target):
        calls["n"] += 1
        return torch.nn.functional.cross_entropy(out, target) * scale(calls["n"])

    return fit(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, lambda idx: (x[idx], y[idx]), 32, cfg)


def test_exploding_loss_stops_with_a_clear_message():
    """Finite but exploding losses (epoch 2 at 100x the untrained loss) stop training after that epoch."""
    calls = {"n": 0}
    cfg = FitConfig(epochs=5, batch_size=8, channels_last=False, label="toy net")
    with pytest.raises(TrainingDiverged, match=r"toy net: mean loss .* in epoch 2 is over 5 times .*diverged; "
                                               r"lower the learning rate"):
        _fit_scaled(lambda n: 100.0 if n > 4 else 1.0, cfg, calls)  # 4 batches an epoch: epoch 2 explodes
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
    with pytest.raises(TrainingDiverged, match=r"^loss is nan at epoch 2, batch 1 \(learning rate 0.1\): training "
                                               r"diverged; lower the learning rate, lengthen warmup_epochs or set "
                                               r"grad_clip$"):
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


# --------------------------------------------------------------------------- resuming after a kill

class _Killed(RuntimeError):
    pass


def _regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 6, generator=g)
    return x, (x[:, :1] * 2 - x[:, 1:2]).clone()


def _resumable_fit(ckpt, kill_at=None, lr=0.02, epochs=6, schedule=None):
    """A run with every kind of state a resume must restore: momentum, a per-epoch schedule, a warm-up
    that spans epochs 1-2 and dropout (torch RNG). Returns (model, history, fetched index batches)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
    sched = build_scheduler(opt, schedule or {"type": "exponential", "gamma": 0.8}, epochs)
    x, y = _regression()
    fetched = []

    def fetch(idx):
        if kill_at is not None and len(fetched) + 1 == kill_at:
            raise _Killed
        fetched.append(idx.tolist())
        return x[idx], y[idx]

    cfg = FitConfig(epochs=epochs, batch_size=8, seed=3, device="cpu", warmup_epochs=1.5)  # 5 batches an epoch
    hist = fit(model, opt, torch.nn.functional.mse_loss, fetch, len(x), cfg, ckpt, scheduler=sched)
    return model, hist, fetched


@pytest.mark.parametrize("kill_at,done", [(5 * 3 + 2, 3), (5 + 3, 1)])  # in epoch 4; in epoch 2, during warm-up
def test_a_killed_run_resumes_with_only_the_remaining_batches(tmp_path, caplog, kill_at, done):
    ref_model, ref_hist, ref_fetched = _resumable_fit(tmp_path / "ref" / "ckpt.pt")
    assert len(ref_fetched) == 6 * 5 and ref_hist[-1] < ref_hist[0]
    assert not (tmp_path / "ref" / "ckpt.pt").exists()  # removed once training completed
    run = tmp_path / "run" / "ckpt.pt"
    with pytest.raises(_Killed):
        _resumable_fit(run, kill_at=kill_at)
    assert torch.load(run, weights_only=False)["epoch"] == done - 1  # 0-based index of the last finished epoch
    caplog.set_level(logging.INFO, logger="anapart.training")
    model, hist, fetched = _resumable_fit(run)
    # resumed, not restarted: only the remaining epochs' batches, in the uninterrupted run's order
    assert fetched == ref_fetched[done * 5:]
    assert f"resuming from ckpt.pt after epoch {done}" in caplog.text
    assert hist == pytest.approx(ref_hist, rel=1e-12) and len(hist) == 6
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)
    assert not run.exists()


def _linear_fit(ckpt, rows=None, kill_at=None, epochs=4, batch_size=8, seed=3, extra=None, inputs=None):
    """A small deterministic fit with a checkpoint, killed (an exception from ``fetch``) at the
    ``kill_at``-th batch; returns the model and the batches it fetched. ``rows`` picks the training
    rows of the regression data (a split)."""
    x, y = _regression()
    sub = np.arange(len(x)) if rows is None else np.asarray(rows)
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    fetched = []

    def fetch(idx):
        if kill_at is not None and len(fetched) + 1 == kill_at:
            raise _Killed
        fetched.append(idx)
        return x[sub[idx]], y[sub[idx]]

    fit(model, torch.optim.SGD(model.parameters(), lr=0.02), torch.nn.functional.mse_loss, fetch, len(sub),
        FitConfig(epochs=epochs, batch_size=batch_size, seed=seed, device="cpu"), ckpt,
        signature_extra=extra or {"lr": "0.02"}, inputs=inputs)
    return model, fetched


@pytest.mark.parametrize("change", [{"batch_size": 10}, {"seed": 4}, {"extra": {"lr": "0.01"}}])
def test_a_checkpoint_of_other_settings_is_ignored(tmp_path, caplog, change):
    """A checkpoint whose signature (the loop's settings and the caller's ``signature_extra``) differs
    restarts from scratch: every epoch's batches are fetched again."""
    with pytest.raises(_Killed):
        _linear_fit(tmp_path / "c.pt", kill_at=5 * 2 + 1)
    caplog.set_level(logging.INFO, logger="anapart.training")
    _, fetched = _linear_fit(tmp_path / "c.pt", **change)
    per_epoch = -(-40 // change.get("batch_size", 8))
    assert len(fetched) == 4 * per_epoch
    assert "discarding checkpoint c.pt after epoch 2: it was written for other settings" in caplog.text
    assert "resuming" not in caplog.text


def test_a_checkpoint_of_other_inputs_is_discarded_and_names_them(tmp_path, caplog):
    """Same settings, another training list (other patients): the checkpoint is not resumed, the log
    names the input that changed, and the weights equal a clean run's on the new list."""
    lst = tmp_path / "train.csv"

    def go(rows, **kw):
        lst.write_text("row\n" + "\n".join(map(str, rows)) + "\n")
        return _linear_fit(kw.pop("ckpt", tmp_path / "c.pt"), rows, epochs=3, inputs={"training list": lst}, **kw)

    with pytest.raises(_Killed):
        go(range(0, 32), kill_at=4 * 2 + 1)  # killed in epoch 3: the checkpoint holds epochs 1-2
    assert (tmp_path / "c.pt").exists()
    caplog.set_level(logging.INFO, logger="anapart.training")
    new_rows = range(8, 40)  # a changed split: a quarter of the rows are new
    resumed, fetched = go(new_rows)
    assert "discarding checkpoint c.pt after epoch 2: it was written for other input 'training list'" in caplog.text
    assert "resuming" not in caplog.text and len(fetched) == 3 * 4
    clean, _ = go(new_rows, ckpt=tmp_path / "clean.pt")
    assert torch.equal(resumed.weight, clean.weight) and torch.equal(resumed.bias, clean.bias)


def test_a_checkpoint_of_the_same_inputs_resumes(tmp_path, caplog):
    """The guard costs nothing when nothing changed: same list, same settings -> resume."""
    lst = tmp_path / "train.csv"
    lst.write_text("row\n1\n")
    with pytest.raises(_Killed):
        _linear_fit(tmp_path / "c.pt", epochs=3, inputs={"list": lst}, kill_at=5 + 1)
    caplog.set_level(logging.INFO, logger="anapart.training")
    _, fetched = _linear_fit(tmp_path / "c.pt", epochs=3, inputs={"list": lst})
    assert len(fetched) == 2 * 5 and "resuming from c.pt after epoch 1" in caplog.text


def test_content_hash_reads_contents_not_paths(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n1\n")
    assert content_hash(a) == content_hash(b)
    b.write_text("x\n2\n")
    assert content_hash(a) != content_hash(b)
    d = tmp_path / "d"
    d.mkdir()
    (d / "f").write_bytes(b"1")
    h = content_hash(d)
    (d / "g").write_bytes(b"")
    assert content_hash(d) != h  # a new file in a folder changes its hash
    # a file over the limit is hashed by its size and sampled blocks: a store rewritten throughout
    # (another ingest) differs, the same bytes do not
    big = tmp_path / "images.npy"
    data = np.random.default_rng(0).random(40_000).astype(np.float32).tobytes()
    big.write_bytes(data)
    sampled = content_hash(big, chunk=1024, full_limit=10_000)
    assert sampled == content_hash(big, chunk=1024, full_limit=10_000) != content_hash(big)
    big.write_bytes(np.random.default_rng(1).random(40_000).astype(np.float32).tobytes())
    assert content_hash(big, chunk=1024, full_limit=10_000) != sampled


def test_divergence_is_judged_against_the_untrained_loss_after_a_resume_too(tmp_path):
    """Epoch 1 losses 10 (the untrained model's), then about 1; after the kill the resumed epoch's first
    batch is 0.5 and the rest 4: a mean of about 3.3, far below 5 x 10, but above 5 x 0.5."""
    hist = _killed_at_epoch_4_then_resumed(
        tmp_path, lambda epoch, batch: 10.0 if epoch == 0 else (1.0 if epoch < 3 else (0.5 if batch == 0 else 4.0)))
    assert hist[:3] == pytest.approx([10.0, 1.0, 1.0]) and hist[3] == pytest.approx((0.5 + 4 * 4.0) / 5)


def _killed_at_epoch_4_then_resumed(tmp_path, value_of) -> list[float]:
    """Four epochs of 5 batches whose losses are ``value_of(epoch, batch)`` (with the real loss's
    gradient direction); killed at the start of epoch 4, then resumed: the resumed run's history."""
    x, y = _regression()
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = torch.nn.functional.mse_loss(out, target)
        return loss * (value_of(*divmod(calls["n"] - 1, 5)) / loss.detach())

    def go(kill_at=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 1)

        def fetch(idx):
            if kill_at is not None and calls["n"] + 1 == kill_at:
                raise _Killed
            return x[idx], y[idx]

        return fit(model, torch.optim.SGD(model.parameters(), lr=1e-4), loss_fn, fetch, len(x),
                   FitConfig(epochs=4, batch_size=8, seed=0, device="cpu", max_loss_ratio=5.0), tmp_path / "c.pt")

    with pytest.raises(_Killed):
        go(kill_at=5 * 3 + 1)  # killed at the start of epoch 4
    calls["n"] = 15  # the resumed run continues the loss schedule at epoch 4
    return go()


# --------------------------------------------------------------------------- predict, save, load

def test_predict_runs_every_input_once_in_order_in_batches():
    model = torch.nn.Linear(4, 3)
    x = torch.randn(11, 4)
    seen = []

    def fetch_x(idx):
        seen.append(idx.tolist())
        return x[idx]

    out = training.predict(model, fetch_x, 11, batch_size=4, device="cpu")
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    with torch.no_grad():
        torch.testing.assert_close(out, model(x))
    assert out.dtype == torch.float32 and out.device.type == "cpu" and not model.training
    assert training.predict(model, fetch_x, 0, batch_size=4, device="cpu").numel() == 0


def test_saved_model_reloads_with_its_meta(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Dropout(0.5), torch.nn.Linear(5, 2))
    meta = {"width": 5, "classes": ["a", "b"]}
    training.save_model(tmp_path / "m.pt", model, meta)
    built = []

    def build(m):
        built.append(m)
        return torch.nn.Sequential(torch.nn.Linear(4, m["width"]), torch.nn.Dropout(0.5), torch.nn.Linear(m["width"], 2))

    loaded, got = training.load_model(tmp_path / "m.pt", build)
    assert got == meta and built == [meta] and not loaded.training  # eval mode: dropout off
    x = torch.randn(3, 4)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # written under a temporary name, then renamed


def test_seeding_makes_torch_numpy_and_python_repeat():
    import random

    draws = []
    for _ in range(2):
        training.seed_everything(123)
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()))
    assert draws[0] == draws[1]
    training.seed_everything(124)
    assert torch.rand(3).tolist() != draws[0][0]
    assert torch.are_deterministic_algorithms_enabled()


def test_threads_follow_the_config():
    before = torch.get_num_threads()
    try:
        training.set_threads(1)
        assert torch.get_num_threads() == 1
        training.set_threads(None)  # no setting: leave torch alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_an_unusually_low_first_batch_does_not_trigger_the_guard():
    """The reference is not the first batch alone: a lucky first batch must not make a normal run 'diverge'."""
    calls = {"n": 0}
    hist = _fit_scaled(lambda n: 0.01 if n == 1 else 1.0, FitConfig(epochs=3, batch_size=8, channels_last=False),
                       calls)  # first batch 100x lower than the rest
    assert len(hist) == 3 and calls["n"] == 12


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


# --------------------------------------------------------------------------- gaps the mutation run found (tools/mutation/MUTATION.md)

def test_a_resumed_step_schedule_keeps_counting_its_epochs(tmp_path, caplog):
    """A step schedule decays by its own epoch count, which lives in the scheduler's state, not the
    optimiser's: a resume that did not restore it would decay at the wrong epochs."""
    step = {"type": "step", "step_size": 2, "gamma": 0.5}
    ref_model, ref_hist, _ = _resumable_fit(tmp_path / "ref" / "ckpt.pt", schedule=step)
    run = tmp_path / "run" / "ckpt.pt"
    with pytest.raises(_Killed):
        _resumable_fit(run, kill_at=5 * 3 + 2, schedule=step)
    caplog.set_level(logging.INFO, logger="anapart.training")
    model, hist, fetched = _resumable_fit(run, schedule=step)
    assert "resuming from ckpt.pt after epoch 3" in caplog.messages  # the whole record, as users read it
    assert len(fetched) == 3 * 5 and hist == pytest.approx(ref_hist, rel=1e-12)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)


def test_fit_config_reads_amp_channels_last_the_loss_ratio_and_the_device():
    cfg = FitConfig.from_config({"epochs": 1, "batch_size": 2, "seed": 0, "amp": False, "channels_last": False,
                                 "max_loss_ratio": 3.0}, device="cpu")
    assert (cfg.amp, cfg.channels_last, cfg.device, cfg.max_loss_ratio) == (False, False, "cpu", 3.0)


def test_signature_ignores_the_order_of_the_extra_settings():
    """The extra settings come from config dicts, whose key order follows the YAML file: reordering
    a file must not orphan a checkpoint, while changing a value must."""
    cfg = FitConfig(epochs=2, batch_size=4)
    assert cfg.signature({"arch": "unet", "lr": "0.1"}) == cfg.signature({"lr": "0.1", "arch": "unet"})
    assert cfg.signature({"arch": "unet", "lr": "0.1"}) != cfg.signature({"arch": "unet", "lr": "0.2"})


def test_an_unknown_schedule_lists_the_known_ones():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], {"optimizer": "sgd", "lr": 0.1})
    with pytest.raises(ValueError, match=r"\(known: none, exponential, step, cosine\)"):
        build_scheduler(opt, {"type": "linear"}, 3)


def test_warmup_with_one_batch_an_epoch_counts_epochs_as_steps():
    # 4 samples, batch 8: one step an epoch; warm-up over 2 epochs = 2 steps at 1/3 and 2/3 of the rate
    seen, _ = _rates_seen(4, 0.3, FitConfig(epochs=4, batch_size=8, warmup_epochs=2, channels_last=False))
    np.testing.assert_allclose(seen, [0.1, 0.2, 0.3, 0.3], rtol=1e-12)


def test_a_late_explosion_after_a_resume_is_judged_against_the_untrained_loss(tmp_path):
    """Epoch 1 losses 10 (the untrained model's), then 1; the resumed last epoch ends with one batch
    at 30: a mean of 6.8, within 5 x 10 but over 5 times that epoch's own first and median loss (1),
    so only the restored untrained loss lets the run finish."""
    hist = _killed_at_epoch_4_then_resumed(
        tmp_path, lambda epoch, batch: 10.0 if epoch == 0 else (30.0 if (epoch, batch) == (3, 4) else 1.0))
    assert hist == pytest.approx([10.0, 1.0, 1.0, 6.8])


def test_a_late_explosion_in_the_first_epoch_reports_its_mean_and_the_remedies(caplog):
    """Batch losses 1, 1, 1, 30: the untrained scale is 1 (first and median batch), the mean 8.25."""
    x, y = linear_problem(n=32)
    model = torch.nn.Linear(4, 2)
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * ((30.0 if calls["n"] == 4 else 1.0) / loss.detach())

    caplog.set_level(logging.INFO, logger="anapart.training")
    with pytest.raises(TrainingDiverged) as e:
        fit(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, lambda idx: (x[idx], y[idx]), 32,
            FitConfig(epochs=3, batch_size=8, channels_last=False))
    assert str(e.value) == ("mean loss 8.25 in epoch 1 is over 5 times the untrained model's 1: training diverged; "
                            "lower the learning rate, lengthen warmup_epochs or set grad_clip")
    assert any(m.startswith("epoch 1/3 loss 8.2500 (") for m in caplog.messages), caplog.messages


def test_gradient_clipping_bounds_the_step():
    """Plain SGD with rate 1 moves the weights by the gradient: clipped to a global norm of 0.01, the
    step's norm is 0.01 (the unclipped gradient here is far larger)."""
    x, y = linear_problem(n=8)
    model = torch.nn.Linear(4, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    big = lambda out, target: 1000 * torch.nn.functional.cross_entropy(out, target)  # noqa: E731
    fit(model, torch.optim.SGD(model.parameters(), lr=1.0), big, lambda idx: (x[idx], y[idx]), 8,
        FitConfig(epochs=1, batch_size=8, channels_last=False, grad_clip=0.01, max_loss_ratio=1e9))
    step = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    assert float(step.norm()) == pytest.approx(0.01, rel=1e-4)


def test_device_resolution_with_and_without_cuda(monkeypatch):
    """Checked on any machine by telling torch whether CUDA is there: ``auto`` follows it, and asking
    for ``cuda`` without it is an error, never a silent fallback."""
    from anapart.learn.training import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="config device is 'cuda' but torch sees no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda") == torch.device("cuda")


def test_seeds_give_their_own_numpy_streams():
    """numpy's legacy seed is the seed modulo 2**32 (numpy refuses larger ones): seeds 1 and 3 differ,
    seeds 1 and 2**32 + 1 are the same stream."""
    draws = {}
    for seed in (1, 3, 2**32 + 1):
        training.seed_everything(seed)
        draws[seed] = np.random.rand(3).tolist()
    assert draws[1] != draws[3] and draws[1] == draws[2**32 + 1]


def test_image_batches_train_in_channels_last_as_in_the_default_layout():
    """4-D inputs are switched to channels_last with the model: the same losses as without (a layout,
    not a different computation)."""
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = (x.mean((1, 2, 3)) > 0).long()
    hist = {}
    for layout in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.Linear(48, 2))
        hist[layout] = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy,
                           lambda idx: (x[idx], y[idx]), 8, FitConfig(epochs=3, batch_size=4, channels_last=layout))
    assert hist[True] == pytest.approx(hist[False], rel=1e-5)
