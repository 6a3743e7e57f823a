# The embedded synthetic DICOM cohort: the default data source of the demo and the tests.


rule synthetic_cohort:
    output:
        directory(SYNTHETIC_DIR),
    params:
        cfg=config["synthetic"],
    log:
        "logs/synthetic_cohort.log",
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/synthetic_cohort.py"
