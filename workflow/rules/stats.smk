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
        groups=report(
            "results/tables/auc_groups.csv",
            caption="../report/auc_groups.rst",
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


rule auc_pairs:
    input:
        predictions=expand(
            "results/classify/{net}/{fmt}/f{frac}/predictions.csv",
            net=NETS,
            fmt=FORMATS,
            frac=FRACTIONS,
        ),
        manifest="results/cohort/manifest.csv",
        patients="results/split/patients.csv",
    output:
        report(
            "results/tables/auc_pairs.csv",
            caption="../report/auc_pairs.rst",
            category="Statistics",
        ),
    log:
        "logs/auc_pairs.log",
    benchmark:
        "logs/bench/auc_pairs/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        classes=config["classes"],
        formats=FORMATS,
        evaluate=config["evaluate"],
    script:
        "../scripts/auc_pairs.py"
