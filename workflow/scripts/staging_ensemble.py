"""Glue: stage two, soft voting of the single models' probabilities (logic in anapart.staging.ensemble)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.staging.ensemble import soft_vote
from anapart.io.files import start_job, write_csv

log = start_job(snakemake)
frames = [pd.read_csv(p) for p in snakemake.input]
write_csv(snakemake.output.predictions, soft_vote(frames, snakemake.params.classes))
log.info("soft vote of %d models over %d patches", len(frames), len(frames[0]))
