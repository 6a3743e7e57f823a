"""Glue: generate the staging variant of the embedded synthetic cohort (logic in anapart.synthetic.staging)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.io.files import start_job
from anapart.synthetic.staging import StagingSyntheticConfig, generate_staging

start_job(snakemake)
generate_staging(snakemake.output[0], StagingSyntheticConfig.from_dict(snakemake.params.cfg))
