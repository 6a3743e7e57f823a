# Shared settings and helpers of every rule file.

FRACTIONS = [int(f) for f in config["split"]["fractions"]]
NETS = list(config["classify"]["nets"])
FORMATS = list(config["classify"]["formats"])
SEG_ARCHS = list(config["segment"]["archs"])
CAM_FRACTIONS = [int(f) for f in config["cam"]["fractions"]]
# What a classifier's weights depend on (so adding a network or format retrains nothing else).
TRAIN_CFG = {
    k: v
    for k, v in config["classify"].items()
    if k not in ("nets", "formats", "threads", "preload_mb")
}
ENV = "../../envs/anapart.yaml"


wildcard_constraints:
    net="|".join(NETS),
    fmt="|".join(FORMATS),
    frac="|".join(str(f) for f in FRACTIONS),
    arch="|".join(SEG_ARCHS),


SYNTHETIC_DIR = "data/synthetic"


def cohort_paths():
    """Where the cohort is read from: the generated synthetic folder or the user's paths."""
    c = config["cohort"]
    if c["source"] == "synthetic":
        return {
            "dicom": f"{SYNTHETIC_DIR}/dicom",
            "labels": f"{SYNTHETIC_DIR}/labels.csv",
            "masks": f"{SYNTHETIC_DIR}/masks",
        }
    missing = [k for k in ("dicom_dir", "labels") if not c.get(k)]
    if missing:
        raise ValueError(
            f"config cohort.source is 'dicom' but cohort.{missing[0]} is not set"
        )
    return {"dicom": c["dicom_dir"], "labels": c["labels"], "masks": c.get("mask_dir")}


def cohort_inputs(wildcards):
    if config["cohort"]["source"] == "synthetic":
        return {"synthetic": SYNTHETIC_DIR}
    p = cohort_paths()
    return {k: v for k, v in p.items() if v}


SPLIT_OUTPUTS = {
    "patients": "results/split/patients.csv",
    "test": "results/split/test.csv",
    **{f"train_f{f}": f"results/split/train_f{f}.csv" for f in FRACTIONS},
}
