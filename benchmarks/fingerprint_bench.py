"""Benchmark: what the stores' content fingerprints (anapart.io.fingerprint) add to ingest and crops.

Writes ``--slices`` float16 slices of ``--field`` px (and their packed masks) through the store
writer (:class:`anapart.io.store.NpyStreamWriter`, which hashes each block in a thread of its
own as it writes it) and the same blocks with plain writes and no hash (the baseline), then
hashes the store again from disk (:func:`anapart.io.fingerprint.file_fingerprint`, what the
'full' crop store costs), and scales both to the paper's store (12,832 slices of 512 px).

    PYTHONPATH=src .venv/bin/python benchmarks/fingerprint_bench.py [--slices 1600] [--repeats 3]

A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from anapart.io.fingerprint import file_fingerprint
from anapart.io.store import NpyStreamWriter

PAPER_SLICES = 12_832


def one_run(folder: Path, n: int, field: int, block: int) -> dict:
    rng = np.random.default_rng(0)
    slices = rng.random((block, field, field), dtype=np.float32).astype(np.float16)
    masks = rng.integers(0, 256, (block, 2, field, (field + 7) // 8), dtype=np.uint8)
    t0 = time.perf_counter()  # the baseline: the same blocks, plain writes, no hash
    with open(folder / "plain.npy", "wb") as fh:
        for start in range(0, n, block):
            k = min(block, n - start)
            fh.write(memoryview(slices[:k]).cast("B"))
            fh.write(memoryview(masks[:k]).cast("B"))
        fh.flush()
        os.fsync(fh.fileno())
    plain = time.perf_counter() - t0
    (folder / "plain.npy").unlink()
    t0 = time.perf_counter()
    img = NpyStreamWriter(folder / "images.npy", (n, field, field), np.float16)
    msk = NpyStreamWriter(folder / "masks.npy", (n, 2, field, (field + 7) // 8), np.uint8)
    for start in range(0, n, block):
        k = min(block, n - start)
        img.append(slices[:k])
        msk.append(masks[:k])
    img.close()
    msk.close()
    write = time.perf_counter() - t0
    t1 = time.perf_counter()
    for p in ("images.npy", "masks.npy"):
        file_fingerprint(folder / p)
    reread = time.perf_counter() - t1
    size = img.size + msk.size
    return {"bytes": size, "plain_write_s": plain, "write_s": write,
            "waited_for_hash_s": img.seconds_hash + msk.seconds_hash, "hash_from_disk_s": reread}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=1600)
    ap.add_argument("--field", type=int, default=512)
    ap.add_argument("--block", type=int, default=32, help="slices per write (one series)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    runs = []
    for _ in range(a.repeats):
        with tempfile.TemporaryDirectory(dir=".") as d:
            runs.append(one_run(Path(d), a.slices, a.field, a.block))
    for r in runs:  # paired within a run: the store writer against plain writes of the same blocks
        r["added_s"] = r["write_s"] - r["plain_write_s"]
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    scale = PAPER_SLICES / a.slices * (a.field == 512)
    out = {"slices": a.slices, "field": a.field, "store_MB": round(med["bytes"] / 1e6, 1),
           "median": {k: round(v, 2) for k, v in med.items() if k != "bytes"},
           "hash_MB_per_s": round(med["bytes"] / 1e6 / med["hash_from_disk_s"]),
           "runs": [{k: round(v, 2) for k, v in r.items() if k != "bytes"} for r in runs]}
    if scale:
        out["paper_store_GB"] = round(med["bytes"] * scale / 1e9, 2)
        out["paper_added_s"] = round(med["added_s"] * scale, 1)
        out["paper_waited_for_hash_s"] = round(med["waited_for_hash_s"] * scale, 1)
        out["paper_hash_from_disk_s"] = round(med["hash_from_disk_s"] * scale, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
