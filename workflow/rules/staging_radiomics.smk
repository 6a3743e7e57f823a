# Study B's radiomics baseline (anapart.staging.radiomics), Table 5's comparison.


rule staging_radiomics:
    input:
        # ROIs at their native resolution and pixel spacing (not the networks' resized patches)
        images=f"results/staging/patches/{STG_RADIOMICS_PRE}/native_images.npy",
        masks=f"results/staging/patches/{STG_RADIOMICS_PRE}/native_masks.npy",
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
        classes=STG["classes"],
        settings=STG["radiomics"],
    script:
        "../scripts/staging_radiomics.py"
