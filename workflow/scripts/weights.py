"""Glue: download one network's pretrained weights from timm's hub (logic in anapart.learn.weights)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from anapart.io.files import start_job
from anapart.learn.weights import download

start_job(snakemake)
download(snakemake.wildcards.net, snakemake.output[0])
