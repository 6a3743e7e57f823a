"""Glue: the declared primary endpoint and the secondary family (logic in anapart.report.primary;
the report's front page is rule front_page's)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.report.primary import headline, primary_table

log = start_job(snakemake)
inp = snakemake.input
cam = pd.read_csv(inp.cam_tests) if "cam_tests" in inp.keys() else None
if cam is not None and "repeat" in cam:  # replicates: the declared replicate's pooled maps
    r, s = snakemake.params.replicate
    cam = cam[(cam["repeat"] == r) & (cam["seed"] == s)]
table = primary_table(
    pd.read_csv(inp.mrmc),
    snakemake.params.primary,
    spread=pd.read_csv(inp.spread) if "spread" in inp.keys() else None,
    cam_tests=cam,
)
write_csv(snakemake.output.table, table, float_format="%.5g")
text = headline(table, snakemake.params.ci_level)
log.info("%s", text)
