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
            subcategory="Tables",
        ),
        groups=report(
            "results/tables/auc_groups.csv",
            caption="../report/auc_groups.rst",
            category="Classification",
            subcategory="Tables",
        ),
        bars=report(
            "results/figures/aauc_bars.png",
            caption="../report/aauc_bars.rst",
            category="Classification",
            subcategory="Figures",
        ),
        bars_pdf="results/figures/aauc_bars.pdf",
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
        figure_pdf="results/figures/mrmc.pdf",
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
        **{
            f"reliability_{fmt}_pdf": f"results/figures/reliability_{fmt}.pdf"
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
            figure_pdf="results/figures/external_vs_internal.pdf",
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


# One multi-panel ROC figure per training fraction: networks in rows, formats in columns.
rule roc_panels:
    input:
        predictions=lambda w: [
            f"results/classify/{n}/{f}/f{w.frac}/predictions.csv"
            for n in NETS
            for f in FORMATS
        ],
        manifest="results/cohort/manifest.csv",
        patients="results/split/patients.csv",
    output:
        figure=report(
            "results/figures/roc_f{frac}.png",
            caption="../report/roc_panels.rst",
            category="Classification",
            subcategory="ROC curves",
            # labels sort as text: a space-padded fraction lists 25, 50, 100 in that order
            labels=lambda wildcards: {
                "figure": "all networks and formats",
                "fraction": f"{int(wildcards.frac):>3}%",
            },
        ),
        vector="results/figures/roc_f{frac}.pdf",
    log:
        "logs/roc_panels_f{frac}.log",
    benchmark:
        "logs/bench/roc_panels/{frac}.tsv"
    wildcard_constraints:
        frac="|".join(str(f) for f in FRACTIONS),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        classes=config["classes"],
        nets=NETS,
        formats=FORMATS,
        evaluate=config["evaluate"],
    script:
        "../scripts/roc_panels.py"


# How many test patients (and networks) a study needs to detect the primary contrast and each
# secondary, from this run's OR components (anapart.metrics.planning); study B's primary claim too.
rule sample_size:
    input:
        unpack(sample_size_inputs),
    output:
        table=report(
            "results/tables/sample_size.csv",
            caption="../report/sample_size.rst",
            category="Primary endpoint",
        ),
        sentence="results/tables/sample_size_sentence.txt",
    log:
        "logs/sample_size.log",
    benchmark:
        "logs/bench/sample_size/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        classes=config["classes"],
        primary=config["stats"]["primary"],
        plan=config["stats"]["power"],
        # planned at Holm's first level, alpha / k, for k co-primaries (Grad-CAM, data-cost interaction)
        primary_alpha=config["stats"]["power"]["alpha"]
        / (
            1
            + bool(config["stats"]["primary"]["cam_score"])
            + (config["stats"]["interaction"] == "co-primary")
        ),
        replicate=REP_PRIMARY if on("replicates") else None,
        folds=REP_FOLDS,
        ci_level=config["evaluate"]["ci_level"],
    script:
        "../scripts/sample_size.py"
