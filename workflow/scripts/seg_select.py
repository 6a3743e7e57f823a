"""Glue: pick the segmentation model with the better held-out Dice (logic in anapart.partition.segment)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

import json
from pathlib import Path

from anapart.io.files import start_job, write_text
from anapart.partition.segment import select

log = start_job(snakemake)
metrics = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in snakemake.input}
choice = select(metrics)
log.info(choice["reason"])
write_text(snakemake.output[0], json.dumps(choice, indent=2) + "\n")
