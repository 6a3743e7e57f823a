"""Glue: the staging study's Tables 3-5, Fig. 6 and the per-patient table (logic in anapart.staging.ensemble)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json

import pandas as pd

from anapart.staging.ensemble import confusion_grid, patient_table, table_by_stage, table_preprocessing, tnm_metrics
from anapart.io.files import start_job, write_csv

log = start_job(snakemake)
classes, names, models = snakemake.params.classes, snakemake.params.names, snakemake.params.models
metrics = {n: json.load(open(p)) for n, p in zip(names, snakemake.input.metrics)}
main = {n: m for n, m in metrics.items() if not n.startswith("ablation/")}
other = {n.split("/", 1)[1]: m for n, m in metrics.items() if n.startswith("ablation/")}
clahe_on, clahe_off = (main, other) if snakemake.params.main == "clahe" else (other, main)
stage = classes[-1]  # Table 3 reports the advanced stage (IVa)
write_csv(snakemake.output.table3, table_preprocessing({m: clahe_on[m] for m in models if m in clahe_on},
                                                       clahe_off, stage))
singles = {n: m for n, m in main.items() if n not in ("ensemble", "radiomics")}
order = [m for m in snakemake.params.singles if m in singles]
write_csv(snakemake.output.table4, table_by_stage({**{n: singles[n] for n in order}, "ensemble": main["ensemble"]},
                                                  classes))
index = pd.read_csv(snakemake.input.index, dtype={"tnm_stage": str}, keep_default_na=False)
simulated = {"TNM staging"} if snakemake.params.tnm_simulated else set()
compare = {}
tnm = tnm_metrics(index, pd.read_csv(snakemake.input.test), classes)
if tnm is not None:
    compare["TNM staging"] = tnm
if "radiomics" in main:
    compare["radiomics"] = main["radiomics"]
compare["ensemble"] = main["ensemble"]
write_csv(snakemake.output.table5, table_by_stage(compare, classes, simulated=simulated))
# per patient: every method, the ensemble against each (McNemar), bootstrap CIs
preds = {n: pd.read_csv(p) for n, p in zip(list(main), snakemake.input.predictions)}
given = index[index["tnm_stage"].isin(classes)]
ev = snakemake.params.evaluate
patients = patient_table(preds, classes, tnm=given.groupby("patient")["tnm_stage"].first().to_dict(),
                         tnm_simulated=bool(simulated), n_boot=ev["n_boot"], seed=ev["seed"], level=ev["ci_level"])
write_csv(snakemake.output.patients, patients, float_format="%.4g")
confusion_grid(main, snakemake.output.figure)
log.info("tables written; ensemble accuracy %.3f per patch\n%s", main["ensemble"]["accuracy"], patients.to_string())
