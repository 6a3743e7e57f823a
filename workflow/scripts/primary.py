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
if cam is not None and "repeat" in cam:  # replicates: OR-RRRC over every replicate, the declared one's mixed model
    r, s = snakemake.params.replicate
    every = (cam["repeat"].astype(str) == "all") & (cam["unit"] == "OR-RRRC")
    declared = (cam["repeat"].astype(str) == str(r)) & (cam["seed"].astype(str) == str(s)) & (cam["unit"] != "OR-RRRC")
    cam = cam[every | declared]
table = primary_table(
    pd.read_csv(inp.mrmc),
    snakemake.params.primary,
    spread=pd.read_csv(inp.spread) if "spread" in inp.keys() else None,
    cam_tests=cam,
    alpha=round(1 - snakemake.params.ci_level, 10),
    interaction=snakemake.params.interaction,
)
write_csv(snakemake.output.table, table, float_format="%.5g")
text = headline(table, snakemake.params.ci_level)
log.info("%s", text)
