# Segmentation of the perinasopharyngeal region: U-Net and DeepLabV3, the better one by Dice.


rule seg_train:
    input:
        manifest="results/cohort/manifest.csv",
        # paths only; the store's content fingerprint is the trigger (crop.smk)
        images=ancient("results/cohort/images.npy"),
        masks=ancient("results/cohort/masks.npy"),
        store_fingerprint="results/cohort/fingerprint.json",
        patients="results/split/patients.csv",
    output:
        model="results/seg/{arch}/model.pt",
        metrics="results/seg/{arch}/metrics.json",
    log:
        "logs/seg_train_{arch}.log",
    benchmark:
        "logs/bench/seg_train/{arch}.tsv"
    priority: PRIORITY["critical"]
    conda:
        ENV
    threads: config["segment"]["threads"]
    resources:
        mem_mb=4000,
        # grows with each retry: a job killed at its time limit resumes from its checkpoint
        runtime=lambda wildcards, attempt: 120 * attempt,
        gpu=GPU_JOB,
    params:
        seg=config["segment"],
        device=config["device"],
        checkpoint=lambda w: f"results/seg/{w.arch}/checkpoint.partial.pt",
    script:
        "../scripts/seg_train.py"


rule seg_select:
    input:
        expand("results/seg/{arch}/metrics.json", arch=SEG_ARCHS),
    output:
        report(
            "results/seg/selected.json",
            caption="../report/seg_selected.rst",
            category="Segmentation",
        ),
    log:
        "logs/seg_select.log",
    benchmark:
        "logs/bench/seg_select/all.tsv"
    priority: PRIORITY["critical"]
    conda:
        ENV
    script:
        "../scripts/seg_select.py"


rule seg_figure:
    input:
        manifest="results/cohort/manifest.csv",
        patients="results/split/patients.csv",
        models=expand("results/seg/{arch}/model.pt", arch=SEG_ARCHS),
    output:
        report(
            "results/seg/qc_examples.png",
            caption="../report/seg_examples.rst",
            category="Segmentation",
        ),
        "results/seg/qc_examples.pdf",
    log:
        "logs/seg_figure.log",
    benchmark:
        "logs/bench/seg_figure/all.tsv"
    conda:
        ENV
    params:
        archs=SEG_ARCHS,
        device=config["device"],
        threshold=config["segment"]["threshold"],
    script:
        "../scripts/seg_figure.py"
