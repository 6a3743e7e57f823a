"""Glue: CAM score summary per model and the t-tests between formats (logic in anapart.cam)."""
from pathlib import Path

import pandas as pd

from anapart.cam import format_ttests, summarize
from anapart.files import setup_logging, write_csv

log = setup_logging(snakemake.log[0])
scores = {}
for path in snakemake.input:
    p = Path(path)
    net, fmt, frac = p.parts[-4], p.parts[-3], int(p.parts[-2].removeprefix("f"))
    scores[(net, fmt, frac)] = pd.read_csv(p)
write_csv(snakemake.output.scores, summarize(scores))
tt = format_ttests(scores)
write_csv(snakemake.output.ttest, tt)
log.info("\n%s", tt.to_string())
