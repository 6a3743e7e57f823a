"""Benchmark: how much one demo classifier's aAUC moves with the seed and the thread count.

A result that changes when only the seed or the number of torch threads changes (a different
floating-point summation order: what another CPU does too) is not a finding. This trains one
cell per format (default densenet121 at 100%) with several seeds, each under 1 and 2 torch
threads, on the demo's own crop stores, and reports per format the aAUC's mean, SD across seeds,
and the largest change between thread counts. Target: SD <= 0.03 per format.

    .venv/bin/python benchmarks/stability_bench.py                     # builds the demo's crops first
    .venv/bin/python benchmarks/stability_bench.py --workdir /tmp/demo  # reuse a finished demo run
    .venv/bin/python benchmarks/stability_bench.py --record             # add the table to RESULTS.md

A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from demo_bench import copy_tree  # noqa: E402

# One training per process: the thread count is set before torch does any work, as in a rule.
WORKER = r"""
import json, sys, time
import pandas as pd, torch, yaml
from pathlib import Path
from anapart.partition.classify import train_classifier, predict_probabilities
from anapart.metrics.evaluate import auc_per_class, aauc
wd, net, fmt, frac, seed, threads, out = sys.argv[1:8]
torch.set_num_threads(int(threads))
from snakemake.utils import update_config
cfg = yaml.safe_load(open(Path(wd) / "config/config.yaml"))
for extra in sys.argv[8:]:
    update_config(cfg, yaml.safe_load(open(extra)))
classes = cfg["classes"]
c = dict(cfg["classify"], seed=int(seed))
crops = Path(wd) / "results/crops" / fmt
t0 = time.perf_counter()
hist = train_classifier(crops, Path(wd) / f"results/split/train_f{frac}.csv", classes, net, c, out, device="cpu",
                        preload_mb=c["preload_mb"])
seconds = time.perf_counter() - t0
pred, _, _ = predict_probabilities(out, crops, pd.read_csv(Path(wd) / "results/split/test.csv"), device="cpu")
m, _ = aauc(auc_per_class(pred["label"], pred[[f"p_{k}" for k in classes]].to_numpy(), classes))
print(json.dumps({"aauc": m, "seconds": seconds, "loss": hist}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="densenet121")
    ap.add_argument("--frac", default="100")
    ap.add_argument("--formats", nargs="+", default=["seg112", "seg224", "full"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--configfile", nargs="*", default=[])
    ap.add_argument("--workdir", type=Path, help="a demo run whose crops exist (default: build them in a temp copy)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/stability")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    extra = [str(Path(c).resolve()) for c in args.configfile]

    tmp = None
    wd = args.workdir
    if wd is None:
        tmp = Path(tempfile.mkdtemp(prefix="anapart-stab-"))
        wd = tmp / "repo"
        wd.mkdir()
        copy_tree(wd)
    if not (wd / "results/crops/qc.csv").exists():
        cmd = [sys.executable, "-m", "snakemake", "-c2", "results/crops/qc.csv", "results/split/test.csv"]
        subprocess.run(cmd + (["--configfile", *extra] if extra else []), cwd=wd, check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for fmt in args.formats:
        for seed in args.seeds:
            for th in args.threads:
                model = Path(tempfile.mkdtemp()) / "model.pt"
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", WORKER, str(wd), args.net, fmt, args.frac, str(seed),
                                       str(th), str(model), *extra], capture_output=True, text=True, check=True)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                runs.append({"fmt": fmt, "seed": seed, "threads": th, **r})
                shutil.rmtree(model.parent, ignore_errors=True)
                print(f"{fmt} seed {seed} threads {th}: aAUC {r['aauc']:.3f} ({time.perf_counter() - t0:.0f} s; "
                      f"loss {r['loss'][0]:.2f} -> {r['loss'][-1]:.2f})", flush=True)
    import numpy as np

    rows = []
    for fmt in args.formats:
        a = {(r["seed"], r["threads"]): r["aauc"] for r in runs if r["fmt"] == fmt}
        by_seed = [np.mean([a[(s, t)] for t in args.threads]) for s in args.seeds]
        all_runs = list(a.values())
        thread_delta = max(abs(a[(s, args.threads[0])] - a[(s, t)]) for s in args.seeds for t in args.threads)
        rows.append({"fmt": fmt, "mean": float(np.mean(all_runs)), "sd_all_runs": float(np.std(all_runs, ddof=1)),
                     "sd_across_seeds": float(np.std(by_seed, ddof=1)) if len(by_seed) > 1 else 0.0,
                     "max_thread_delta": float(thread_delta), "n": len(all_runs)})
    (args.out / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    table = ["| format | runs | mean aAUC | SD (all runs) | SD across seeds | max change 1 vs 2 threads |",
             "| --- | --- | --- | --- | --- | --- |"]
    table += [f"| {r['fmt']} | {r['n']} | {r['mean']:.3f} | {r['sd_all_runs']:.3f} | {r['sd_across_seeds']:.3f} | "
              f"{r['max_thread_delta']:.3f} |" for r in rows]
    print(f"\n{args.net} at f{args.frac}, seeds {args.seeds}, threads {args.threads}\n" + "\n".join(table))
    if args.record:
        with open(REPO / "benchmarks/RESULTS.md", "a") as fh:
            fh.write(f"\n{args.net} at f{args.frac}, seeds {args.seeds}, threads {args.threads}:\n\n" +
                     "\n".join(table) + "\n")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
