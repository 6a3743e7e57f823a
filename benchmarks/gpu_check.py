"""The GPU check: one command, at most ~8 minutes on one GPU, one JSON and one Markdown table.

    python benchmarks/gpu_check.py                 # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --cpu-smoke     # the same code paths on the CPU in < 1 min (CI)

(a) training throughput (images/s) of the four study-A networks (config/paper.yaml classify.nets)
    at 112, 224 and 512 px, batch 32, AMP and channels-last: our loop (``training.fit`` fed from a
    CPU tensor, as the crop store feeds it) vs a bare PyTorch AMP loop on the same model and batch
    with the data already on the device (ratio bare/ours time per image; 1.0 = no overhead);
(b) the memory-mapped crop store at paper scale (a synthetic float16 store of 12,832 slices of
    512 px, 6.7 GB; page cache warm after writing) read through ``CropData``: data images/s vs
    each network's images/s at 512 px;
(c) the tiny DAG (config/test.yaml) with ``device: cuda``, end to end, in a scratch copy;
(d) a training job killed after an epoch and resumed gives the same final weights as the
    uninterrupted run (max |difference|; deterministic algorithms, CUBLAS_WORKSPACE_CONFIG set);
(e) peak GPU memory per network and size (bare loop, ``torch.cuda.max_memory_allocated``).

Networks start from random weights (never a hub). ``--cpu-smoke``: small sizes, batch 4, a
256-slice store, and (c) as a dry run (``-n``) of the same command with ``device: cpu``.
Outputs: ``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` (default out: benchmarks/out).
"""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before anything can start cuBLAS

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from anapart import CLASSES  # noqa: E402
from anapart.learn import precision, training  # noqa: E402
from anapart.learn.data import CropData  # noqa: E402
from anapart.partition.classify import build_classifier  # noqa: E402

PAPER_SLICES = 12_832  # 401 patients x 32 slices (config/paper.yaml's synthetic cohort)

FULL = {"sizes": [112, 224, 512], "batch": 32, "warmup": 3, "steps": 10, "store": (PAPER_SLICES, 512),
        "store_batches": 60, "resume_size": 112, "resume_n": 64, "dag_timeout_s": 300}
SMOKE = {"sizes": [32], "batch": 2, "warmup": 1, "steps": 1, "store": (256, 32), "store_batches": 10,
         "resume_size": 32, "resume_n": 4, "dag_timeout_s": 400, "threads": 1}
DAG_TARGET = "results/classify/mobilenetv3_large_100/seg112/f25/metrics.json"


def paper_nets() -> list[str]:
    return list(yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["classify"]["nets"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_model(net: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_classifier(net, len(CLASSES), pretrained=False).to(device).to(memory_format=torch.channels_last)


def ours(net: str, size: int, s: dict, device: torch.device) -> float:
    """Images/s of ``training.fit`` (AMP, channels-last, its per-step loss read and guards), the batch
    coming from a CPU tensor each step as from the crop store's cache."""
    model = make_model(net, device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    n = s["batch"] * (s["warmup"] + s["steps"])
    x = torch.randn(n, 1, size, size)
    y = torch.randint(0, len(CLASSES), (n,))
    times: list[float] = []

    def fetch(idx):
        sync(device)
        times.append(time.perf_counter())
        return x[idx], y[idx]

    cfg = training.FitConfig(epochs=1, batch_size=s["batch"], device=str(device), amp=True, channels_last=True,
                             max_loss_ratio=1e9)
    training.fit(model, opt, F.cross_entropy, fetch, n, cfg)
    sync(device)
    times.append(time.perf_counter())
    return s["batch"] * s["steps"] / (times[-1] - times[s["warmup"]])


def bare(net: str, size: int, s: dict, device: torch.device) -> tuple[float, float | None]:
    """Images/s and peak device memory (GiB) of the plain AMP loop on one device-resident batch."""
    model = make_model(net, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = precision.make_scaler(device, True)
    x = torch.randn(s["batch"], 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(CLASSES), (s["batch"],), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(s["warmup"] + s["steps"]):
        if i == s["warmup"]:
            sync(device)
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with precision.autocast(device, True):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    sync(device)
    ips = s["batch"] * s["steps"] / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return ips, peak


def throughput(s: dict, device: torch.device) -> list[dict]:
    rows = []
    for net in paper_nets():
        for size in s["sizes"]:
            b, peak = bare(net, size, s, device)
            o = ours(net, size, s, device)
            rows.append({"net": net, "size": size, "batch": s["batch"], "ours_img_s": float(f"{o:.4g}"),
                         "bare_img_s": float(f"{b:.4g}"), "ratio_bare_over_ours": round(b / o, 3),
                         "peak_gib": None if peak is None else round(peak, 2)})
            print(f"(a) {net} {size}px: ours {o:.1f} img/s, bare {b:.1f} img/s, peak {peak} GiB", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def crop_store(folder: Path, n: int, side: int) -> Path:
    """A synthetic float16 crop store (``images.npy`` + ``index.csv``), written in chunks."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.float16, shape=(n, side, side))
    base = np.random.default_rng(0).random((64, side, side), dtype=np.float32).astype(np.float16)
    for start in range(0, n, 64):
        k = min(64, n - start)
        images[start:start + k] = base[:k] * np.float16((start // 64 % 7 + 1) / 8)
    images.flush()
    del images
    ids = [f"s{i:05d}" for i in range(n)]
    pd.DataFrame({"slice_id": ids, "row": range(n)}).to_csv(folder / "index.csv", index=False)
    return folder


def store_feed(s: dict, scratch: Path, net_rows: list[dict]) -> dict:
    """Images/s that ``CropData`` serves from the memory-mapped store (random batches, native size)
    against the networks' training images/s at that size."""
    n, side = s["store"]
    t0 = time.perf_counter()
    folder = crop_store(scratch / "store", n, side)
    written = time.perf_counter() - t0
    ids = pd.read_csv(folder / "index.csv")["slice_id"]
    data = CropData(folder, pd.DataFrame({"slice_id": ids, "label": [CLASSES[i % len(CLASSES)] for i in range(n)]}),
                    CLASSES, None, preload_mb=0)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for _ in range(s["store_batches"]):
        data.batch(rng.choice(n, s["batch"], replace=False))
    data_ips = s["store_batches"] * s["batch"] / (time.perf_counter() - t0)
    size = s["sizes"][-1]
    nets = {r["net"]: r["ours_img_s"] for r in net_rows if r["size"] == size}
    out = {"slices": n, "side": side, "store_gb": round(n * side * side * 2 / 1e9, 2), "write_s": round(written, 1),
           "data_img_s": float(f"{data_ips:.4g}"), "net_size": size, "net_img_s": nets,
           "data_over_net": {k: round(data_ips / v, 2) for k, v in nets.items()}}
    print(f"(b) store {n} x {side}px: {data_ips:.1f} img/s from the store; nets at {size}px: {nets}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return out


def resume_check(s: dict, device: torch.device, scratch: Path) -> dict:
    """Uninterrupted 2-epoch fit vs the same fit killed at the first batch of epoch 2 and resumed."""
    n, size, net = s["resume_n"], s["resume_size"], "mobilenetv3_large_100"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, size, size, generator=g)
    y = torch.randint(0, len(CLASSES), (n,), generator=g)

    class Killed(RuntimeError):
        pass

    def run(ckpt: Path, kill_at: int | None = None) -> dict:
        training.seed_everything(0)
        model = make_model(net, device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
        calls = []

        def fetch(idx):
            calls.append(1)
            if kill_at is not None and len(calls) == kill_at:
                raise Killed
            return x[idx], y[idx]

        cfg = training.FitConfig(epochs=2, batch_size=s["batch"], seed=0, device=str(device), amp=True,
                                 channels_last=True, max_loss_ratio=1e9)
        training.fit(model, opt, F.cross_entropy, fetch, n, cfg, ckpt)
        return {k: v.detach().float().cpu() for k, v in model.state_dict().items()}

    ref = run(scratch / "ref.pt")
    steps = -(-n // s["batch"])
    try:
        run(scratch / "run.pt", kill_at=steps + 1)
    except Killed:
        pass
    scaler = torch.load(scratch / "run.pt", weights_only=False).get("scaler")
    resumed = run(scratch / "run.pt")
    diff = max(float((ref[k] - resumed[k]).abs().max()) if ref[k].numel() else 0.0 for k in ref)
    equal = all(torch.equal(ref[k], resumed[k]) for k in ref)
    print(f"(d) resume: bit-identical {equal}, max |diff| {diff:g}, scaler in checkpoint {bool(scaler)}", flush=True)
    return {"net": net, "size": size, "bit_identical": equal, "max_abs_diff": diff,
            "scaler_state_in_checkpoint": scaler or {}}


def dag(s: dict, device: torch.device, scratch: Path, smoke: bool) -> dict:
    """The tiny DAG with ``device: cuda`` in a scratch copy of the workflow (smoke: a dry run, cpu)."""
    wd = scratch / "wf"
    wd.mkdir()
    for name in ("Snakefile", "workflow", "config", "envs", "profiles"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, wd / name)
    dev = "cpu" if smoke else "cuda"
    cores = str(min(os.cpu_count() or 2, 16))
    cmd = [sys.executable, "-m", "snakemake", "-c", cores, *(["-n"] if smoke else []), "--configfile",
           "config/test.yaml", "--config", f"device={dev}", "--", DAG_TARGET]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=s["dag_timeout_s"])
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        code, tail = None, f"timed out after {s['dag_timeout_s']} s"
    wall = time.perf_counter() - t0
    metrics = wd / DAG_TARGET
    aauc = json.loads(metrics.read_text()).get("aauc") if metrics.exists() else None
    print(f"(c) DAG device={dev}{' (dry run)' if smoke else ''}: exit {code}, {wall:.1f} s", flush=True)
    return {"device": dev, "dry_run": smoke, "target": DAG_TARGET, "exit": code, "wall_s": round(wall, 1),
            "aauc": aauc, "ok": code == 0, "tail": tail if code != 0 else ""}


def markdown(res: dict) -> str:
    lines = [f"# GPU check — {res['device_name']} ({res['mode']}, {res['date']})", "",
             "| net | px | batch | ours img/s | bare AMP img/s | bare/ours | peak GiB |", "|---|---|---|---|---|---|---|"]
    for r in res["throughput"]:
        lines.append(f"| {r['net']} | {r['size']} | {r['batch']} | {r['ours_img_s']} | {r['bare_img_s']} | "
                     f"{r['ratio_bare_over_ours']} | {r['peak_gib'] if r['peak_gib'] is not None else 'n/a (CPU)'} |")
    st, rs, dg = res["store"], res["resume"], res["dag"]
    lines += ["", f"Crop store {st['slices']} x {st['side']} px ({st['store_gb']} GB, written in {st['write_s']} s): "
              f"**{st['data_img_s']} img/s** from the memory map; data/network at {st['net_size']} px: "
              + ", ".join(f"{k} {v}x" for k, v in st["data_over_net"].items()) + ".",
              "", f"Resume after an epoch ({rs['net']}, {rs['size']} px): bit-identical **{rs['bit_identical']}**, "
              f"max |diff| {rs['max_abs_diff']:g}; scaler state in the checkpoint: {bool(rs['scaler_state_in_checkpoint'])}.",
              "", f"Tiny DAG (`{dg['target']}`, device {dg['device']}{', dry run' if dg['dry_run'] else ''}): "
              f"{'ok' if dg['ok'] else 'FAILED'} in {dg['wall_s']} s.", "", f"Total {res['total_s']} s."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="the same code paths on the CPU, small, < 1 min")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--skip-dag", action="store_true", help="leave out (c)")
    a = ap.parse_args(argv)
    if not a.cpu_smoke and not torch.cuda.is_available():
        ap.error("no CUDA device: run with --cpu-smoke, or on a GPU machine")
    s = SMOKE if a.cpu_smoke else FULL
    device = torch.device("cpu" if a.cpu_smoke else "cuda")
    training.seed_everything(0)
    training.set_threads(s.get("threads"))
    t0 = time.perf_counter()
    res = {"mode": "cpu-smoke" if a.cpu_smoke else "gpu", "date": time.strftime("%Y-%m-%d"),
           "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "CPU",
           "torch": torch.__version__, "settings": s, "amp_on": precision.amp_on(device, True)}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        scratch = Path(tmp)
        res["throughput"] = throughput(s, device)
        res["store"] = store_feed(s, scratch, res["throughput"])
        res["resume"] = resume_check(s, device, scratch)
        res["dag"] = {"skipped": True, "ok": True, "target": DAG_TARGET, "device": "-", "dry_run": False,
                      "wall_s": 0} if a.skip_dag else dag(s, device, scratch, a.cpu_smoke)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu_check.json").write_text(json.dumps(res, indent=1))
    (a.out / "gpu_check.md").write_text(markdown(res))
    print(markdown(res))
    return 0 if res["dag"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
