"""Glue: Grad-CAM maps and scores of one model (logic in anapart.partition.cam)."""
from anapart.runtime.worker import delegate

delegate()  # a local run continues in the warm worker (libraries imported once: anapart.runtime.worker)

from pathlib import Path

from anapart.partition.cam import cam_scores, overlay_figure
from anapart.io.figstyle import display
from anapart.io.files import start_job, write_csv
from anapart.learn.training import set_threads

log = start_job(snakemake)
set_threads(snakemake.threads)
w = snakemake.wildcards
scores, maps = cam_scores(
    snakemake.input.model,
    Path(snakemake.input.images).parent,
    Path(snakemake.input.manifest).parent,
    snakemake.input.predictions,
    target_layer=snakemake.params.layer,
    threshold=snakemake.params.threshold,
    common_index=snakemake.input.common_index,
    batch_size=snakemake.params.batch_size,
)
write_csv(snakemake.output.scores, scores)
overlay_figure(
    Path(snakemake.input.manifest).parent,
    scores,
    maps,
    f"{display(w.net)}, {display(w.fmt)}, {w.frac}%: Grad-CAM at {snakemake.params.layer}",
    snakemake.output.examples,
)
log.info(
    "%d maps (%d of correctly classified slices, %d flat): score %.3f, chance %.3f, corrected %.3f; "
    "common window: corrected %.3f",
    len(scores),
    int(scores["correct"].sum()),
    int(scores["map_flat"].sum()),
    scores["score_continuous"].mean(),
    scores["chance"].mean(),
    scores["corrected"].mean(),
    scores["common_corrected"].mean(),
)
