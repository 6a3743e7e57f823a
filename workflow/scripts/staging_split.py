"""Glue: patient-level 4:1 split of the staging patches (logic in anapart.cohort.split)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import atomic_paths, start_job
from anapart.cohort.split import split_staging

log = start_job(snakemake)
s = snakemake.params.split
lists = split_staging(
    pd.read_csv(snakemake.input.index),
    classes=snakemake.params.classes,
    test_fraction=s["test_fraction"],
    seed=s["seed"],
    validation_fraction=s["validation_fraction"],
)
keys = ("patients", "train", "validation", "test")
with atomic_paths(*(snakemake.output[k] for k in keys)) as tmps:
    for k, tmp in zip(keys, tmps):
        lists[k].to_csv(tmp, index=False, lineterminator="\n")
log.info({k: len(v) for k, v in lists.items()})
