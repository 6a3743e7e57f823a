# Interpretability: Grad-CAM of every test lesion slice for its true class (the same slices for every
# model; `correct` kept as a column), scored on the lesion with its chance level, in each format's
# window and in the common (seg112) window.


rule cam:
    input:
        model="results/classify/{net}/{fmt}/f{frac}/model.pt",
        predictions="results/classify/{net}/{fmt}/f{frac}/predictions.csv",
        # stores as paths only; their content fingerprints are the triggers (crop.smk)
        images=ancient("results/crops/{fmt}/images.npy"),
        store_fingerprint="results/crops/{fmt}/fingerprint.json",
        index="results/crops/{fmt}/index.csv",
        common_index=f"results/crops/{CAM_COMMON_FMT}/index.csv",
        manifest="results/cohort/manifest.csv",
        cohort_images=ancient("results/cohort/images.npy"),
        masks=ancient("results/cohort/masks.npy"),
        cohort_fingerprint="results/cohort/fingerprint.json",
    output:
        scores="results/cam/{net}/{fmt}/f{frac}/scores.csv",
        examples=report(
            "results/cam/{net}/{fmt}/f{frac}/examples.png",
            caption="../report/cam_examples.rst",
            category="Interpretability",
            subcategory="Grad-CAM examples",
            labels={"network": "{net}", "format": "{fmt}", "fraction": "{frac}%"},
        ),
        examples_pdf="results/cam/{net}/{fmt}/f{frac}/examples.pdf",
    log:
        "logs/cam/{net}_{fmt}_f{frac}.log",
    benchmark:
        "logs/bench/cam/{net}_{fmt}_{frac}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        layer=lambda w: config["cam"]["target_layers"][w.net],
        threshold=config["cam"]["threshold"],
        batch_size=config["cam"]["batch_size"],
    script:
        "../scripts/cam.py"


rule cam_stats:
    input:
        scores=expand(
            "results/cam/{net}/{fmt}/f{frac}/scores.csv",
            net=NETS,
            fmt=FORMATS,
            frac=CAM_FRACTIONS,
        ),
        manifest="results/cohort/manifest.csv",
    output:
        scores=report(
            "results/tables/cam_scores.csv",
            caption="../report/cam_scores.rst",
            category="Interpretability",
            subcategory="Tables",
        ),
        tests=report(
            "results/tables/cam_tests.csv",
            caption="../report/cam_tests.rst",
            category="Statistical tests",
        ),
    log:
        "logs/cam_stats.log",
    benchmark:
        "logs/bench/cam_stats/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        formats=FORMATS,
        alpha=round(1 - config["evaluate"]["ci_level"], 10),
    script:
        "../scripts/cam_stats.py"


if on("cam.reviewers"):

    rule cam_agreement:
        input:
            scores=expand(
                "results/cam/{net}/{fmt}/f{frac}/scores.csv",
                net=NETS,
                fmt=FORMATS,
                frac=CAM_FRACTIONS,
            ),
            # a function: the report prints a rule's inputs, and the folder may be absolute
            reviewers=lambda w: config["cam"]["reviewers_dir"],
        output:
            report(
                "results/tables/cam_agreement.csv",
                caption="../report/cam_agreement.rst",
                category="Interpretability",
                subcategory="Tables",
            ),
        log:
            "logs/cam_agreement.log",
        benchmark:
            "logs/bench/cam_agreement/all.tsv"
        conda:
            ENV
        script:
            "../scripts/cam_agreement.py"
