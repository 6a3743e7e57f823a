# Study B's Grad-CAM examples (anapart.staging.cam.staging_cam_examples, the paper's Fig. 7).


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
        figure_pdf="results/staging/{model}/cam.pdf",
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
        classes=STG["classes"],
        threshold=STG["cam"]["threshold"],
    script:
        "../scripts/staging_cam.py"
