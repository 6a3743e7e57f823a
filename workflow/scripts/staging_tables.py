"""Glue: the staging study's Tables 3-5 and Fig. 6 (per patch, as the paper), every method's
per-patient metrics with intervals, and the claims' paired tests (logic in anapart.staging.ensemble
and anapart.staging.claims)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json
from pathlib import Path

import pandas as pd

from anapart.io.files import start_job, write_csv
from anapart.staging.claims import best_single, claims, claims_table, metrics_table, patient_level
from anapart.staging.ensemble import confusion_grid, table_by_stage, table_preprocessing, tnm_metrics

log = start_job(snakemake)
p = snakemake.params
classes, names, models = p.classes, p.names, p.models
metrics = {n: json.load(open(f)) for n, f in zip(names, snakemake.input.metrics)}
main = {n: m for n, m in metrics.items() if not n.startswith("ablation/")}
other = {n.split("/", 1)[1]: m for n, m in metrics.items() if n.startswith("ablation/")}
clahe_on, clahe_off = (main, other) if p.main == "clahe" else (other, main)
stage = classes[-1]  # Table 3 reports the advanced stage (IVa)
write_csv(snakemake.output.table3, table_preprocessing({m: clahe_on[m] for m in models if m in clahe_on},
                                                       clahe_off, stage))
singles = {n: m for n, m in main.items() if n not in ("ensemble", "radiomics")}
order = [m for m in p.singles if m in singles]
write_csv(snakemake.output.table4, table_by_stage({**{n: singles[n] for n in order}, "ensemble": main["ensemble"]},
                                                  classes))
index = pd.read_csv(snakemake.input.index, dtype={"tnm_stage": str}, keep_default_na=False)
simulated = {"TNM staging"} if p.tnm_simulated else set()
compare = {}
tnm = tnm_metrics(index, pd.read_csv(snakemake.input.test), classes)
if tnm is not None:
    compare["TNM staging"] = tnm
if "radiomics" in main:
    compare["radiomics"] = main["radiomics"]
compare["ensemble"] = main["ensemble"]
write_csv(snakemake.output.table5, table_by_stage(compare, classes, simulated=simulated))

# per patient: every method with intervals, and one paired test per claim
preds = {n: pd.read_csv(f) for n, f in zip(names, snakemake.input.predictions)}
given = index[index["tnm_stage"].isin(classes)]
tnm_of = given.groupby("patient")["tnm_stage"].first().to_dict()
ev = p.evaluate
table = metrics_table(preds, classes, tnm=tnm_of, tnm_simulated=bool(simulated), level=ev["ci_level"],
                      n_boot=ev["n_boot"], seed=ev["seed"])
write_csv(snakemake.output.patients, table, float_format="%.4g")
histories = {Path(f).parent.name: pd.read_csv(f) for f in snakemake.input.histories}
prim = p.primary
b = prim["b"]
if b == "best_single":
    b, acc = best_single(histories, list(p.singles))
    log.info("primary claim: %s against the best single model by validation accuracy, %s (%.3f)", prim["a"], b, acc)
patients = patient_level(preds, classes, tnm_of)
claim_list = claims(patients, models, main=p.main)
tests = claims_table(patients, classes, claim_list, (prim["a"], b, prim["test"]), level=ev["ci_level"],
                     simulated=simulated, models=models, main=p.main, seed=ev["seed"])
write_csv(snakemake.output.claims, tests, float_format="%.4g")
confusion_grid(main, snakemake.output.figure)
log.info("tables written; ensemble accuracy %.3f per patch\n%s", main["ensemble"]["accuracy"],
         tests[["role", "claim", "test", "estimate", "p", "p_holm"]].to_string())
