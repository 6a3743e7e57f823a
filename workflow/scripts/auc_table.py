"""Glue: the table of all classifiers and the grouped aAUC bar chart (logic in anapart.stats)."""
import json
from pathlib import Path

from anapart.files import setup_logging, write_csv
from anapart.stats import bar_chart, model_table

setup_logging(snakemake.log[0])
metrics = {}
for path in snakemake.input:
    m = json.loads(Path(path).read_text())
    metrics[(m["net"], m["fmt"], m["frac"])] = m
table = model_table(metrics, snakemake.params.classes)
write_csv(snakemake.output.table, table, float_format="%.4f")
bar_chart(table, snakemake.params.formats, snakemake.params.fractions, snakemake.output.bars)
