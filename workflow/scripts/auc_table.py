"""Glue: the table of all classifiers, the paper's group numbers and the bar chart (logic in anapart.metrics.stats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.metrics.evaluate import read_model_metrics
from anapart.io.files import start_job, write_csv
from anapart.metrics.stats import auc_groups, bar_chart, model_table

log = start_job(snakemake)
table = model_table(read_model_metrics(snakemake.input), snakemake.params.classes)
write_csv(snakemake.output.table, table, float_format="%.4f")
groups = auc_groups(table, snakemake.params.classes)
write_csv(snakemake.output.groups, groups, float_format="%.4f")
bar_chart(groups, snakemake.params.formats, snakemake.params.fractions, snakemake.output.bars)
log.info("\n%s", groups.to_string())
