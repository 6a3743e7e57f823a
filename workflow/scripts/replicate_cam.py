"""Glue: the Grad-CAM tests of formats on each (repeat, seed)'s pooled out-of-fold maps (logic in
anapart.metrics.replicates and anapart.metrics.cam_stats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.metrics.replicates import pool_out_of_fold, replicate_cam_tests

log = start_job(snakemake)
p = snakemake.params
pooled = pool_out_of_fold(snakemake.input.scores, p.folds)
patient_of = pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"]
table = replicate_cam_tests(pooled, patient_of, p.formats, alpha=p.alpha)
write_csv(snakemake.output[0], table)
log.info("\n%s", table[table["unit"] == "mixed"].drop(columns="note").to_string())
