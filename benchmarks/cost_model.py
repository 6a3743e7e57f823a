"""GPU-hours and wall time of study A's classifier training, from measured throughput.

    python benchmarks/cost_model.py --throughput benchmarks/out/gpu_check.json --gpus 1 4 8   # GPU numbers
    python benchmarks/cost_model.py --measure-cpu --gpus 1 4 8                               # CPU numbers

What is counted, from the configs (each merged over config/config.yaml as Snakemake merges it):
classifier training jobs (nets x formats x fractions, and per replicate fold x repeat x seed),
each training ``epochs`` passes over its training slices (the synthetic cohort's patients x slices
per patient x (1 - test_fraction), or (K-1)/K of them in a K-fold replicate) x fraction, at the
format's network input size (classify.input_size, or the crop's native side when null: crop.sizes
scaled to cohort.field, the full slice at the field).

Per-image time is our training loop's measured images/s (``gpu_check.json``'s ``ours_img_s``, or
a CPU measurement with the same code), per network and size; a size not measured is scaled from
the nearest measured one by pixel count (labelled "scaled"). GPU-hours = the images / that rate
+ a per-job overhead (``--job-overhead-s``: process start, imports, model build, test prediction;
an assumption, not measured here). Wall time on G GPUs is the longest-job-first schedule of the
jobs over G devices (what ``--resources gpu=G`` or G SLURM GPUs allow). Not counted: segmentation
and staging training, Grad-CAM, evaluation (CPU jobs or minutes next to the classifiers).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

SCENARIOS = [("demo", None), ("paper", "config/paper.yaml"), ("replicates", "config/replicates.yaml")]


def merged(overlay: str | None) -> dict:
    """config/config.yaml with ``overlay`` merged over it (nested dicts key by key, as --configfile)."""
    def merge(a, b):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return out

    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    return merge(base, yaml.safe_load((REPO / overlay).read_text())) if overlay else base


def input_sizes(cfg: dict) -> dict[str, int]:
    """The network input side of each format."""
    field, fixed = int(cfg["cohort"]["field"]), cfg["classify"]["input_size"]
    native = {"full": field, **{f: round(s * field / 512) for f, s in cfg["crop"]["sizes"].items()}}
    return {f: int(fixed) if fixed else native[f] for f in cfg["classify"]["formats"]}


def jobs(cfg: dict) -> dict[str, list[dict]]:
    """Every classifier training job of the single split and of the replicate grid: net, size, images."""
    slices = sum(cfg["synthetic"]["patients"].values()) * int(cfg["synthetic"]["slices_per_patient"])
    c, rep = cfg["classify"], cfg["replicates"]
    sizes = input_sizes(cfg)
    epochs = int(c["epochs"])

    def grid(train_slices: float, copies: int) -> list[dict]:
        return [{"net": n, "size": sizes[f], "images": train_slices * frac / 100 * epochs}
                for _ in range(copies) for n in c["nets"] for f in c["formats"] for frac in cfg["split"]["fractions"]]

    out = {"single split": grid(slices * (1 - float(cfg["split"]["test_fraction"])), 1)}
    k = int(rep["folds"])
    if k >= 2:
        seeds = rep["seeds"] or [c["seed"]]
        out["replicate grid"] = grid(slices * (k - 1) / k, k * int(rep["repeats"]) * len(seeds))
    return out


def rate(table: dict, net: str, size: int) -> tuple[float, bool]:
    """Images/s of ``net`` at ``size``; scaled by pixel count from the nearest measured size if needed."""
    measured = table[net]
    if size in measured:
        return measured[size], False
    near = min(measured, key=lambda s: abs(s - size))
    return measured[near] * (near / size) ** 2, True


def makespan(hours: list[float], gpus: int) -> float:
    """Longest job first onto the least-loaded of ``gpus`` devices."""
    load = [0.0] * gpus
    for h in sorted(hours, reverse=True):
        heapq.heapreplace(load, load[0] + h)
    return max(load)


def cost(table: dict, gpus: list[int], overhead_s: float) -> list[dict]:
    rows = []
    for name, overlay in SCENARIOS:
        for scope, js in jobs(merged(overlay)).items():
            hours, scaled = [], False
            for j in js:
                r, sc = rate(table, j["net"], j["size"])
                scaled |= sc
                hours.append((j["images"] / r + overhead_s) / 3600)
            rows.append({"config": overlay or "config/config.yaml (demo)", "scope": scope, "jobs": len(js),
                         "sizes": sorted({j["size"] for j in js}), "images_m": round(sum(j["images"] for j in js) / 1e6, 3),
                         "device_hours": round(sum(hours), 2), "scaled": scaled,
                         "wall_h": {g: round(makespan(hours, g), 2) for g in gpus}})
    return rows


def from_gpu_check(path: Path) -> tuple[dict, str]:
    res = json.loads(path.read_text())
    table: dict = {}
    for r in res["throughput"]:
        table.setdefault(r["net"], {})[int(r["size"])] = float(r["ours_img_s"])
    return table, f"{res['device_name']} ({res['mode']}, {res['date']}, gpu_check.json)"


def measure_cpu(sizes: list[int], batch: int, steps: int, threads: int) -> tuple[dict, str]:
    """Our loop's images/s on this machine's CPU (float32: no AMP on the CPU), with gpu_check's code,
    at ``threads`` torch threads per job (the demo's classify.threads: jobs run side by side)."""
    import platform

    import torch

    import gpu_check
    torch.set_num_threads(threads)
    s = {"batch": batch, "warmup": 1, "steps": steps}
    table: dict = {}
    for net in gpu_check.paper_nets():
        for size in sizes:
            table.setdefault(net, {})[size] = gpu_check.ours(net, size, s, torch.device("cpu"))
            print(f"CPU {net} {size}px: {table[net][size]:.2f} img/s", file=sys.stderr, flush=True)
    return table, (f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads, batch {batch}, "
                   f"float32; measured by cost_model.py --measure-cpu)")


def markdown(rows: list[dict], device: str, gpus: list[int], overhead_s: float) -> str:
    head = "| config | scope | jobs | input px | training images (M) | device-hours | " + \
        " | ".join(f"wall h, {g} device{'s' if g > 1 else ''}" for g in gpus) + " |"
    lines = [f"Throughput from: **{device}**; per-job overhead {overhead_s:g} s (assumed).", "", head,
             "|" + "---|" * (6 + len(gpus))]
    for r in rows:
        lines.append(f"| {r['config']} | {r['scope']} | {r['jobs']} | {'/'.join(map(str, r['sizes']))}"
                     f"{' (scaled)' if r['scaled'] else ''} | {r['images_m']} | {r['device_hours']} | "
                     + " | ".join(str(r["wall_h"][g]) for g in gpus) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--throughput", type=Path, help="a gpu_check.json (GPU numbers)")
    src.add_argument("--measure-cpu", action="store_true", help="measure our loop on this CPU instead")
    ap.add_argument("--cpu-sizes", type=int, nargs="+", default=[56, 112])
    ap.add_argument("--cpu-batch", type=int, default=8)
    ap.add_argument("--cpu-steps", type=int, default=2)
    ap.add_argument("--cpu-threads", type=int, default=1)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--job-overhead-s", type=float, default=30.0)
    ap.add_argument("--out", type=Path, help="also write <out>/cost_model.json and .md")
    a = ap.parse_args(argv)
    table, device = from_gpu_check(a.throughput) if a.throughput else measure_cpu(a.cpu_sizes, a.cpu_batch,
                                                                                    a.cpu_steps, a.cpu_threads)
    rows = cost(table, a.gpus, a.job_overhead_s)
    md = markdown(rows, device, a.gpus, a.job_overhead_s)
    print(md)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "cost_model.json").write_text(json.dumps({"device": device, "images_per_s": table, "rows": rows},
                                                          indent=1))
        (a.out / "cost_model.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
