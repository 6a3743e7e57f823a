"""Glue: every classifier on the external cohort vs its internal test set, and the figure
(logic in anapart.partition.external)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.metrics.evaluate import read_model_metrics
from anapart.partition.external import external_figure, external_table
from anapart.io.files import start_job, write_csv

log = start_job(snakemake)
table = external_table(read_model_metrics(snakemake.input), snakemake.params.classes)
write_csv(snakemake.output.table, table, float_format="%.4f")
external_figure(table, snakemake.params.formats, snakemake.params.fractions, snakemake.output.figure)
for fmt, g in table.groupby("fmt"):
    log.info("%s: mean aAUC internal %.3f, external %.3f (delta %.3f)", fmt, g["aauc_internal"].mean(),
             g["aauc_external"].mean(), g["delta"].mean())
