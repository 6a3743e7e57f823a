"""Classifier training: our loop vs a bare PyTorch loop, and our data path vs decoding DICOM.

1. Training step: ``anapart.learn.training.fit`` fed by ``CropData`` (memory-mapped store, resize,
   normalisation) against a bare ``for x, y in batches: zero_grad/forward/backward/step`` loop over
   the same model architecture and the same tensors already in memory. Target: <= 1.10x the bare
   loop's time per image.
2. Data path: producing a batch of network inputs from the crop store against decoding the DICOM
   files each time (pydicom read, rescale, resample to the field, normalise, resize). Target: >= 20x.

    python benchmarks/train_bench.py [--out benchmarks/out] [--net mobilenetv3_large_100] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from anapart import CLASSES
from anapart.io import dicom as dicom_io, dicom_scan
from anapart.learn import training
from anapart.learn.data import CropData
from anapart.partition.classify import build_classifier
from anapart.cohort.preflight import ingest  # noqa: E402
from anapart.io.store import intensity_window, normalise, to_field  # noqa: E402
from anapart.synthetic.partition import SyntheticConfig, generate  # noqa: E402
from anapart.cohort.series import SeriesRule  # noqa: E402

# the demo's intensity window (cohort.intensity_percentiles), for decoding straight from DICOM
PERCENTILES = tuple(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["cohort"]["intensity_percentiles"])


def demo_cohort(out: Path) -> Path:
    """The demo config's synthetic cohort, ingested once (the 'full' format store is images.npy)."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    store = out / "store"
    if not (store / "manifest.csv").exists():
        generate(out / "cohort", SyntheticConfig.from_dict(cfg["synthetic"]))
        paths = {k: store / f for k, f in (("images", "images.npy"), ("masks", "masks.npy"),
                                           ("manifest", "manifest.csv"), ("report", "ingest.json"))}
        ingest(out / "cohort" / "dicom", out / "cohort" / "labels.csv", None, paths, classes=CLASSES,
               field=cfg["cohort"]["field"], salt="bench", series=SeriesRule.from_config(cfg["cohort"]["series"]),
               percentiles=tuple(cfg["cohort"]["intensity_percentiles"]))
        man = pd.read_csv(store / "manifest.csv")
        pd.DataFrame({"slice_id": man["slice_id"], "row": man["row"]}).to_csv(store / "index.csv", index=False)
    return store


def bench_training(store: Path, net: str, input_size: int, batch: int, epochs: int, repeats: int) -> dict:
    man = pd.read_csv(store / "manifest.csv")
    lst = man[["slice_id", "label"]]
    data = CropData(store, lst, CLASSES, input_size, preload_mb=2048)  # as the demo trains
    x_all, y_all = data.batch(np.arange(len(data)))  # the same tensors, prepared once, for the bare loop
    n = len(data)

    def ours():
        torch.manual_seed(0)
        model = build_classifier(net, len(CLASSES))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        cfg = training.FitConfig(epochs=epochs, batch_size=batch, seed=0, device="cpu")
        t0 = time.perf_counter()
        training.fit(model, opt, F.cross_entropy, data.batch, n, cfg)
        return time.perf_counter() - t0

    def bare():
        torch.manual_seed(0)
        model = build_classifier(net, len(CLASSES))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        model.train()
        t0 = time.perf_counter()
        for _ in range(epochs):
            perm = torch.randperm(n)
            for b in range(0, n, batch):
                idx = perm[b:b + batch]
                opt.zero_grad()
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                loss.backward()
                opt.step()
        return time.perf_counter() - t0

    ours(), bare()  # warm-up (allocator, kernels)
    t_ours, t_bare = [], []
    for _ in range(repeats):  # interleaved, so drift hits both
        t_ours.append(ours())
        t_bare.append(bare())
    per = n * epochs
    res = {"net": net, "images_per_epoch": n, "epochs": epochs, "input_size": input_size, "batch": batch,
           "ours_ms_per_image": 1000 * statistics.median(t_ours) / per,
           "bare_ms_per_image": 1000 * statistics.median(t_bare) / per}
    res["ratio"] = res["ours_ms_per_image"] / res["bare_ms_per_image"]
    return res


def bench_data_path(store: Path, cohort: Path, input_size: int, batch: int, repeats: int) -> dict:
    man = pd.read_csv(store / "manifest.csv")
    data = CropData(store, man[["slice_id", "label"]], CLASSES, input_size, preload_mb=2048)
    streamed = CropData(store, man[["slice_id", "label"]], CLASSES, input_size)  # store too big to preload
    field = int(np.load(store / "images.npy", mmap_mode="r").shape[-1])
    series = {s.patient_id: s for s in dicom_scan.scan_series(cohort / "dicom").values()}
    labels = pd.read_csv(cohort / "labels.csv")
    files = []
    for row in labels.itertuples():
        s = series[row.patient_id]
        files.append(next(h for h in s.slices if h.instance == row.instance))
    rng = np.random.default_rng(0)
    idx = rng.choice(len(data), size=batch, replace=False)

    def ours():
        t0 = time.perf_counter()
        data.inputs(idx)
        return time.perf_counter() - t0

    def from_dicom():
        t0 = time.perf_counter()
        raw = [dicom_io.read_pixels(files[i].path) for i in idx]
        lo, hi = intensity_window(raw, PERCENTILES)
        x = torch.from_numpy(np.stack([normalise(to_field(a, field), lo, hi) for a in raw]))[:, None]
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True)
        _ = (x - 0.5) / 0.25
        return time.perf_counter() - t0

    def memmap():
        t0 = time.perf_counter()
        streamed.inputs(idx)
        return time.perf_counter() - t0

    ours(), memmap(), from_dicom()
    t_ours = statistics.median(ours() for _ in range(repeats))
    t_mm = statistics.median(memmap() for _ in range(repeats))
    t_dcm = statistics.median(from_dicom() for _ in range(repeats))
    return {"batch": batch, "preloaded_ms_per_image": 1000 * t_ours / batch,
            "memmap_ms_per_image": 1000 * t_mm / batch, "dicom_ms_per_image": 1000 * t_dcm / batch,
            "speedup": t_dcm / t_ours, "speedup_memmap": t_dcm / t_mm}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "train_bench")
    ap.add_argument("--nets", nargs="+", default=["mobilenetv3_large_100", "densenet121"])
    ap.add_argument("--input-size", type=int, default=56)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    store = demo_cohort(args.out)
    result = {"threads": args.threads, "training": [], "data_path": None}
    for net in args.nets:
        r = bench_training(store, net, args.input_size, args.batch, args.epochs, args.repeats)
        print(json.dumps(r), flush=True)
        result["training"].append(r)
    result["data_path"] = bench_data_path(store, args.out / "cohort", args.input_size, 64, 7)
    print(json.dumps(result["data_path"]), flush=True)
    result["targets"] = {
        "training_step_le_1.10x_bare": all(r["ratio"] <= 1.10 for r in result["training"]),
        "data_path_ge_20x_dicom": result["data_path"]["speedup"] >= 20,
    }
    (args.out.parent / "train_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
    main()
