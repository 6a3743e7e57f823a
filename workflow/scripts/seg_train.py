"""Glue: train one segmentation model and score it on held-out slices (logic in anapart.partition.segment)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.runtime.devices import claim

claim()  # with --resources gpu=K: this job's own GPU (CUDA_VISIBLE_DEVICES), before CUDA starts

from pathlib import Path

from anapart.io.files import start_job
from anapart.partition.segment import train_segmenter
from anapart.learn.training import set_threads

start_job(snakemake, snakemake.params.checkpoint)
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
