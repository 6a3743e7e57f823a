"""Glue: the segmentation QC figure (logic in anapart.partition.segment.qc_figure)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

from anapart.io.files import start_job
from anapart.partition.segment import qc_figure

start_job(snakemake)
qc_figure(
    Path(snakemake.input.manifest).parent,
    snakemake.input.patients,
    dict(zip(snakemake.params.archs, snakemake.input.models)),
    snakemake.output[0],
    device=snakemake.params.device,
    threshold=snakemake.params.threshold,
)
