"""Glue: agreement of human CAM scores with each other and with the automatic score (anapart.cam)."""
from pathlib import Path

import pandas as pd

from anapart.cam import agreement, read_reviewer_scores
from anapart.files import setup_logging, write_csv

log = setup_logging(snakemake.log[0])
frames = []
for path in snakemake.input.scores:
    p = Path(path)
    frames.append(pd.read_csv(p).assign(net=p.parts[-4], fmt=p.parts[-3], frac=int(p.parts[-2][1:])))
table = agreement(read_reviewer_scores(snakemake.input.reviewers), pd.concat(frames, ignore_index=True))
write_csv(snakemake.output[0], table)
log.info("\n%s", table.to_string())
