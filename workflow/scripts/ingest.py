"""Glue: ingest the cohort into results/cohort (logic in anapart.cohort)."""
from anapart.cohort import ingest
from anapart.files import setup_logging

setup_logging(snakemake.log[0])
p, c = snakemake.params.paths, snakemake.params.cohort
ingest(
    p["dicom"],
    p["labels"],
    p["masks"],
    dict(snakemake.output),
    classes=snakemake.params.classes,
    field=c["field"],
    salt=c["pseudonym_salt"],
    percentiles=c.get("intensity_percentiles", (0.5, 99.5)),
    mask_names=c.get("mask_names"),
)
