"""Glue: train one segmentation model and score it on held-out slices (logic in anapart.partition.segment)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

from anapart.io.files import setup_logging
from anapart.partition.segment import train_segmenter
from anapart.learn.training import set_threads

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
train_segmenter(
    Path(snakemake.input.manifest).parent,
    snakemake.input.patients,
    snakemake.wildcards.arch,
    snakemake.params.seg,
    snakemake.output.model,
    snakemake.output.metrics,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
)
