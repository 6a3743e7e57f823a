"""Glue: agreement of human CAM scores with each other and with the automatic score (anapart.metrics.cam_stats)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.metrics.cam_stats import agreement, read_reviewer_scores
from anapart.metrics.stats import read_model_tables
from anapart.io.files import start_job, write_csv

log = start_job(snakemake)
frames = [
    s.assign(net=net, fmt=fmt, frac=frac)
    for (net, fmt, frac), s in read_model_tables(snakemake.input.scores).items()
]
table = agreement(read_reviewer_scores(snakemake.input.reviewers), pd.concat(frames, ignore_index=True))
write_csv(snakemake.output[0], table)
log.info("\n%s", table.to_string())
