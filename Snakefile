# anapart: anatomical-partition deep learning for nasopharyngeal MRI.
#   snakemake -c2                                  demo DAG on the embedded synthetic cohort
#   snakemake -c2 --configfile config/test.yaml    tiny cohort, as the tests run it
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# -d/--directory elsewhere: config/ is not found there, and the config is only the --configfile
if "classes" not in config and not os.path.exists("config/config.yaml"):
    raise WorkflowError(
        f"no config/config.yaml in the working directory {os.getcwd()}: run snakemake from the "
        f"workflow's folder ({workflow.basedir}), without -d/--directory; put results elsewhere by "
        "copying or cloning the workflow there"
    )


validate(config, "workflow/schemas/config.schema.yaml")


# The front page: both studies' primary endpoints once rule front_page wrote it (checklist.smk).
_FRONT = "results/report/front.rst"


report: _FRONT if os.path.exists(_FRONT) else "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/worker.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/crop.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/cam.smk"
include: "workflow/rules/replicates.smk"
include: "workflow/rules/staging_synthetic.smk"
include: "workflow/rules/staging_patches.smk"
include: "workflow/rules/staging_split.smk"
include: "workflow/rules/staging_train.smk"
include: "workflow/rules/staging_radiomics.smk"
include: "workflow/rules/staging_ensemble.smk"
include: "workflow/rules/staging_cam.smk"
include: "workflow/rules/checklist.smk"
include: "workflow/rules/package.smk"


rule all:
    default_target: True
    input:
        "results/cohort/manifest.csv",
        SPLIT_OUTPUTS.values(),
        "results/seg/selected.json",
        "results/seg/qc_examples.png",
        "results/crops/qc.csv",
        "results/tables/auc.csv",
        "results/tables/anova.csv",
        "results/tables/cam_tests.csv",
        "results/tables/auc_groups.csv",
        "results/tables/auc_pairs.csv",
        "results/tables/mrmc.csv",
        "results/tables/primary.csv",
        "results/tables/sample_size.csv",
        "results/tables/calibration.csv",
        "results/checklist.csv",
        FRONT_PAGE,
        report_tables(),
        "results/figures/crop_examples.png",
        expand("results/figures/roc_f{frac}.png", frac=FRACTIONS),
        external_targets(),
        replicate_targets(),
        staging_targets(),
        (["results/tables/cam_agreement.csv"] if on("cam.reviewers") else []),


onstart:
    start_worker()
    start_gpu_pool()


onsuccess:
    stop_worker()
    print(done_message(workflow.overwrite_configfiles))


onerror:
    stop_worker()
