"""Glue: CAM score summary per model and the format tests, each labelled with its unit (logic in anapart.metrics.cam_stats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.metrics.cam_stats import cam_tests, summarize
from anapart.io.files import start_job, write_csv
from anapart.metrics.stats import read_model_tables

log = start_job(snakemake)
scores = read_model_tables(snakemake.input.scores)
write_csv(snakemake.output.scores, summarize(scores))
tests = cam_tests(
    scores,
    pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"],
    snakemake.params.formats,
    alpha=snakemake.params.alpha,  # intervals at evaluate.ci_level, as mrmc.csv's
)
write_csv(snakemake.output.tests, tests)
log.info("\n%s", tests.drop(columns="note").to_string())
