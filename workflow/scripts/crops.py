"""Glue: predict the region on every slice with the selected model and cut the format stores.

For the external cohort (input training_manifest: the main store) the fallback centre is the main
cohort's training prior.
"""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json
from pathlib import Path

from anapart.io.store import load_store
from anapart.partition.crop import make_crops
from anapart.io.files import start_job
from anapart.partition.segment import build_model, predict_regions
from anapart.learn.training import load_model, set_threads

log = start_job(snakemake)
set_threads(snakemake.threads)
cohort_dir = Path(snakemake.input.manifest).parent
arch = json.loads(Path(snakemake.input.selected).read_text())["selected"]
model_path = next(p for p in snakemake.input.models if Path(p).parent.name == arch)
model, meta = load_model(model_path, build_model)
log.info("cropping with %s (%s)", arch, model_path)
_, images, _ = load_store(cohort_dir)
predicted = [
    (c, area)
    for _, c, area in predict_regions(
        model, images, meta["input_size"], 32, snakemake.params.device, snakemake.params.threshold
    )
]
out = {
    fmt: {
        k: getattr(snakemake.output, f"{fmt}_{k}")
        for k in ("images", "index", "fingerprint")
        if f"{fmt}_{k}" in snakemake.output.keys()
    }
    for fmt in snakemake.params.formats
}
make_crops(
    cohort_dir,
    snakemake.input.patients,
    predicted,
    out,
    snakemake.output.qc,
    formats=snakemake.params.formats,
    sizes=snakemake.params.crop["sizes"],
    pad_value=snakemake.params.crop["pad_value"],
    training_cohort=(
        Path(snakemake.input.training_manifest).parent if "training_manifest" in snakemake.input.keys() else None
    ),
)
