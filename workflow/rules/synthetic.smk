# The embedded synthetic DICOM cohort: the default data source of the demo and the tests.


rule synthetic_cohort:
    output:
        directory(SYNTHETIC_DIR),
    log:
        "logs/synthetic_cohort.log",
    benchmark:
        "logs/bench/synthetic_cohort/all.tsv"
    priority: PRIORITY["critical"]
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        cfg=config["synthetic"],
    script:
        "../scripts/synthetic_cohort.py"
