# Study B, preprocessing (anapart.staging.patches): CLAHE and square ROI patches of tumours and lymph
# nodes, one patch store per preprocessing arm.


rule staging_patches:
    input:
        unpack(staging_inputs),
    output:
        images=f"{STG_PATCHES}/images.npy",
        masks=f"{STG_PATCHES}/masks.npy",
        index=f"{STG_PATCHES}/index.csv",
        # each ROI window at its native pixel grid (radiomics)
        native_images=f"{STG_PATCHES}/native_images.npy",
        native_masks=f"{STG_PATCHES}/native_masks.npy",
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
        paths=staging_paths() if STG["cohort"]["source"] == "synthetic" else {},
        classes=STG["classes"],
        sequences=STG["sequences"],
        patches=STG["patches"],
        salt=salt_params("staging.cohort"),
        clahe=lambda w: STG["clahe"] if w.pre == "clahe" else None,
    script:
        "../scripts/staging_patches.py"
