"""Glue: the report's front page, both studies' primary endpoints first (logic in anapart.report.front)."""
from pathlib import Path

import pandas as pd

from anapart.io.files import start_job, write_text
from anapart.report import front, provenance

log = start_job(snakemake)
inp = snakemake.input
patients = pd.read_csv(inp.patients)
n_test = (int((patients["split"] == "test").sum()), len(pd.read_csv(inp.test)))
sample_size = Path(inp.sample_size).read_text() if "sample_size" in inp.keys() else None
prov = provenance.collect(Path.cwd())  # the run's folder: the workflow's checkout
text = front.page(
    table=pd.read_csv(inp.primary),
    auc=pd.read_csv(inp.auc),
    n_test=n_test,
    ci_level=snakemake.params.ci_level,
    config=snakemake.params.config,
    prov=prov,
    template=Path(inp.template).read_text(),
    claims=pd.read_csv(inp.claims) if "claims" in inp.keys() else None,
    sample_size=sample_size,
)
write_text(snakemake.output[0], text)
log.info("front page: %s", provenance.software_line(prov))
