"""Glue: radiomics baseline on the ROI patches (logic in anapart.staging.radiomics)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json
from pathlib import Path

from anapart.io.files import start_job, write_csv, write_text
from anapart.staging.radiomics import radiomics_baseline

start_job(snakemake)
patches = Path(snakemake.input.images).parent  # staging.radiomics.preprocessing: raw (default) or clahe
pred, info = radiomics_baseline(
    patches,
    snakemake.input.train,
    snakemake.input.test,
    snakemake.input.index,
    snakemake.params.classes,
    snakemake.params.settings,
)
info["patches"] = patches.as_posix()
write_csv(snakemake.output.predictions, pred)
write_text(snakemake.output.info, json.dumps(info, indent=2) + "\n")
