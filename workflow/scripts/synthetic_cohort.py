"""Glue: generate the embedded synthetic cohort (logic in anapart.synthetic.partition)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.io.files import start_job
from anapart.synthetic.partition import SyntheticConfig, generate

start_job(snakemake)
generate(snakemake.output[0], SyntheticConfig.from_dict(snakemake.params.cfg))
