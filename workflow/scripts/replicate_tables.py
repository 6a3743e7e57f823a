"""Glue: study A over replicates -- every classifier's scores with repeat, fold and seed, the
within-fold OR analysis of each (repeat, seed), the primary one averaged over every replicate (its
within-fold rows widened by the fold-shared variance) with its pooled and fold-variance sensitivity rows and the per-replicate spread, the figure (logic in
anapart.metrics.replicates)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.metrics.fold_shared import with_fold_shared_variance
from anapart.metrics.replicates import (averaged_mrmc, fold_variance, pool_out_of_fold, replicate_auc_table,
                                        replicate_mrmc, replicate_summary, spread_figure)

log = start_job(snakemake)
p = snakemake.params
write_csv(snakemake.output.auc, replicate_auc_table(snakemake.input.metrics, p.classes, p.ci_level), float_format="%.4f")
patient_of = pd.read_csv(snakemake.input.manifest).set_index("slice_id")["patient"]
pooled = pool_out_of_fold(snakemake.input.predictions, p.folds)
for (r, s), models in pooled.items():
    n = {len(t) for t in models.values()}
    log.info("repeat %d seed %d: %d models, %s pooled out-of-fold slices each", r, s, len(models), sorted(n))
pair = tuple(s.strip() for s in p.primary_contrast.split(" - ")) if p.interaction else None
table = replicate_mrmc(pooled, patient_of, p.classes, alpha=p.alpha, interaction=pair,  # per replicate
                       interaction_figure=p.figure)
write_csv(snakemake.output.mrmc, table, float_format="%.5g")
averaged = averaged_mrmc(pooled, patient_of, p.classes, alpha=p.alpha, interaction=pair,
                         interaction_figure=p.figure)
averaged = with_fold_shared_variance(averaged, pooled, patient_of, p.classes, p.folds, figure=p.figure,
                                     interaction=pair, alpha=p.alpha)  # what a fold's networks share
folds = fold_variance(pooled, p.classes, p.folds, alpha=p.alpha, interaction=pair)
summary = replicate_summary(averaged, table, folds, tuple(p.primary), alpha=p.alpha)
write_csv(snakemake.output.spread, summary, float_format="%.5g")
spread_figure(table, "aauc", "RRRC", snakemake.output.figure, primary=p.primary_contrast)
log.info("\n%s", summary[summary["figure"] == "aauc"].to_string())
