# Preflight (every problem of the cohort at once), ingest (DICOM -> pseudonymised slice store)
# and the patient-level split.


rule cohort_check:
    input:
        unpack(cohort_inputs),
    output:
        table=report(
            "results/cohort/check.csv",
            caption="../report/cohort_check.rst",
            category="QC",
        ),
        summary="results/cohort/check.json",
        # names DICOM files and PatientIDs: outside results/ (git-ignored)
        plan=COHORT_PLAN,
    log:
        "logs/cohort_check.log",
    benchmark:
        "logs/bench/cohort_check/all.tsv"
    priority: PRIORITY["critical"]
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        paths=cohort_paths(),
        classes=config["classes"],
        cohort={
            k: config["cohort"][k]
            for k in ("pseudonym_salt", "series", "frames", "mask_names")
        },
    script:
        "../scripts/cohort_check.py"


rule ingest:
    input:
        plan=COHORT_PLAN,
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
    priority: PRIORITY["critical"]
    conda:
        ENV
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        classes=config["classes"],
        cohort={k: config["cohort"][k] for k in ("field", "intensity_percentiles")},
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
    priority: PRIORITY["critical"]
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
