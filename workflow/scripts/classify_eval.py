"""Glue: test-cohort predictions, AUC metrics and ROC figure of one classifier."""
from pathlib import Path

import pandas as pd

from anapart.classify import predict_probabilities
from anapart.evaluate import evaluate_predictions, roc_figure, write_metrics
from anapart.files import setup_logging, write_csv
from anapart.training import set_threads

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
ev = snakemake.params.evaluate
pred, _, meta = predict_probabilities(
    snakemake.input.model,
    Path(snakemake.input.images).parent,
    pd.read_csv(snakemake.input.test),
    device=snakemake.params.device,
)
metrics = evaluate_predictions(
    pred,
    pd.read_csv(snakemake.input.manifest),
    meta["classes"],
    n_boot=ev.get("n_boot", 1000),
    seed=ev.get("seed", 0),
    level=ev.get("ci_level", 0.95),
)
w = snakemake.wildcards
metrics.update(net=w.net, fmt=w.fmt, frac=int(w.frac))
write_csv(snakemake.output.predictions, pred)
write_metrics(snakemake.output.metrics, metrics)
roc_figure(
    pred,
    meta["classes"],
    f"{w.net} {w.fmt} {w.frac}%: aAUC {metrics['aauc']:.3f}",
    snakemake.output.roc,
)
log.info("aAUC %.3f ± %.3f, CI %s", metrics["aauc"], metrics["aauc_sd"], metrics["aauc_ci"])
