"""Glue: DICOM + ROI masks -> patch store of one preprocessing arm (logic in anapart.staging.patches)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.io.files import setup_logging
from anapart.staging.patches import make_patches

setup_logging(snakemake.log[0])
prm = snakemake.params
p = prm.patches
make_patches(
    prm.paths["dicom"],
    prm.paths["labels"],
    prm.paths["roi"],
    dict(snakemake.output),
    classes=prm.classes,
    sequences=prm.sequences,
    size=p["size"],
    margin=p["margin"],
    min_side=p["min_side"],
    salt=prm.salt,
    clahe_cfg=prm.clahe,  # None for the raw arm
    percentiles=p["intensity_percentiles"],
)
