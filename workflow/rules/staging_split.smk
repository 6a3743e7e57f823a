# Study B's patient-level 4:1 split of the patches (anapart.cohort.split.split_staging).


rule staging_split:
    input:
        index=f"results/staging/patches/{STG_MAIN}/index.csv",
    output:
        patients="results/staging/split/patients.csv",
        train="results/staging/split/train.csv",
        validation="results/staging/split/validation.csv",
        test="results/staging/split/test.csv",
    log:
        "logs/staging/split.log",
    benchmark:
        "logs/bench/staging_split/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=STG["classes"],
        split=STG["split"],
    script:
        "../scripts/staging_split.py"
