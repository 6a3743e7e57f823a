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


rule front_page:
    input:
        unpack(front_page_inputs),
    output:
        FRONT_PAGE,
    log:
        "logs/front_page.log",
    benchmark:
        "logs/bench/front_page/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=public_config(config),
        ci_level=config["evaluate"]["ci_level"],
    script:
        "../scripts/front_page.py"


rule table_html:
    input:
        lambda wildcards: REPORT_TABLES[wildcards.table][0],
    output:
        report(
            "results/report/tables/{table}.html",
            caption="../report/table_html.rst",
            category=lambda wildcards: REPORT_TABLES[wildcards.table][1],
            subcategory=lambda wildcards: REPORT_TABLES[wildcards.table][2],
        ),
    log:
        "logs/report/table_html_{table}.log",
    benchmark:
        "logs/bench/table_html/{table}.tsv"
    wildcard_constraints:
        table="|".join(REPORT_TABLES),
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        simulated=table_simulated,
    script:
        "../scripts/table_html.py"
