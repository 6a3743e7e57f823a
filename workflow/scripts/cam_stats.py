"""Glue: CAM score summary per model and the t-tests between formats (logic in anapart.cam)."""
from anapart.cam import format_ttests, read_scores, summarize
from anapart.files import setup_logging, write_csv

log = setup_logging(snakemake.log[0])
scores = read_scores(snakemake.input)
write_csv(snakemake.output.scores, summarize(scores))
tt = format_ttests(scores)
write_csv(snakemake.output.ttest, tt)
log.info("\n%s", tt.to_string())
