"""Glue: reliability diagram of study B's models, the ensemble and radiomics on the test patches:
predicted probability of the advanced stage vs its observed share (logic in anapart.metrics.calibration)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.metrics.calibration import positive_class, reliability_figure
from anapart.io.files import start_job

start_job(snakemake)
classes, names = snakemake.params.classes, snakemake.params.names
advanced = classes[-1]
curves = {n: positive_class(pd.read_csv(p), advanced) for n, p in zip(names, snakemake.input)}
singles = {n: c for n, c in curves.items() if n not in ("ensemble", "radiomics")}
combined = {n: c for n, c in curves.items() if n in ("ensemble", "radiomics")}
reliability_figure({"single models": singles, "ensemble and radiomics": combined}, snakemake.params.bins,
                   snakemake.output[0], xlabel=f"predicted P({advanced})", ylabel=f"observed share {advanced}")
