"""Glue: DICOM + ROI masks -> patch store of one preprocessing arm (logic in anapart.staging.patches)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.cohort.pseudonyms import salt_of
from anapart.io.files import start_job
from anapart.staging.patches import make_patches

start_job(snakemake)
prm = snakemake.params
p = prm.patches
# a synthetic cohort's paths come as params, a user's folders as the job's inputs
paths = {**prm.paths, **{k: v for k, v in snakemake.input.items() if k in ("dicom", "labels", "roi")}}
make_patches(
    paths["dicom"],
    paths["labels"],
    paths["roi"],
    dict(snakemake.output),
    classes=prm.classes,
    sequences=prm.sequences,
    size=p["size"],
    margin=p["margin"],
    min_side=p["min_side"],
    salt=salt_of(snakemake.config, prm.salt["of"]),
    clahe_cfg=prm.clahe,  # None for the raw arm
    percentiles=p["intensity_percentiles"],
)
