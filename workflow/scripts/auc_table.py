"""Glue: the table of all classifiers, the paper's group numbers and the bar chart (logic in anapart.stats)."""
import json
from pathlib import Path

from anapart.files import setup_logging, write_csv
from anapart.stats import auc_groups, bar_chart, model_table

log = setup_logging(snakemake.log[0])
metrics = {}
for path in snakemake.input:
    m = json.loads(Path(path).read_text())
    metrics[(m["net"], m["fmt"], m["frac"])] = m
table = model_table(metrics, snakemake.params.classes)
write_csv(snakemake.output.table, table, float_format="%.4f")
groups = auc_groups(table, snakemake.params.classes)
write_csv(snakemake.output.groups, groups, float_format="%.4f")
bar_chart(groups, snakemake.params.formats, snakemake.params.fractions, snakemake.output.bars)
log.info("\n%s", groups.to_string())
