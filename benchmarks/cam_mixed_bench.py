"""Benchmark: time and peak memory of the CAM mixed model (anapart.metrics.cam_stats.mixed_tests) at paper scale.

Study A scored 31,728 Grad-CAM maps: 4 networks x 3 formats at 100%, about 600 test patients.
This simulates per-slice scores of that shape (every model scores about 2,640 slices, ~4.4 per
patient; network, network x format and patient effects, no format effect) and runs
``mixed_tests`` on its four tested scores, the work of the ``cam_stats`` rule, in this process.

    PYTHONPATH=src .venv/bin/python benchmarks/cam_mixed_bench.py [--patients 600] [--slices 31728]

A benchmark, not a test: nothing here asserts. Peak RSS is the process's (ru_maxrss).
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import pandas as pd

from anapart.metrics.cam_stats import TESTED, mixed_tests
from anapart.metrics.stats import format_pairs


def simulate(patients: int, slices: int, nets: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    formats = ["full", "seg112", "seg224"]
    models = [(f"n{i}", f) for i in range(nets) for f in formats]
    per_model = slices // len(models)
    net_eff = rng.normal(0, 0.05, nets)
    nf_eff = rng.normal(0, 0.05, (nets, len(formats)))
    pat_eff = rng.normal(0, 0.1, patients)
    slice_patient = rng.integers(0, patients, size=per_model * 2)  # a test pool; each model keeps its correct ones
    frames = []
    for i in range(nets):
        for j, fmt in enumerate(formats):
            chosen = np.sort(rng.choice(len(slice_patient), per_model, replace=False))
            p = slice_patient[chosen]
            v = 0.3 + net_eff[i] + nf_eff[i, j] + pat_eff[p] + rng.normal(0, 0.15, per_model)
            frame = pd.DataFrame({"net": f"n{i}", "fmt": fmt, "frac": 100, "slice_id": [f"S{c}" for c in chosen],
                                  "patient": [f"P{q}" for q in p]})
            for k, col in enumerate(TESTED):
                frame[col] = np.clip(v + rng.normal(0, 0.02 * k, per_model), -1, 1)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=600)
    ap.add_argument("--slices", type=int, default=31728)
    ap.add_argument("--nets", type=int, default=4)
    args = ap.parse_args()
    long = simulate(args.patients, args.slices, args.nets)
    pairs = format_pairs(["full", "seg112", "seg224"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = mixed_tests(long, pairs)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{len(long)} slice rows, {long['patient'].nunique()} patients, {args.nets} networks x 3 formats: "
          f"mixed_tests on {len(TESTED)} scores in {wall:.1f} s ({wall / len(TESTED):.1f} s per score); "
          f"peak RSS {peak / 1024:.0f} MiB (before the fits {before / 1024:.0f} MiB)")
    print(out[["score", "contrast", "estimate", "statistic", "df", "p", "n"]].to_string())
    print(out["note"].iloc[0])


if __name__ == "__main__":
    main()
