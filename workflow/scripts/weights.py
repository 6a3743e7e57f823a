"""Glue: download one network's pretrained weights from timm's hub (logic in anapart.weights)."""
from anapart.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.worker)

from anapart.files import setup_logging
from anapart.weights import download

setup_logging(snakemake.log[0])
download(snakemake.wildcards.net, snakemake.output[0])
