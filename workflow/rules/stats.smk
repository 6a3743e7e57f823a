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
            category="Statistical tests",
        ),
        posthoc=report(
            "results/tables/posthoc.csv",
            caption="../report/posthoc.rst",
            category="Statistical tests",
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


# The formats as a multi-reader multi-case study (networks = readers, test patients = cases):
# Obuchowski-Rockette with Hillis' df, random networks and patients (primary) and fixed networks.
rule mrmc:
    input:
        predictions=expand(
            "results/classify/{net}/{fmt}/f{frac}/predictions.csv",
            net=NETS,
            fmt=FORMATS,
            frac=FRACTIONS,
        ),
        manifest="results/cohort/manifest.csv",
    output:
        table=report(
            "results/tables/mrmc.csv",
            caption="../report/mrmc.rst",
            category="Statistical tests",
        ),
        figure=report(
            "results/figures/mrmc.png",
            caption="../report/mrmc_figure.rst",
            category="Statistical tests",
        ),
    log:
        "logs/mrmc.log",
    benchmark:
        "logs/bench/mrmc/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        classes=config["classes"],
        primary=config["stats"]["primary"]["contrast"],
        figure=config["stats"]["primary"]["figure"],
        interaction=config["stats"]["interaction"],
        alpha=round(1 - config["evaluate"]["ci_level"], 10),
    script:
        "../scripts/mrmc.py"


# The declared primary endpoint first (stats.primary), every other format contrast secondary; and
# the report's front page, which states it (Snakefile: report:).
rule primary:
    input:
        unpack(primary_inputs),
        mrmc="results/tables/mrmc.csv",
    output:
        table=report(
            "results/tables/primary.csv",
            caption="../report/primary.rst",
            category="Primary endpoint",
        ),
        front=FRONT_PAGE,
    log:
        "logs/primary.log",
    benchmark:
        "logs/bench/primary/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        primary=config["stats"]["primary"],
        interaction=config["stats"]["interaction"],
        ci_level=config["evaluate"]["ci_level"],
        replicate=REP_PRIMARY,
    script:
        "../scripts/primary.py"


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
            category="Statistical tests",
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


rule calibration:
    input:
        unpack(calibration_external_inputs),
        metrics=[f"results/classify/{n}/{f}/f{r}/metrics.json" for n, f, r in MODELS],
        predictions=[
            f"results/classify/{n}/{f}/f{r}/predictions.csv" for n, f, r in MODELS
        ],
    output:
        **{
            f"reliability_{fmt}": report(
                f"results/figures/reliability_{fmt}.png",
                caption="../report/reliability.rst",
                category="Classification",
                subcategory="Calibration",
                labels={"format": fmt},
            )
            for fmt in FORMATS
        },
        table=report(
            "results/tables/calibration.csv",
            caption="../report/calibration_table.rst",
            category="Classification",
            subcategory="Calibration",
        ),
    log:
        "logs/calibration.log",
    benchmark:
        "logs/bench/calibration/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        classes=config["classes"],
        models=MODELS,
        formats=FORMATS,
        fractions=FRACTIONS,
        bins=config["evaluate"]["calibration_bins"],  # schema default 10
    script:
        "../scripts/calibration.py"


if on("external"):

    rule auc_external:
        input:
            [f"results/classify/{n}/{f}/f{r}/metrics.json" for n, f, r in MODELS],
        output:
            table=report(
                "results/tables/auc_external.csv",
                caption="../report/auc_external.rst",
                category="External validation",
            ),
            figure=report(
                "results/figures/external_vs_internal.png",
                caption="../report/external_vs_internal.rst",
                category="External validation",
            ),
        log:
            "logs/auc_external.log",
        benchmark:
            "logs/bench/auc_external/all.tsv"
        conda:
            ENV
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            classes=config["classes"],
            formats=FORMATS,
            fractions=FRACTIONS,
        script:
            "../scripts/auc_external.py"
