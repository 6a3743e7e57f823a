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


# The demo's external site: a second, smaller synthetic cohort "from another scanner".
if on("external") and EXTERNAL["source"] == "synthetic":

    use rule synthetic_cohort as synthetic_external with:
        output:
            directory(SYNTHETIC_EXTERNAL_DIR),
        log:
            "logs/external/synthetic_cohort.log",
        benchmark:
            "logs/bench/synthetic_external/all.tsv"
        conda:
            ENV
        params:
            cfg=EXTERNAL_SYNTHETIC_CFG,
