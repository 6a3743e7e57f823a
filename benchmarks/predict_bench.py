"""Benchmark: ``anapart predict`` on CPU, seconds per 100 slices (and peak memory).

Runs :func:`anapart.export.predict.predict_cohort` in this process on a cohort folder with a model
package, on the CPU (one torch thread per core unless --threads), and reports the wall time of the
whole call (preflight, ingest, segmentation, crops, classifier, outputs) per 100 predicted slices.

    PYTHONPATH=src .venv/bin/python benchmarks/predict_bench.py results/package/model.zip \
        --nifti ../shared/data/lgg-nifti --salt env:BENCH_SALT [--repeats 2]

A benchmark, not a test: nothing here asserts. Peak RSS is the process's (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from anapart.export.archive import open_package
from anapart.export.predict import Cohort, predict_cohort, read_cohort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dicom")
    src.add_argument("--nifti")
    src.add_argument("--cohort")
    ap.add_argument("--salt", default="env:BENCH_SALT")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    os.environ.setdefault("BENCH_SALT", "benchmark-salt")
    if a.threads:
        torch.set_num_threads(a.threads)
    pkg = open_package(a.package)
    cohort = read_cohort(a.cohort) if a.cohort else Cohort("nifti" if a.nifti else "dicom", Path(a.nifti or a.dicom))
    times, run = [], {}
    for _ in range(a.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run = predict_cohort(pkg, cohort, Path(tmp) / "out", salt=a.salt, device="cpu", progress=lambda m: None)
            times.append(time.perf_counter() - t0)
    best = min(times)
    print(json.dumps({"package_models": run["models"], "patients": run["patients"], "slices": run["slices"],
                      "seconds": [round(t, 2) for t in times], "seconds_per_100_slices": round(100 * best / run["slices"], 2),
                      "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}, indent=2))


if __name__ == "__main__":
    main()
