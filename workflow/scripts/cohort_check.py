"""Glue: the cohort preflight; lists every problem, then fails (logic in anapart.cohort.preflight).

For the external test cohort (params.external) the pseudonyms are E..., and every PatientID of the
main cohort's plan (input main_plan) is a problem: an external patient must never be a development one.
"""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

from anapart.cohort.pseudonyms import EXTERNAL_PREFIX, PSEUDONYM_PREFIX, salt_of
from anapart.io.errors import IngestError
from anapart.cohort.problems import problems_message
from anapart.cohort.series import SeriesRule
from anapart.cohort.preflight import check_cohort, log_check, read_plan, write_check
from anapart.io.dicom_scan import FrameRule
from anapart.io.nifti import Layout
from anapart.io.files import start_job, write_csv

start_job(snakemake)
c = snakemake.params.cohort
# a synthetic cohort's paths come as params, a user's folders as the job's inputs
p = {**snakemake.params.paths, **{k: v for k, v in snakemake.input.items() if k in ("dicom", "nifti", "labels", "masks")}}
external = bool(snakemake.params.external)
exclude = None
if external:
    main_plan = snakemake.input.main_plan
    exclude = {plan.patient_id: f"PatientID is also in the main cohort (ingest plan {main_plan}); an external test "
                                "patient must not be a development patient"
               for plan in read_plan(main_plan)[0]}
check = check_cohort(
    p.get("nifti") or p["dicom"],
    p["labels"],
    p.get("masks"),
    classes=snakemake.params.classes,
    salt=salt_of(snakemake.config, snakemake.params.salt["of"]),
    series=SeriesRule.from_config(c["series"], "cohort.external.series" if external else "cohort.series"),
    frames=FrameRule.from_config(c["frames"]),
    mask_names=c["mask_names"],
    prefix=EXTERNAL_PREFIX if external else PSEUDONYM_PREFIX,
    exclude=exclude,
    nifti_layout=Layout.from_config(c.get("nifti") or {}) if "nifti" in p else None,
)
log_check(check)
# A copy of the table beside the log: Snakemake removes a failed job's outputs, the log stays.
write_csv(Path(snakemake.log[0]).with_suffix(".csv"), check.table)
write_check(check, snakemake.output.table, snakemake.output.summary, snakemake.output.plan)
if check.problems:
    raise IngestError(problems_message(check.problems))
