# Shared settings and helpers of every rule file.
import os

FRACTIONS = [int(f) for f in config["split"]["fractions"]]
NETS = list(config["classify"]["nets"])
FORMATS = list(config["classify"]["formats"])
SEG_ARCHS = list(config["segment"]["archs"])
# Every classifier (net, format, fraction), in one fixed order for rules that read them all.
MODELS = [(n, f, r) for n in NETS for f in FORMATS for r in FRACTIONS]
CAM_FRACTIONS = [int(f) for f in config["cam"]["fractions"]]
# Every format's CAM is also scored inside the smallest format's window (seg112): one window, one
# chance level for all formats.
CAM_COMMON_FMT = min(
    FORMATS,
    key=lambda f: float("inf") if f == "full" else config["crop"]["sizes"][f],
)
# What a classifier's weights depend on (so adding a network or format retrains nothing else).
TRAIN_CFG = {
    k: v
    for k, v in config["classify"].items()
    if k not in ("nets", "formats", "threads", "preload_mb")
}
ENV = "../../envs/anapart.yaml"
# Scheduling on a few local cores: study A's chain to the crops decides when its 36 classifiers can
# start, so it goes first; the classifiers next; study B (independent of study A) fills free cores.
PRIORITY = {"critical": 100, "train": 50}


wildcard_constraints:
    net="|".join(NETS),
    fmt="|".join(FORMATS),
    frac="|".join(str(f) for f in FRACTIONS),
    arch="|".join(SEG_ARCHS),


SYNTHETIC_DIR = "data/synthetic"
# Files that name DICOM paths or PatientIDs (the ingest plan): never under results/, git-ignored.
PRIVATE_DIR = "private"
COHORT_PLAN = f"{PRIVATE_DIR}/cohort/plan.json"


def cohort_paths(c=None, synthetic_dir=SYNTHETIC_DIR, where="cohort"):
    """Where a cohort is read from: the generated synthetic folder or the user's paths."""
    c = config["cohort"] if c is None else c
    if c["source"] == "synthetic":
        return {
            "dicom": f"{synthetic_dir}/dicom",
            "labels": f"{synthetic_dir}/labels.csv",
            "masks": f"{synthetic_dir}/masks",
        }
    missing = [k for k in ("dicom_dir", "labels") if not c.get(k)]
    if missing:
        raise ValueError(
            f"config {where}.source is 'dicom' but {where}.{missing[0]} is not set"
        )
    return {"dicom": c["dicom_dir"], "labels": c["labels"], "masks": c.get("mask_dir")}


def cohort_inputs(wildcards):
    if config["cohort"]["source"] == "synthetic":
        return {"synthetic": SYNTHETIC_DIR}
    p = cohort_paths()
    return {k: v for k, v in p.items() if v}


# ---------------------------------------------------------- external test cohort
# Ingested like the main cohort into its own store; never an input of seg_train, seg_select,
# split or anything a model is chosen by. The classifiers' training jobs predict its crops after
# the model is saved (prediction only; tests/test_workflow.py changes its labels and gets
# byte-identical models).
_EXT = config["cohort"]["external"]
# The demo's synthetic external site goes with the synthetic main cohort only: a user's own
# cohort gets an external cohort only from their own DICOM folder (source: dicom).
EXTERNAL_ON = _EXT is not None and (
    _EXT["source"] == "dicom" or config["cohort"]["source"] == "synthetic"
)
SYNTHETIC_EXTERNAL_DIR = "data/synthetic_external"
EXTERNAL_DIR = "results/external"
EXTERNAL_PLAN = f"{PRIVATE_DIR}/external/plan.json"
# Settings an external cohort does not give are the main cohort's (never field or intensity
# percentiles: the preprocessing is the main cohort's by construction).
EXTERNAL = {
    **{
        k: config["cohort"][k]
        for k in ("pseudonym_salt", "series", "frames", "mask_names")
    },
    **(_EXT or {}),
}
EXTERNAL_SYNTHETIC_CFG = {**config["synthetic"], **config["synthetic_external"]}


def external_paths():
    return cohort_paths(EXTERNAL, SYNTHETIC_EXTERNAL_DIR, "cohort.external")


def external_inputs(wildcards):
    if EXTERNAL["source"] == "synthetic":
        return {"synthetic": SYNTHETIC_EXTERNAL_DIR}
    return {k: v for k, v in external_paths().items() if v}


def classify_external(wildcards):
    """The external crops a training job predicts (after saving its model), if there is a cohort."""
    if not EXTERNAL_ON:
        return {}
    d = f"{EXTERNAL_DIR}/crops/{wildcards.fmt}"
    return {"external_images": f"{d}/images.npy", "external_index": f"{d}/index.csv"}


def classify_external_output():
    p = "results/classify/{net}/{fmt}/f{frac}/external_predictions.csv"
    return {"external_predictions": p} if EXTERNAL_ON else {}


def external_eval_inputs(wildcards):
    if not EXTERNAL_ON:
        return {}
    w = wildcards
    return {
        "external_predictions": f"results/classify/{w.net}/{w.fmt}/f{w.frac}/external_predictions.csv",
        "external_manifest": f"{EXTERNAL_DIR}/cohort/manifest.csv",
    }


def calibration_external_inputs(wildcards):
    if not EXTERNAL_ON:
        return {}
    return {
        "external_manifest": f"{EXTERNAL_DIR}/cohort/manifest.csv",
        "external_predictions": [
            f"results/classify/{n}/{f}/f{r}/external_predictions.csv"
            for n, f, r in MODELS
        ],
    }


def external_targets():
    if not EXTERNAL_ON:
        return []
    return [
        "results/tables/auc_external.csv",
        "results/figures/external_vs_internal.png",
        f"{EXTERNAL_DIR}/crops/qc.csv",
    ]


SPLIT_OUTPUTS = {
    "patients": "results/split/patients.csv",
    "test": "results/split/test.csv",
    **{f"train_f{f}": f"results/split/train_f{f}.csv" for f in FRACTIONS},
}


# --------------------------------------------------------------- study B (staging)
import re

# Every staging key below is in config/config.yaml or has its default in the schema (validated).
STG = config["staging"]
STAGING_ON = bool(STG["enabled"])
STAGING_DIR = "data/synthetic_staging"
STG_MODELS = list(STG["models"])
STG_BASIC = bool(STG["basic_cnn"]["enabled"])
STG_SINGLE = STG_MODELS + (["basic_cnn"] if STG_BASIC else [])
# The preprocessing of the main arm, and of Table 3's other arm.
STG_MAIN = "clahe" if STG["clahe"]["enabled"] else "raw"
STG_OTHER = "raw" if STG_MAIN == "clahe" else "clahe"
STG_ABLATION = bool(STG["compare_clahe"])
STG_RADIOMICS = bool(STG["radiomics"]["enabled"])
# Radiomics reads the patches without CLAHE by default (CLAHE distorts first-order and texture features).
STG_RADIOMICS_PRE = STG["radiomics"]["preprocessing"]
STG_EVALUATED = (
    STG_SINGLE
    + ["ensemble"]
    + (["radiomics"] if STG_RADIOMICS else [])
    + ([f"ablation/{m}" for m in STG_MODELS] if STG_ABLATION else [])
)
# What a staging model's weights depend on (changing radiomics or CAM settings retrains nothing).
STG_TRAIN_CFG = {"train": STG["train"], "basic_cnn": STG["basic_cnn"]}
STG_PATCHES = "results/staging/patches/{pre}"


def staging_paths():
    """Where study B's cohort is read from: the generated folder or the user's paths."""
    c = STG["cohort"]
    if c["source"] == "synthetic":
        return {
            "dicom": f"{STAGING_DIR}/dicom",
            "labels": f"{STAGING_DIR}/labels.csv",
            "roi": f"{STAGING_DIR}/roi",
        }
    missing = [k for k in ("dicom_dir", "labels") if not c.get(k)]
    if not (c.get("roi_dir") or c.get("roi_boxes")):
        missing.append("roi_dir (or roi_boxes)")
    if missing:
        raise ValueError(
            f"config staging.cohort.source is 'dicom' but staging.cohort.{missing[0]} is not set"
        )
    roi = c.get("roi_dir") or c["roi_boxes"]
    return {"dicom": c["dicom_dir"], "labels": c["labels"], "roi": roi}


def staging_inputs(wildcards):
    if STG["cohort"]["source"] == "synthetic":
        return {"synthetic": STAGING_DIR}
    return staging_paths()


def staging_targets():
    if not STAGING_ON:
        return []
    return [
        "results/staging/tables/table3_preprocessing.csv",
        "results/staging/tables/table4_models.csv",
        "results/staging/tables/table5_comparison.csv",
        "results/staging/tables/patients.csv",
        "results/staging/figures/confusion_matrices.png",
        "results/staging/figures/reliability.png",
        *expand("results/staging/{model}/cam.png", model=STG_SINGLE),
    ]


# --------------------------------------------------------------- pretrained weights
from anapart import weights as W  # no torch import: only paths

# One weights folder per run (classify.pretrained and staging.train.pretrained may both name it,
# spelled alike or not: folders are compared as resolved paths; the first spelling names the files).
_WEIGHT_FOLDERS = {}
for _f in (
    W.folder_of(config["classify"]["pretrained"]),
    W.folder_of(STG["train"]["pretrained"]) if STAGING_ON else None,
):
    if _f is not None:
        _WEIGHT_FOLDERS.setdefault(_f.resolve(), _f)
if len(_WEIGHT_FOLDERS) > 1:
    raise ValueError(
        f"classify.pretrained and staging.train.pretrained name different weights folders "
        f"{sorted(str(f) for f in _WEIGHT_FOLDERS)}; use one folder for both"
    )
WEIGHTS_DIR = str(next(iter(_WEIGHT_FOLDERS.values()), "resources/weights"))
WEIGHT_NETS = sorted(set(NETS) | set(STG_MODELS))


def weights_input(pretrained, net):
    """``{"weights": file}`` when ``pretrained`` names a folder (the one WEIGHTS_DIR names, however
    spelled): the job waits for rule weights."""
    if W.folder_of(pretrained) is None:
        return {}
    return {"weights": str(W.file_in_folder(WEIGHTS_DIR, net))}


def classify_weights(wildcards):
    return weights_input(config["classify"]["pretrained"], wildcards.net)


def staging_weights(wildcards):
    if wildcards.model not in STG_MODELS:  # the basic CNN trains from scratch
        return {}
    return weights_input(STG["train"]["pretrained"], wildcards.model)


def done_message(configfiles=()):
    """What a user reads when the run ends: where the main results are, and how to get the report
    (with this run's --configfile options, so the report describes this run)."""
    main = [
        "results/tables/auc.csv",
        "results/tables/anova.csv",
        "results/tables/cam_scores.csv",
        "results/tables/cam_tests.csv",
        "results/tables/auc_groups.csv",
        "results/tables/auc_pairs.csv",
        "results/figures/aauc_bars.png",
        "results/tables/calibration.csv",
        "results/tables/auc_external.csv",
        "results/checklist.csv",
        "results/seg/selected.json",
        "results/staging/tables/table4_models.csv",
        "results/staging/tables/table5_comparison.csv",
        "results/staging/tables/patients.csv",
    ]
    present = [p for p in main if os.path.exists(p)]
    lines = ["", "anapart: done."]
    if present:
        lines.append("Main results:")
        lines += [f"  {p}" for p in present]
    extra = "".join(f" --configfile {c}" for c in configfiles)
    lines += [
        "Every table and figure with captions, as one HTML page (same snakemake as this run):",
        f"  snakemake --report report.html{extra}",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------- warm worker (local runs)
from anapart import worker as _worker  # standard library only

_WORKER = []


def start_worker():
    """onstart: one process imports torch, timm, pandas ... once and forks each local job from it
    (anapart.worker); not for cluster jobs, dry runs, --touch, or runs whose jobs use conda,
    containers or modules (another interpreter). Jobs never use a worker this run did not start
    (one inherited from an enclosing run, say)."""
    os.environ.pop(_worker.ENV_VAR, None)
    if (
        config["warm_worker"]
        and workflow.is_main_process
        and workflow.local_exec
        and not workflow.touch
        and not workflow.deployment_settings.deployment_method
    ):
        handle = _worker.start("logs/worker")
        if handle is not None:
            _WORKER.append(handle)


def stop_worker():
    while _WORKER:
        _WORKER.pop().stop()
