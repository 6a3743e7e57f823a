"""Glue: one result CSV as an HTML table for the report (logic in anapart.report.tables)."""
from anapart.io.files import start_job, write_text
from anapart.report.tables import csv_to_html

log = start_job(snakemake)
write_text(snakemake.output[0], csv_to_html(snakemake.input[0], title=snakemake.wildcards.table,
                                            simulated=snakemake.params.simulated))
log.info("%s -> %s", snakemake.input[0], snakemake.output[0])
