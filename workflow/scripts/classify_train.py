"""Glue: train one classifier (logic in anapart.classify, loop in anapart.training)."""
from pathlib import Path

from anapart.classify import train_classifier
from anapart.files import setup_logging
from anapart.training import set_threads

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
train_classifier(
    Path(snakemake.input.images).parent,
    snakemake.input.train,
    snakemake.params.classes,
    snakemake.wildcards.net,
    snakemake.params.cfg,
    snakemake.output.model,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
)
