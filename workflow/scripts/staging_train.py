"""Glue: train one staging model and predict the test patches (logic in anapart.staging.models)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.runtime.devices import claim

claim()  # with --resources gpu=K: this job's own GPU (CUDA_VISIBLE_DEVICES), before CUDA starts

from pathlib import Path

import pandas as pd

from anapart.learn import training
from anapart.io.figstyle import display
from anapart.io.files import start_job, write_csv
from anapart.staging.models import history_figure, predict, train_model

start_job(snakemake, snakemake.params.checkpoint)
cfg = snakemake.params.cfg
training.set_threads(snakemake.threads)
patches = str(Path(snakemake.input.images).parent)
trained, epochs = {}, []
train_model(
    patches,
    snakemake.input.train,
    snakemake.params.classes,
    snakemake.wildcards.model,
    cfg,
    snakemake.output.model,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
    keep=trained,
    validation_csv=snakemake.input.validation,
    epoch_log=epochs,
)
history = pd.DataFrame(epochs)
write_csv(snakemake.output.history, history, float_format="%.5f")
history_figure(history, f"{display(snakemake.wildcards.model)}, {display(Path(patches).name)}: training curves",
               snakemake.output.curves)
pred = predict(
    snakemake.output.model,
    patches,
    snakemake.input.test,
    snakemake.input.index,
    device=snakemake.params.device,
    loaded=(trained["model"], trained["meta"]),  # the model just saved, without reading it back
)
write_csv(snakemake.output.predictions, pred)
