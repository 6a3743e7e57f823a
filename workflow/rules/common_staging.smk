# Study B (LA-NPC staging): its settings, cohort paths and targets.
# Every staging key below is in config/config.yaml or has its default in the schema (validated).
STG = config["staging"]
STAGING_DIR = "data/synthetic_staging"
STG_MODELS = list(STG["models"])
STG_SINGLE = STG_MODELS + (["basic_cnn"] if on("staging.basic_cnn") else [])
# The preprocessing of the main arm, and of Table 3's other arm.
STG_MAIN = "clahe" if STG["clahe"]["enabled"] else "raw"
STG_OTHER = "raw" if STG_MAIN == "clahe" else "clahe"
# Radiomics reads the patches without CLAHE by default (CLAHE distorts first-order and texture features).
STG_RADIOMICS_PRE = STG["radiomics"]["preprocessing"]
STG_EVALUATED = (
    STG_SINGLE
    + ["ensemble"]
    + (["radiomics"] if on("staging.radiomics") else [])
    + ([f"ablation/{m}" for m in STG_MODELS] if on("staging.compare_clahe") else [])
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
    if not on("staging"):
        return []
    return [
        "results/staging/tables/table3_preprocessing.csv",
        "results/staging/tables/table4_models.csv",
        "results/staging/tables/table5_comparison.csv",
        "results/staging/tables/patients.csv",
        "results/staging/tables/claims.csv",
        "results/staging/figures/confusion_matrices.png",
        "results/staging/figures/reliability.png",
        *expand("results/staging/{model}/cam.png", model=STG_SINGLE),
    ]
