"""Glue: Grad-CAM heatmaps of one staging model on its test patches (logic in anapart.staging)."""
from pathlib import Path

import pandas as pd

from anapart.files import setup_logging
from anapart.staging import cam_examples

log = setup_logging(snakemake.log[0])
scores = cam_examples(
    snakemake.input.model,
    Path(snakemake.input.images).parent,
    pd.read_csv(snakemake.input.predictions),
    snakemake.params.classes,
    snakemake.output.figure,
    snakemake.output.scores,
    threshold=snakemake.params.threshold,
)
log.info("mean ROI share of the bright map: %.3f", scores["roi_share"].mean())
