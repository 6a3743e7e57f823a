# The reporting checklist (TRIPOD+AI / CLAIM): each item answered from this run's files.
from anapart.report import checklist as CL

CHECKLIST_INPUTS = CL.flat(
    CL.input_paths(fractions=FRACTIONS, external=on("external"), staging=on("staging"))
)


rule checklist:
    input:
        **CHECKLIST_INPUTS,
    output:
        report(
            "results/checklist.csv",
            caption="../report/checklist.rst",
            category="Checklist",
        ),
    log:
        "logs/checklist.log",
    benchmark:
        "logs/bench/checklist/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=public_config(config),
    script:
        "../scripts/checklist.py"
