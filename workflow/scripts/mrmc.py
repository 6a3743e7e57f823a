"""Glue: the MRMC analysis of the formats (logic in anapart.metrics.mrmc_formats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.metrics.mrmc_formats import format_mrmc
from anapart.metrics.replicates import spread_figure
from anapart.metrics.stats import read_model_tables

log = start_job(snakemake)
p = snakemake.params
table = format_mrmc(
    read_model_tables(snakemake.input.predictions),
    pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"],
    p.classes,
    alpha=p.alpha,
    interaction=tuple(s.strip() for s in p.primary.split(" - ")) if p.interaction else None,
    interaction_figure=p.figure,
)
write_csv(snakemake.output.table, table, float_format="%.5g")
# one point per contrast (the single split as the replicate figure's one replicate), read as the primary
spread_figure(table.assign(repeat=0, seed=0), "aauc", "RRRC", snakemake.output.figure,
              primary=snakemake.params.primary, label=lambda r, s: "single split")
log.info("\n%s", table[table["figure"] == "aauc"].to_string())
