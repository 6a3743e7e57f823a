# Study B: LA-NPC stage III vs IVa (Huang et al. 2021): CLAHE, ROI patches, transfer learning of
# five CNNs plus a basic CNN, soft voting, per-stage metrics, a radiomics baseline, Grad-CAM.
rule staging_synthetic:
    output:
        directory(STAGING_DIR),
    log:
        "logs/staging/synthetic.log",
    benchmark:
        "logs/bench/staging_synthetic/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=STG.get("synthetic", {}),
    script:
        "../scripts/staging_synthetic.py"


rule staging_patches:
    input:
        unpack(staging_inputs),
    output:
        images=f"{STG_PATCHES}/images.npy",
        masks=f"{STG_PATCHES}/masks.npy",
        index=f"{STG_PATCHES}/index.csv",
        report=report(
            f"{STG_PATCHES}/report.json",
            caption="../report/staging_patches.rst",
            category="Staging",
            subcategory="Patches",
            labels={"preprocessing": "{pre}"},
        ),
    log:
        "logs/staging/patches_{pre}.log",
    benchmark:
        "logs/bench/staging_patches/{pre}.tsv"
    wildcard_constraints:
        pre="clahe|raw",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        paths=staging_paths(),
        stg=STG,
    script:
        "../scripts/staging_patches.py"


rule staging_split:
    input:
        index=f"results/staging/patches/{STG_MAIN}/index.csv",
    output:
        patients="results/staging/split/patients.csv",
        train="results/staging/split/train.csv",
        test="results/staging/split/test.csv",
    log:
        "logs/staging/split.log",
    benchmark:
        "logs/bench/staging_split/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=STG.get("classes"),
        split=STG.get("split", {}),
    script:
        "../scripts/staging_split.py"


rule staging_train:
    input:
        unpack(staging_weights),
        images=f"results/staging/patches/{STG_MAIN}/images.npy",
        index=f"results/staging/patches/{STG_MAIN}/index.csv",
        train="results/staging/split/train.csv",
        test="results/staging/split/test.csv",
    output:
        model="results/staging/{model}/model.pt",
        predictions="results/staging/{model}/predictions.csv",
    log:
        "logs/staging/train_{model}.log",
    benchmark:
        "logs/bench/staging_train/{model}.tsv"
    wildcard_constraints:
        model="|".join(STG_SINGLE) or "none",
    conda:
        ENV
    threads: STG.get("train", {}).get("threads", 1)
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        cfg=STG_TRAIN_CFG,
        classes=STG.get("classes"),
        device=config.get("device", "auto"),
        checkpoint=lambda w: f"results/staging/{w.model}/checkpoint.partial.pt",
    script:
        "../scripts/staging_train.py"


rule staging_train_ablation:
    input:
        unpack(staging_weights),
        images=f"results/staging/patches/{STG_OTHER}/images.npy",
        index=f"results/staging/patches/{STG_OTHER}/index.csv",
        train="results/staging/split/train.csv",
        test="results/staging/split/test.csv",
    output:
        model="results/staging/ablation/{model}/model.pt",
        predictions="results/staging/ablation/{model}/predictions.csv",
    log:
        "logs/staging/train_ablation_{model}.log",
    benchmark:
        "logs/bench/staging_train_ablation/{model}.tsv"
    wildcard_constraints:
        model="|".join(STG_MODELS) or "none",
    conda:
        ENV
    threads: STG.get("train", {}).get("threads", 1)
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        cfg=STG_TRAIN_CFG,
        classes=STG.get("classes"),
        device=config.get("device", "auto"),
        checkpoint=lambda w: f"results/staging/ablation/{w.model}/checkpoint.partial.pt",
    script:
        "../scripts/staging_train.py"


rule staging_ensemble:
    input:
        expand("results/staging/{model}/predictions.csv", model=STG_MODELS),
    output:
        predictions="results/staging/ensemble/predictions.csv",
    log:
        "logs/staging/ensemble.log",
    benchmark:
        "logs/bench/staging_ensemble/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=STG.get("classes"),
    script:
        "../scripts/staging_ensemble.py"


rule staging_radiomics:
    input:
        images=f"results/staging/patches/{STG_RADIOMICS_PRE}/images.npy",
        masks=f"results/staging/patches/{STG_RADIOMICS_PRE}/masks.npy",
        index=f"results/staging/patches/{STG_RADIOMICS_PRE}/index.csv",
        train="results/staging/split/train.csv",
        test="results/staging/split/test.csv",
    output:
        predictions="results/staging/radiomics/predictions.csv",
        info="results/staging/radiomics/model.json",
    log:
        "logs/staging/radiomics.log",
    benchmark:
        "logs/bench/staging_radiomics/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        classes=STG.get("classes"),
        settings=STG.get("radiomics", {}),
    script:
        "../scripts/staging_radiomics.py"


rule staging_eval:
    input:
        predictions="results/staging/{name}/predictions.csv",
    output:
        metrics="results/staging/{name}/metrics.json",
        confusion=report(
            "results/staging/{name}/confusion.png",
            caption="../report/staging_confusion.rst",
            category="Staging",
            subcategory="Confusion matrices",
            labels={"model": "{name}"},
        ),
    log:
        "logs/staging/eval_{name}.log",
    benchmark:
        "logs/bench/staging_eval/{name}.tsv"
    wildcard_constraints:
        name="|".join(re.escape(n) for n in STG_EVALUATED) or "none",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=STG.get("classes"),
        bins=config["evaluate"]["calibration_bins"],  # schema default 10
    script:
        "../scripts/staging_eval.py"


rule staging_cam:
    input:
        model="results/staging/{model}/model.pt",
        predictions="results/staging/{model}/predictions.csv",
        images=f"results/staging/patches/{STG_MAIN}/images.npy",
        masks=f"results/staging/patches/{STG_MAIN}/masks.npy",
        index=f"results/staging/patches/{STG_MAIN}/index.csv",
    output:
        scores="results/staging/{model}/cam.csv",
        figure=report(
            "results/staging/{model}/cam.png",
            caption="../report/staging_cam.rst",
            category="Staging",
            subcategory="Grad-CAM heatmaps",
            labels={"model": "{model}"},
        ),
    log:
        "logs/staging/cam_{model}.log",
    benchmark:
        "logs/bench/staging_cam/{model}.tsv"
    wildcard_constraints:
        model="|".join(STG_SINGLE) or "none",
    conda:
        ENV
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        classes=STG.get("classes"),
        threshold=STG.get("cam", {}).get("threshold", 0.5),
    script:
        "../scripts/staging_cam.py"


rule staging_tables:
    input:
        metrics=expand("results/staging/{name}/metrics.json", name=STG_EVALUATED),
        predictions=expand(
            "results/staging/{name}/predictions.csv",
            name=[n for n in STG_EVALUATED if not n.startswith("ablation/")],
        ),
        index=f"results/staging/patches/{STG_MAIN}/index.csv",
        test="results/staging/split/test.csv",
    output:
        table3=report(
            "results/staging/tables/table3_preprocessing.csv",
            caption="../report/staging_table3.rst",
            category="Staging",
            subcategory="Tables",
        ),
        table4=report(
            "results/staging/tables/table4_models.csv",
            caption="../report/staging_table4.rst",
            category="Staging",
            subcategory="Tables",
        ),
        table5=report(
            "results/staging/tables/table5_comparison.csv",
            caption="../report/staging_table5.rst",
            category="Staging",
            subcategory="Tables",
        ),
        patients=report(
            "results/staging/tables/patients.csv",
            caption="../report/staging_patients.rst",
            category="Staging",
            subcategory="Tables",
        ),
        figure=report(
            "results/staging/figures/confusion_matrices.png",
            caption="../report/staging_confusion_grid.rst",
            category="Staging",
            subcategory="Tables",
        ),
    log:
        "logs/staging/tables.log",
    benchmark:
        "logs/bench/staging_tables/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=STG.get("classes"),
        names=STG_EVALUATED,
        models=STG_MODELS,
        main=STG_MAIN,
        # the demo's TNM stages are generated by a rule (synthetic cohort), not read by clinicians
        tnm_simulated=STG.get("cohort", {}).get("source", "synthetic") == "synthetic",
        evaluate=config["evaluate"],
    script:
        "../scripts/staging_tables.py"


rule staging_reliability:
    input:
        expand(
            "results/staging/{name}/predictions.csv",
            name=[n for n in STG_EVALUATED if not n.startswith("ablation/")],
        ),
    output:
        report(
            "results/staging/figures/reliability.png",
            caption="../report/staging_reliability.rst",
            category="Staging",
            subcategory="Tables",
        ),
    log:
        "logs/staging/reliability.log",
    benchmark:
        "logs/bench/staging_reliability/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        classes=STG.get("classes"),
        names=[n for n in STG_EVALUATED if not n.startswith("ablation/")],
        bins=config["evaluate"]["calibration_bins"],  # schema default 10
    script:
        "../scripts/staging_reliability.py"
