"""Glue: the formats side by side on one test slice (logic in anapart.partition.crop_figure)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

from anapart.io.files import start_job
from anapart.partition.crop_figure import crop_example_figure

log = start_job(snakemake)
crops = {fmt: Path(index).parent for fmt, index in zip(snakemake.params.formats, snakemake.input.indexes)}
crop_example_figure(Path(snakemake.input.manifest).parent, crops, snakemake.input.patients, snakemake.output.figure)
