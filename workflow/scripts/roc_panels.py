"""Glue: one fraction's multi-panel ROC figure (logic in anapart.metrics.roc_figures)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job
from anapart.metrics.roc_figures import roc_panels
from anapart.metrics.stats import model_key

log = start_job(snakemake)
ev = snakemake.params.evaluate
models = {}
for path in snakemake.input.predictions:
    net, fmt, _ = model_key(path)
    models[(net, fmt)] = pd.read_csv(path)
roc_panels(models, snakemake.params.classes, snakemake.params.nets, snakemake.params.formats, snakemake.wildcards.frac,
           snakemake.output.figure, patient_of=pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"],
           strata=pd.read_csv(snakemake.input.patients).set_index("patient")["group"], n_boot=ev["n_boot"],
           seed=ev["seed"], level=ev["ci_level"])
