"""Glue: generate the embedded synthetic cohort (logic in anapart.synthetic.partition)."""
from anapart.files import setup_logging
from anapart.synthetic.partition import SyntheticConfig, generate

setup_logging(snakemake.log[0])
generate(snakemake.output[0], SyntheticConfig.from_dict(snakemake.params.cfg))
