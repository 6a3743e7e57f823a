"""Glue: generate the staging variant of the embedded synthetic cohort (logic in anapart.synthetic.staging)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.io.files import setup_logging
from anapart.synthetic.staging import StagingSyntheticConfig, generate_staging

setup_logging(snakemake.log[0])
generate_staging(snakemake.output[0], StagingSyntheticConfig.from_dict(snakemake.params.cfg))
