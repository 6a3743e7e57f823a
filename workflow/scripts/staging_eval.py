"""Glue: per-stage metrics, calibration (Brier, ECE of P(advanced stage)) and confusion matrix of one
staging method (logic in anapart.staging.ensemble; calibration in anapart.metrics.calibration)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json

import pandas as pd

from anapart.metrics.calibration import binary_calibration_metrics
from anapart.staging.ensemble import confusion_figure, evaluate_stages
from anapart.io.figstyle import display
from anapart.io.files import start_job, write_text

log = start_job(snakemake)
name, classes = snakemake.wildcards.name, snakemake.params.classes
pred = pd.read_csv(snakemake.input.predictions)
m = evaluate_stages(pred, classes)
m.update(binary_calibration_metrics(pred, classes, n_bins=snakemake.params.bins))
m["method"] = name
write_text(snakemake.output.metrics, json.dumps(m, indent=2) + "\n")
confusion_figure(m, f"{display(name)}: accuracy {m['accuracy']:.2f}", snakemake.output.confusion)
log.info("%s: accuracy %.3f, Brier %.3f, ECE %.3f", name, m["accuracy"], m["brier"], m["ece"])
