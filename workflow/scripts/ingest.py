"""Glue: ingest the cohort the preflight planned into results/cohort (logic in anapart.cohort.preflight)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.cohort.preflight import ingest_plan
from anapart.io.files import start_job

start_job(snakemake)
c = snakemake.params.cohort
ingest_plan(
    snakemake.input.plan,
    dict(snakemake.output),
    classes=snakemake.params.classes,
    field=c["field"],
    percentiles=c["intensity_percentiles"],
)
