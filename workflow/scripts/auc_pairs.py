"""Glue: paired ΔaAUC between formats per network and fraction (logic in anapart.metrics.stats/evaluate)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.metrics.stats import auc_pairs, read_model_tables

log = start_job(snakemake)
ev = snakemake.params.evaluate
table = auc_pairs(
    read_model_tables(snakemake.input.predictions),
    pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"],
    pd.read_csv(snakemake.input.patients).set_index("patient")["group"].to_dict(),
    snakemake.params.classes,
    snakemake.params.formats,
    n_boot=ev["n_boot"],
    seed=ev["seed"],
    level=ev["ci_level"],
)
write_csv(snakemake.output[0], table, float_format="%.5g")
log.info("\n%s", table.to_string())
