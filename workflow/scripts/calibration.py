"""Glue: the calibration table of all classifiers and one reliability diagram per image format
(panels: training fractions, internal test and external cohort; a curve per network).
Logic in anapart.evaluate."""
import json
from pathlib import Path

import pandas as pd

from anapart.evaluate import calibration_table, reliability_figure, top_label, with_labels
from anapart.files import setup_logging, write_csv

setup_logging(snakemake.log[0])
classes, n_bins = snakemake.params.classes, snakemake.params.bins
metrics = {}
for path in snakemake.input.metrics:
    m = json.loads(Path(path).read_text())
    metrics[(m["net"], m["fmt"], m["frac"])] = m
write_csv(snakemake.output.table, calibration_table(metrics, classes), float_format="%.4f")
ext_manifest = pd.read_csv(snakemake.input.external_manifest) if "external_manifest" in snakemake.input.keys() else None
cols = [f"p_{c}" for c in classes]


def curve(pred: pd.DataFrame):
    return top_label(pred["label"], pred[cols].to_numpy(), classes)


models = [tuple(k) for k in snakemake.params.models]  # (net, fmt, frac), in the order of the inputs
internal = dict(zip(models, snakemake.input.predictions))
external = dict(zip(models, snakemake.input.get("external_predictions", [])))
for fmt in snakemake.params.formats:
    panels = {}
    for frac in snakemake.params.fractions:
        nets = [k for k in models if k[1] == fmt and int(k[2]) == int(frac)]
        panels[f"{fmt}, internal test, {frac}%"] = {k[0]: curve(pd.read_csv(internal[k])) for k in nets}
    if ext_manifest is not None:
        for frac in snakemake.params.fractions:
            nets = [k for k in models if k[1] == fmt and int(k[2]) == int(frac)]
            panels[f"{fmt}, external, {frac}%"] = {
                k[0]: curve(with_labels(pd.read_csv(external[k]), ext_manifest)) for k in nets
            }
    reliability_figure(panels, n_bins, snakemake.output[f"reliability_{fmt}"], xlabel="confidence (top probability)",
                       ylabel="accuracy")
