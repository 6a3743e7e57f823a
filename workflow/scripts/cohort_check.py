"""Glue: the cohort preflight; lists every problem, then fails (logic in anapart.cohort)."""
from pathlib import Path

from anapart.cohort import IngestError, SeriesRule, check_cohort, log_check, problems_message, write_check
from anapart.dicom_io import FrameRule
from anapart.files import setup_logging, write_csv

setup_logging(snakemake.log[0])
p, c = snakemake.params.paths, snakemake.params.cohort
check = check_cohort(
    p["dicom"],
    p["labels"],
    p["masks"],
    classes=snakemake.params.classes,
    salt=c["pseudonym_salt"],
    series=SeriesRule.from_config(c["series"]),
    frames=FrameRule.from_config(c["frames"]),
    mask_names=c["mask_names"],
)
log_check(check)
# A copy of the table beside the log: Snakemake removes a failed job's outputs, the log stays.
write_csv(Path(snakemake.log[0]).with_suffix(".csv"), check.table)
write_check(check, snakemake.output.table, snakemake.output.summary, snakemake.output.plan)
if check.problems:
    raise IngestError(problems_message(check.problems))
