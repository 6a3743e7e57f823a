"""Glue: results/tables/sample_size.csv and the front page's sentence (logic in anapart.metrics.planning)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import pandas as pd

from anapart.io.files import start_job, write_csv, write_text
from anapart.metrics.planning import sentence, study_a_table, study_b_rows
from anapart.metrics.mrmc_formats import within_fold_figures
from anapart.metrics.replicates import pool_out_of_fold, stack_replicates
from anapart.metrics.stats import read_model_tables

log = start_job(snakemake)
inp, p = snakemake.input, snakemake.params
patient_of = pd.read_csv(inp.manifest).set_index("slice_id")["patient"]
figures = None
if p.replicate is not None:  # the replicates' primary: within-fold AUCs averaged over every repeat and seed
    preds = stack_replicates(pool_out_of_fold(inp.predictions, p.folds))
    figures = within_fold_figures(p.classes)
    source = "results/replicates (within-fold AUC averaged over every repeat and seed)"
else:
    preds = read_model_tables(inp.predictions)
    source = "single split"
table = study_a_table(preds, patient_of, p.classes, p.primary, p.plan, source=source,
                      primary_alpha=p.primary_alpha, figures=figures, replicated=p.replicate is not None)
if "claims" in inp.keys():
    table = pd.concat([table, study_b_rows(pd.read_csv(inp.claims), p.plan["targets"], level=p.ci_level)],
                      ignore_index=True)
write_csv(snakemake.output.table, table, float_format="%.5g")
text = sentence(table, networks=min(p.plan["networks"]), target=min(p.plan["targets"]))
write_text(snakemake.output.sentence, text + "\n")
log.info("%s\n%s", text, table[["study", "role", "frac", "contrast", "effect_kind", "networks", "target_power",
                                 "patients_needed"]].head(20).to_string())
