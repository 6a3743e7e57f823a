"""Glue: DICOM + ROI masks -> patch store of one preprocessing arm (logic in anapart.staging)."""
from anapart.files import setup_logging
from anapart.staging import make_patches

setup_logging(snakemake.log[0])
stg, paths, pre = snakemake.params.stg, snakemake.params.paths, snakemake.wildcards.pre
p = stg["patches"]
make_patches(
    paths["dicom"],
    paths["labels"],
    paths["roi"],
    dict(snakemake.output),
    classes=stg["classes"],
    sequences=stg["sequences"],
    size=p["size"],
    margin=p["margin"],
    min_side=p["min_side"],
    salt=stg["cohort"]["pseudonym_salt"],
    clahe_cfg=stg["clahe"] if pre == "clahe" else None,
    percentiles=p.get("intensity_percentiles", (0.5, 99.5)),
)
