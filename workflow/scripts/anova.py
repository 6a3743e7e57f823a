"""Glue: ANOVA and post-hoc tests of per-class AUCs (logic in anapart.metrics.stats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.metrics.stats import anova_tables, auc_long

log = start_job(snakemake)
long = auc_long(pd.read_csv(snakemake.input[0]), snakemake.params.classes)
anova, posthoc = anova_tables(long)
write_csv(snakemake.output.anova, anova)
write_csv(snakemake.output.posthoc, posthoc)
log.info("\n%s", anova.to_string())
