# Study B's LA-NPC cohort (anapart.synthetic.staging): T1C and T2 series, tumour and node masks.
rule staging_synthetic:
    output:
        directory(STAGING_DIR),
    log:
        "logs/staging/synthetic.log",
    benchmark:
        "logs/bench/staging_synthetic/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=STG["synthetic"],
    script:
        "../scripts/staging_synthetic.py"
