"""Glue: patient-level split, validation patients and nested training subsets (logic in anapart.cohort.split).

The single split (rule split) or one fold of one repeat of the replicate grid (rule
split_replicate, params.replicate).
"""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.cohort.split import make_fold_split, make_split
from anapart.io.files import start_job

start_job(snakemake)
s = snakemake.params.split
common = dict(classes=snakemake.params.classes, fractions=s["fractions"], seed=s["seed"],
              validation_fraction=s["validation_fraction"])
manifest = pd.read_csv(snakemake.input.manifest)
if "replicate" in snakemake.params.keys():
    make_fold_split(manifest, dict(snakemake.output), **common, **snakemake.params.replicate)
else:
    make_split(manifest, dict(snakemake.output), test_fraction=s["test_fraction"], **common)
