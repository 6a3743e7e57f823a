# The anatomical partition: full / seg112 / seg224 stores cut at the predicted region's centre.


rule crops:
    input:
        manifest="results/cohort/manifest.csv",
        # the store as paths only (ancient): the 'full' store of every crops job is a hard link of
        # images.npy and Snakemake touches each job's outputs, which bumps the shared mtime. The
        # trigger is the store's content fingerprint (ingest writes it; anapart.io.fingerprint)
        images=ancient("results/cohort/images.npy"),
        masks=ancient("results/cohort/masks.npy"),
        store_fingerprint="results/cohort/fingerprint.json",
        patients="results/split/patients.csv",
        selected="results/seg/selected.json",
        models=expand("results/seg/{arch}/model.pt", arch=SEG_ARCHS),
    output:
        **{
            f"{fmt}_{k}": f"results/crops/{fmt}/{f}"
            for fmt in FORMATS
            for k, f in STORE_FILES
        },
        qc=report(
            "results/crops/qc.csv", caption="../report/crops_qc.rst", category="QC"
        ),
    log:
        "logs/crops.log",
    benchmark:
        "logs/bench/crops/all.tsv"
    priority: PRIORITY["critical"]
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        formats=FORMATS,
        crop=config["crop"],
        threshold=config["segment"]["threshold"],
        device=config["device"],
    script:
        "../scripts/crops.py"


# The external cohort is cropped by the same selected segmentation model; an empty prediction
# falls back to the main cohort's training prior (as for any slice), never to external masks.
if on("external"):

    use rule crops as crops_external with:
        input:
            manifest=f"{EXTERNAL_DIR}/cohort/manifest.csv",
            images=ancient(f"{EXTERNAL_DIR}/cohort/images.npy"),
            masks=ancient(f"{EXTERNAL_DIR}/cohort/masks.npy"),
            store_fingerprint=f"{EXTERNAL_DIR}/cohort/fingerprint.json",
            training_manifest="results/cohort/manifest.csv",
            training_masks=ancient("results/cohort/masks.npy"),
            training_fingerprint="results/cohort/fingerprint.json",
            patients="results/split/patients.csv",
            selected="results/seg/selected.json",
            models=expand("results/seg/{arch}/model.pt", arch=SEG_ARCHS),
        output:
            **{
                f"{fmt}_{k}": f"{EXTERNAL_DIR}/crops/{fmt}/{f}"
                for fmt in FORMATS
                for k, f in STORE_FILES
            },
            qc=report(
                f"{EXTERNAL_DIR}/crops/qc.csv",
                caption="../report/crops_qc_external.rst",
                category="External validation",
            ),
        log:
            "logs/external/crops.log",
        benchmark:
            "logs/bench/crops_external/all.tsv"
        conda:
            ENV


# The paper's Fig. 2: the formats side by side on one test slice.
rule crop_examples:
    input:
        manifest="results/cohort/manifest.csv",
        # paths only; the fingerprint is the trigger (see crops)
        images=ancient("results/cohort/images.npy"),
        masks=ancient("results/cohort/masks.npy"),
        store_fingerprint="results/cohort/fingerprint.json",
        patients="results/split/patients.csv",
        indexes=expand("results/crops/{fmt}/index.csv", fmt=FORMATS),
    output:
        figure=report(
            "results/figures/crop_examples.png",
            caption="../report/crop_examples.rst",
            category="QC",
        ),
        figure_pdf="results/figures/crop_examples.pdf",
    log:
        "logs/crop_examples.log",
    benchmark:
        "logs/bench/crop_examples/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        formats=FORMATS,
    script:
        "../scripts/crop_examples.py"
