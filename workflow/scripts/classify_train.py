"""Glue: train one classifier and predict the test cohort (logic in anapart.classify)."""
from pathlib import Path

import pandas as pd

from anapart.classify import predict_probabilities, train_classifier
from anapart.files import setup_logging, write_csv
from anapart.training import set_threads

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
crops = Path(snakemake.input.images).parent
train_classifier(
    crops,
    snakemake.input.train,
    snakemake.params.classes,
    snakemake.wildcards.net,
    snakemake.params.cfg,
    snakemake.output.model,
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
)
pred, _, _ = predict_probabilities(
    snakemake.output.model,
    crops,
    pd.read_csv(snakemake.input.test),
    device=snakemake.params.device,
)
write_csv(snakemake.output.predictions, pred)
log.info("predicted %d test slices", len(pred))
