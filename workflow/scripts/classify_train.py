"""Glue: train one classifier and predict the test cohort (logic in anapart.partition.classify).

With an external cohort, its crops are predicted after the model is saved (prediction only, no
labels: scoring joins them from the external manifest).
"""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.runtime.devices import claim

claim()  # with --resources gpu=K: this job's own GPU (CUDA_VISIBLE_DEVICES), before CUDA starts

from pathlib import Path

import pandas as pd

from anapart.partition.classify import predict_probabilities, train_classifier
from anapart.io.files import start_job, write_csv
from anapart.learn.training import set_threads

log = start_job(snakemake, snakemake.params.checkpoint)
set_threads(snakemake.threads)
crops = Path(snakemake.input.images).parent
train_classifier(
    crops,
    snakemake.input.train,
    snakemake.params.classes,
    snakemake.wildcards.net,
    snakemake.params.cfg,
    snakemake.output.model,
    preload_mb=snakemake.params.preload_mb,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
    keep_checkpoint=True,  # until the predictions are written: a job cut while it predicts resumes trained
)
pred, model, meta = predict_probabilities(
    snakemake.output.model,
    crops,
    pd.read_csv(snakemake.input.test),
    device=snakemake.params.device,
)
write_csv(snakemake.output.predictions, pred)
log.info("predicted %d test slices", len(pred))
if "external_predictions" in snakemake.output.keys():
    ext_crops = Path(snakemake.input.external_images).parent
    ext, _, _ = predict_probabilities(
        snakemake.output.model,
        ext_crops,
        pd.read_csv(snakemake.input.external_index)[["slice_id"]],
        device=snakemake.params.device,
        loaded=(model, meta),
    )
    write_csv(snakemake.output.external_predictions, ext)
    log.info("predicted %d external slices (%s)", len(ext), ext_crops)
Path(snakemake.params.checkpoint).unlink(missing_ok=True)  # every output written: training is over
