# Ingest (DICOM -> pseudonymised slice store) and the patient-level split.


rule ingest:
    input:
        unpack(cohort_inputs),
    output:
        manifest="results/cohort/manifest.csv",
        images="results/cohort/images.npy",
        masks="results/cohort/masks.npy",
        report=report(
            "results/cohort/ingest.json",
            caption="../report/ingest.rst",
            category="QC",
        ),
    log:
        "logs/ingest.log",
    benchmark:
        "logs/bench/ingest/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        paths=cohort_paths(),
        classes=config["classes"],
        cohort=config["cohort"],
    script:
        "../scripts/ingest.py"


rule split:
    input:
        manifest="results/cohort/manifest.csv",
    output:
        **SPLIT_OUTPUTS,
    log:
        "logs/split.log",
    benchmark:
        "logs/bench/split/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=config["classes"],
        split=config["split"],
    script:
        "../scripts/split.py"
