"""Glue: pick the segmentation model with the better held-out Dice (logic in anapart.segment)."""
from anapart.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.worker)

import json
from pathlib import Path

from anapart.files import setup_logging, write_text
from anapart.segment import select

log = setup_logging(snakemake.log[0])
metrics = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in snakemake.input}
choice = select(metrics)
log.info(choice["reason"])
write_text(snakemake.output[0], json.dumps(choice, indent=2) + "\n")
