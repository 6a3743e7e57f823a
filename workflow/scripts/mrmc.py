"""Glue: the MRMC analysis of the formats (logic in anapart.metrics.mrmc_formats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.metrics.mrmc_formats import format_mrmc
from anapart.metrics.stats import read_model_tables

log = start_job(snakemake)
table = format_mrmc(
    read_model_tables(snakemake.input.predictions),
    pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"],
    snakemake.params.classes,
)
write_csv(snakemake.output[0], table, float_format="%.5g")
log.info("\n%s", table[table["figure"] == "aauc"].to_string())
