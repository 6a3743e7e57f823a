"""Glue: the model package of the configured classifier (logic in anapart.export.build)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json
from pathlib import Path

from anapart.export.build import build_package
from anapart.io.files import start_job

log = start_job(snakemake)
arch = json.loads(Path(snakemake.input.seg_selected).read_text())["selected"]
seg_model = next(p for p in snakemake.input.seg_models if Path(p).parent.name == arch)
d = build_package(
    snakemake.output[0],
    config=snakemake.config,
    seg_model=seg_model,
    classifier_model=snakemake.input.model,
    metrics_json=snakemake.input.metrics,
    cohort_dir=Path(snakemake.input.manifest).parent,
    patients_csv=snakemake.input.patients,
    train_csv=snakemake.input.train,
    test_csv=snakemake.input.test,
    check_json=snakemake.input.check,
    lock_file=snakemake.input.lock,
)
log.info("packaged %s with segmentation %s -> %s", snakemake.params.choice, arch, snakemake.output[0])
