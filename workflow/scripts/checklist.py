"""Glue: the reporting checklist from the run's files (logic in anapart.report.checklist)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

from anapart.report import provenance
from anapart.report.checklist import build, unflat
from anapart.io.files import start_job, write_csv

log = start_job(snakemake)
table = build(unflat(dict(snakemake.input.items())), snakemake.params.config,
              software=provenance.collect(Path.cwd()))  # the run's folder: the workflow's checkout
write_csv(snakemake.output[0], table)
log.info("checklist: %d items", len(table))
