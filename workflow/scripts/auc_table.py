"""Glue: the table of all classifiers and the grouped aAUC bar chart (logic in anapart.stats)."""
from anapart.evaluate import read_model_metrics
from anapart.files import setup_logging, write_csv
from anapart.stats import bar_chart, model_table

setup_logging(snakemake.log[0])
table = model_table(read_model_metrics(snakemake.input), snakemake.params.classes)
write_csv(snakemake.output.table, table, float_format="%.4f")
bar_chart(table, snakemake.params.formats, snakemake.params.fractions, snakemake.output.bars)
