"""Glue: the calibration table of all classifiers and one reliability diagram per image format
(panels: training fractions, internal test and external cohort; a curve per network).
Logic in anapart.metrics.calibration."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.metrics.calibration import calibration_table, reliability_figure, top_label, with_labels
from anapart.metrics.evaluate import probabilities, read_model_metrics
from anapart.io.figstyle import display
from anapart.io.files import start_job, write_csv

start_job(snakemake)
classes, n_bins = snakemake.params.classes, snakemake.params.bins
write_csv(snakemake.output.table, calibration_table(read_model_metrics(snakemake.input.metrics), classes),
          float_format="%.4f")
ext_manifest = pd.read_csv(snakemake.input.external_manifest) if "external_manifest" in snakemake.input.keys() else None


def curve(pred: pd.DataFrame):
    return top_label(pred["label"], probabilities(pred, classes), classes)


models = [tuple(k) for k in snakemake.params.models]  # (net, fmt, frac), in the order of the inputs
cohorts = [("internal test", dict(zip(models, snakemake.input.predictions)), lambda p: p)]
if ext_manifest is not None:  # the external predictions are blind: labels from its manifest
    cohorts.append(("external", dict(zip(models, snakemake.input.external_predictions)),
                    lambda p: with_labels(p, ext_manifest)))
for fmt in snakemake.params.formats:
    panels = {
        f"{display(fmt)}, {name}, {frac}%": {k[0]: curve(prepare(pd.read_csv(files[k])))
                                    for k in models if k[1] == fmt and int(k[2]) == int(frac)}
        for name, files, prepare in cohorts
        for frac in snakemake.params.fractions
    }
    reliability_figure(panels, n_bins, snakemake.output[f"reliability_{fmt}"], xlabel="confidence (top probability)",
                       ylabel="accuracy")
