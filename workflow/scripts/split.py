"""Glue: patient-level split, validation patients and nested training subsets (logic in anapart.cohort.split)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.cohort.split import make_split
from anapart.io.files import start_job

start_job(snakemake)
s = snakemake.params.split
make_split(
    pd.read_csv(snakemake.input.manifest),
    dict(snakemake.output),
    classes=snakemake.params.classes,
    test_fraction=s["test_fraction"],
    fractions=s["fractions"],
    seed=s["seed"],
    validation_fraction=s["validation_fraction"],
)
