# Ingest (DICOM -> pseudonymised slice store) and the patient-level split.


rule ingest:
    input:
        unpack(cohort_inputs),
    output:
        manifest="results/cohort/manifest.csv",
        images="results/cohort/images.npy",
        masks="results/cohort/masks.npy",
        report="results/cohort/ingest.json",
    params:
        paths=cohort_paths(),
        classes=config["classes"],
        cohort=config["cohort"],
    log:
        "logs/ingest.log",
    resources:
        mem_mb=3000,
        runtime=120,
    conda:
        ENV
    script:
        "../scripts/ingest.py"


rule split:
    input:
        manifest="results/cohort/manifest.csv",
    output:
        **SPLIT_OUTPUTS,
    params:
        classes=config["classes"],
        split=config["split"],
    log:
        "logs/split.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/split.py"
