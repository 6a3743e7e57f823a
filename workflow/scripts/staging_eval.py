"""Glue: per-stage metrics and confusion matrix of one staging method (logic in anapart.staging)."""
import json

import pandas as pd

from anapart.files import setup_logging, write_text
from anapart.evaluate import confusion_figure, evaluate_stages

log = setup_logging(snakemake.log[0])
name = snakemake.wildcards.name
m = evaluate_stages(pd.read_csv(snakemake.input.predictions), snakemake.params.classes)
m["method"] = name
write_text(snakemake.output.metrics, json.dumps(m, indent=2) + "\n")
confusion_figure(m, f"{name}: accuracy {m['accuracy']:.2f}", snakemake.output.confusion)
log.info("%s: accuracy %.3f", name, m["accuracy"])
