# The study's tables and statistics over all classifiers.


rule auc_table:
    input:
        expand(
            "results/classify/{net}/{fmt}/f{frac}/metrics.json",
            net=NETS,
            fmt=FORMATS,
            frac=FRACTIONS,
        ),
    output:
        table=report(
            "results/tables/auc.csv",
            caption="../report/auc_table.rst",
            category="Classification",
        ),
        bars=report(
            "results/figures/aauc_bars.png",
            caption="../report/aauc_bars.rst",
            category="Classification",
        ),
    log:
        "logs/auc_table.log",
    benchmark:
        "logs/bench/auc_table/all.tsv"
    conda:
        ENV
    params:
        classes=config["classes"],
        formats=FORMATS,
        fractions=FRACTIONS,
    script:
        "../scripts/auc_table.py"


rule anova:
    input:
        "results/tables/auc.csv",
    output:
        anova=report(
            "results/tables/anova.csv",
            caption="../report/anova.rst",
            category="Statistics",
        ),
        posthoc=report(
            "results/tables/posthoc.csv",
            caption="../report/posthoc.rst",
            category="Statistics",
        ),
    log:
        "logs/anova.log",
    benchmark:
        "logs/bench/anova/all.tsv"
    conda:
        ENV
    params:
        classes=config["classes"],
    script:
        "../scripts/anova.py"
