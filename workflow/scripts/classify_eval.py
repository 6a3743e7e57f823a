"""Glue: AUC metrics and ROC figure of one classifier's test predictions (logic in anapart.evaluate)."""
import pandas as pd

from anapart.evaluate import evaluate_predictions, roc_figure, write_metrics
from anapart.files import setup_logging

log = setup_logging(snakemake.log[0])
ev, classes = snakemake.params.evaluate, snakemake.params.classes
pred = pd.read_csv(snakemake.input.predictions)
metrics = evaluate_predictions(
    pred,
    pd.read_csv(snakemake.input.manifest),
    classes,
    n_boot=ev.get("n_boot", 1000),
    seed=ev.get("seed", 0),
    level=ev.get("ci_level", 0.95),
)
w = snakemake.wildcards
metrics.update(net=w.net, fmt=w.fmt, frac=int(w.frac))
write_metrics(snakemake.output.metrics, metrics)
roc_figure(pred, classes, f"{w.net} {w.fmt} {w.frac}%: aAUC {metrics['aauc']:.3f}", snakemake.output.roc)
log.info("aAUC %.3f ± %.3f, CI %s", metrics["aauc"], metrics["aauc_sd"], metrics["aauc_ci"])
