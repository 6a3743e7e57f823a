# Study A (anatomical partition): its settings, wildcards, cohort paths, the external test cohort.
from anapart.io.fingerprint import inputs_fingerprint

FRACTIONS = [int(f) for f in config["split"]["fractions"]]
NETS = list(config["classify"]["nets"])
FORMATS = list(config["classify"]["formats"])
# The files of each format's crop store (output key suffix, file name); fingerprint.json is the
# store's content fingerprint, its readers' trigger (anapart.io.fingerprint).
STORE_FILES = (
    ("images", "images.npy"),
    ("index", "index.csv"),
    ("fingerprint", "fingerprint.json"),
)
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


# Replicates (replicates.smk): K folds x R repeats of the patient split, training seeds. Each
# (repeat, fold) has its own split, segmentation, crops; each seed its classifiers.
_REP = config["replicates"]
REP_FOLDS = int(_REP["folds"])
REP_REPEATS = list(range(int(_REP["repeats"])))
REP_SEEDS = [int(s) for s in (_REP["seeds"] or [config["classify"]["seed"]])]
REP_PRIMARY = (
    int(_REP["primary"]["repeat"]),
    int(REP_SEEDS[0] if _REP["primary"]["seed"] is None else _REP["primary"]["seed"]),
)
REP = "results/replicates/r{repeat}/k{fold}"  # one (repeat, fold): split, seg, crops
# one classifier of one seed
REP_MODEL = "results/replicates/r{repeat}/k{fold}/s{seed}/classify/{net}/{fmt}/f{frac}"
REPLICATES = [
    (r, k, s) for r in REP_REPEATS for k in range(REP_FOLDS) for s in REP_SEEDS
]


def replicate_targets():
    if not on("replicates"):
        return []
    return [
        "results/replicates/tables/auc.csv",
        "results/replicates/tables/mrmc.csv",
        "results/replicates/tables/mrmc_spread.csv",
        "results/replicates/figures/mrmc.png",
        "results/replicates/tables/cam_tests.csv",
    ]


# Grad-CAM of one classifier of one seed (the fractions of cam.fractions)
REP_CAM = "results/replicates/r{repeat}/k{fold}/s{seed}/cam/{net}/{fmt}/f{frac}"


def rep_expand(pattern, fractions=None):
    """``pattern`` (with {repeat}, {fold}, {seed} and model wildcards) for every replicate and model
    (of ``fractions`` only, if given: Grad-CAM maps the models of cam.fractions)."""
    return [
        pattern.format(repeat=r, fold=k, seed=s, net=n, fmt=f, frac=fr)
        for r, k, s in REPLICATES
        for n, f, fr in MODELS
        if fractions is None or fr in fractions
    ]


# The report's front page: both studies' primary endpoints on top, then the workflow description,
# written by rule front_page (checklist.smk; the Snakefile points its report directive there once it exists).
FRONT_PAGE = "results/report/front.rst"
FRONT_TEMPLATE = "workflow/report/workflow.rst"


def primary_inputs(wildcards):
    """What the primary endpoint reads besides the single split's mrmc.csv."""
    out = {"cam_tests": "results/tables/cam_tests.csv"}
    if on(
        "replicates"
    ):  # the pooled analyses of the declared replicate are the primary ones
        out["spread"] = "results/replicates/tables/mrmc_spread.csv"
        out["cam_tests"] = "results/replicates/tables/cam_tests.csv"
    return out


wildcard_constraints:
    net="|".join(NETS),
    fmt="|".join(FORMATS),
    frac="|".join(str(f) for f in FRACTIONS),
    arch="|".join(SEG_ARCHS),
    repeat=r"\d+",
    fold=r"\d+",
    seed=r"\d+",


SYNTHETIC_DIR = "data/synthetic"
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
    folder = "nifti_dir" if c["source"] == "nifti" else "dicom_dir"
    missing = [k for k in (folder, "labels") if not c.get(k)]
    if missing:
        raise ValueError(
            f"config {where}.source is '{c['source']}' but {where}.{missing[0]} is not set"
        )
    if (
        c["source"] == "nifti"
    ):  # masks beside each image (cohort.mask_names / cohort.nifti.labels)
        return {"nifti": c["nifti_dir"], "labels": c["labels"]}
    return {"dicom": c["dicom_dir"], "labels": c["labels"], "masks": c.get("mask_dir")}


def cohort_fingerprint(wildcards, c=None, paths=None):
    """The preflight's params: a fingerprint of a user's cohort files (anapart.io.fingerprint), so a
    file rewritten in place or a repointed cohort link replans the preflight, ingest and all built
    from the store (params trigger); a synthetic cohort is a workflow output, tracked already.
    """
    c = config["cohort"] if c is None else c
    if c["source"] == "synthetic":
        return ""
    return inputs_fingerprint(paths or cohort_paths())


def cohort_inputs(wildcards):
    if config["cohort"]["source"] == "synthetic":
        return {"synthetic": SYNTHETIC_DIR}
    p = cohort_paths()
    return {k: v for k, v in p.items() if v}


# ---------------------------------------------------------- external test cohort
# Ingested like the main cohort into its own store; never an input of seg_train, seg_select,
# split or anything a model is chosen by. The classifiers' training jobs predict its crops after
# the model is saved (prediction only; tests/workflow/test_workflow.py changes its labels and gets
# byte-identical models).
SYNTHETIC_EXTERNAL_DIR = "data/synthetic_external"
EXTERNAL_DIR = "results/external"
EXTERNAL_PLAN = f"{PRIVATE_DIR}/external/plan.json"
# Settings an external cohort does not give are the main cohort's (never field or intensity
# percentiles: the preprocessing is the main cohort's by construction).
EXTERNAL = {
    **{
        k: config["cohort"].get(k)
        for k in ("pseudonym_salt", "series", "frames", "mask_names", "nifti")
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
    if not on("external"):
        return {}
    d = f"{EXTERNAL_DIR}/crops/{wildcards.fmt}"
    return {
        # the store as a path only; its content fingerprint is the trigger (crop.smk)
        "external_images": ancient(f"{d}/images.npy"),
        "external_fingerprint": f"{d}/fingerprint.json",
        "external_index": f"{d}/index.csv",
    }


def classify_external_output():
    p = "results/classify/{net}/{fmt}/f{frac}/external_predictions.csv"
    return {"external_predictions": p} if on("external") else {}


def external_eval_inputs(wildcards):
    if not on("external"):
        return {}
    w = wildcards
    return {
        "external_predictions": f"results/classify/{w.net}/{w.fmt}/f{w.frac}/external_predictions.csv",
        "external_manifest": f"{EXTERNAL_DIR}/cohort/manifest.csv",
    }


def calibration_external_inputs(wildcards):
    if not on("external"):
        return {}
    return {
        "external_manifest": f"{EXTERNAL_DIR}/cohort/manifest.csv",
        "external_predictions": [
            f"results/classify/{n}/{f}/f{r}/external_predictions.csv"
            for n, f, r in MODELS
        ],
    }


def external_targets():
    if not on("external"):
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


def sample_size_inputs(wildcards):
    """The pilot of the next study: the primary source's predictions (the replicates' when on), and
    study B's claims when study B runs."""
    if on("replicates"):
        preds = rep_expand(f"{REP_MODEL}/predictions.csv")
    else:
        preds = [f"results/classify/{n}/{f}/f{r}/predictions.csv" for n, f, r in MODELS]
    out = {"predictions": preds, "manifest": "results/cohort/manifest.csv"}
    if on("staging"):
        out["claims"] = "results/staging/tables/claims.csv"
    return out
