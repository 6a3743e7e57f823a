"""Glue: AUC and calibration metrics and the ROC figure of one classifier's test predictions, and
the same metrics on the external cohort where there is one (logic in anapart.metrics.evaluate, anapart.metrics.calibration)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.metrics.calibration import calibration_metrics, with_labels
from anapart.io.figstyle import display
from anapart.metrics.evaluate import evaluate_predictions, prediction_set_problem, probabilities, write_metrics
from anapart.metrics.roc_figures import roc_figure
from anapart.cohort.split import patient_groups
from anapart.io.files import start_job

log = start_job(snakemake)
ev, classes = snakemake.params.evaluate, snakemake.params.classes


def score(pred: pd.DataFrame, manifest: pd.DataFrame, strata: pd.Series) -> dict:
    m = evaluate_predictions(
        pred,
        manifest,
        classes,
        strata=strata,
        n_boot=ev["n_boot"],
        seed=ev["seed"],
        level=ev["ci_level"],
    )
    m.update(calibration_metrics(pred["label"], probabilities(pred, classes), classes, n_bins=ev["calibration_bins"]))
    return m


pred = pd.read_csv(snakemake.input.predictions)
manifest = pd.read_csv(snakemake.input.manifest)
# the bootstrap resamples patients within their stratum (the patient's class: the split's for the
# internal test set, the same rule on the external manifest)
patients = pd.read_csv(snakemake.input.patients)
strata = patients.set_index("patient")["group"]
test_ids = manifest.loc[manifest["patient"].isin(patients.loc[patients["split"] == "test", "patient"]), "slice_id"]
problem = prediction_set_problem(pred, test_ids, snakemake.input.model)
if problem:
    raise ValueError(problem)
metrics = score(pred, manifest, strata)
if "external_predictions" in snakemake.input.keys():
    ext_manifest = pd.read_csv(snakemake.input.external_manifest)
    metrics["external"] = score(with_labels(pd.read_csv(snakemake.input.external_predictions), ext_manifest),
                                ext_manifest, patient_groups(ext_manifest))
w = snakemake.wildcards
metrics.update(net=w.net, fmt=w.fmt, frac=int(w.frac))
write_metrics(snakemake.output.metrics, metrics)
lo, hi = metrics["aauc_ci"]
roc_figure(pred, classes,
           f"{display(w.net)}, {display(w.fmt)}, {w.frac}%: aAUC {metrics['aauc']:.3f} ({lo:.3f}-{hi:.3f})",
           snakemake.output.roc, patients=pred["slice_id"].map(manifest.set_index("slice_id")["patient"]),
           strata=strata, n_boot=ev["n_boot"], seed=ev["seed"], level=ev["ci_level"])
log.info("aAUC %.3f ± %.3f, CI %s; Brier %.3f, ECE %.3f", metrics["aauc"], metrics["aauc_sd"], metrics["aauc_ci"],
         metrics["brier"], metrics["ece"])
if "external" in metrics:
    e = metrics["external"]
    log.info("external: aAUC %.3f, CI %s; Brier %.3f, ECE %.3f", e["aauc"], e["aauc_ci"], e["brier"], e["ece"])
