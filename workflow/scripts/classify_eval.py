"""Glue: AUC metrics and ROC figure of one classifier's test predictions (logic in anapart.evaluate)."""
import pandas as pd

from anapart.evaluate import evaluate_predictions, roc_figure, write_metrics
from anapart.files import setup_logging

log = setup_logging(snakemake.log[0])
ev, classes = snakemake.params.evaluate, snakemake.params.classes
pred = pd.read_csv(snakemake.input.predictions)
# the bootstrap resamples patients within their split stratum (the patient's class)
strata = pd.read_csv(snakemake.input.patients).set_index("patient")["group"]
metrics = evaluate_predictions(
    pred,
    pd.read_csv(snakemake.input.manifest),
    classes,
    strata=strata,
    n_boot=ev["n_boot"],
    seed=ev["seed"],
    level=ev["ci_level"],
)
w = snakemake.wildcards
metrics.update(net=w.net, fmt=w.fmt, frac=int(w.frac))
write_metrics(snakemake.output.metrics, metrics)
roc_figure(pred, classes, f"{w.net} {w.fmt} {w.frac}%: aAUC {metrics['aauc']:.3f}", snakemake.output.roc)
log.info("aAUC %.3f ± %.3f, CI %s", metrics["aauc"], metrics["aauc_sd"], metrics["aauc_ci"])
