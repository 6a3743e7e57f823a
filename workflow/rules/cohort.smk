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
        # a user's folders come from the job's inputs (params appear in the report)
        paths=cohort_paths() if config["cohort"]["source"] == "synthetic" else {},
        classes=config["classes"],
        cohort={
            k: config["cohort"].get(k)
            for k in ("series", "frames", "mask_names", "nifti")
        },
        salt=salt_params("cohort"),
        external=False,  # pseudonyms P... (external: E...)
        # the cohort files' fingerprint: a file changed in place replans the preflight
        fingerprint=cohort_fingerprint,
    script:
        "../scripts/cohort_check.py"


rule ingest:
    input:
        plan=COHORT_PLAN,
    output:
        manifest="results/cohort/manifest.csv",
        images="results/cohort/images.npy",
        masks="results/cohort/masks.npy",
        # the store's content fingerprint: readers' trigger (anapart.io.fingerprint)
        fingerprint="results/cohort/fingerprint.json",
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


# The external test cohort: the same preflight and ingest (same code, field and intensity
# scaling) into its own store, with "E" pseudonyms. Its preflight reads the main cohort's plan
# and refuses a patient (PatientID) who is in both cohorts.
if on("external"):

    use rule cohort_check as cohort_check_external with:
        input:
            unpack(external_inputs),
            main_plan=COHORT_PLAN,
        output:
            table=report(
                f"{EXTERNAL_DIR}/cohort/check.csv",
                caption="../report/cohort_check_external.rst",
                category="External validation",
            ),
            summary=f"{EXTERNAL_DIR}/cohort/check.json",
            plan=EXTERNAL_PLAN,
        log:
            "logs/external/cohort_check.log",
        benchmark:
            "logs/bench/cohort_check_external/all.tsv"
        conda:
            ENV
        params:
            paths=external_paths() if EXTERNAL["source"] == "synthetic" else {},
            classes=config["classes"],
            cohort={k: EXTERNAL[k] for k in ("series", "frames", "mask_names", "nifti")},
            salt=salt_params("cohort.external"),
            external=True,
            fingerprint=lambda w: cohort_fingerprint(w, EXTERNAL, external_paths()),

    use rule ingest as ingest_external with:
        input:
            plan=EXTERNAL_PLAN,
        output:
            manifest=f"{EXTERNAL_DIR}/cohort/manifest.csv",
            images=f"{EXTERNAL_DIR}/cohort/images.npy",
            masks=f"{EXTERNAL_DIR}/cohort/masks.npy",
            fingerprint=f"{EXTERNAL_DIR}/cohort/fingerprint.json",
            report=report(
                f"{EXTERNAL_DIR}/cohort/ingest.json",
                caption="../report/ingest_external.rst",
                category="External validation",
            ),
        log:
            "logs/external/ingest.log",
        benchmark:
            "logs/bench/ingest_external/all.tsv"
        conda:
            ENV
