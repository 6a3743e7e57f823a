"""Glue: Grad-CAM heatmaps of one staging model on its test patches (logic in anapart.partition.cam)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

import pandas as pd

from anapart.staging.cam import staging_cam_examples
from anapart.io.files import start_job

log = start_job(snakemake)
scores = staging_cam_examples(
    snakemake.input.model,
    Path(snakemake.input.images).parent,
    pd.read_csv(snakemake.input.predictions),
    snakemake.params.classes,
    snakemake.output.figure,
    snakemake.output.scores,
    threshold=snakemake.params.threshold,
)
log.info("mean ROI share of the bright map: %.3f", scores["roi_share"].mean())
