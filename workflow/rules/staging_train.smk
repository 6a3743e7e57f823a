# Study B, stage one (anapart.staging.models): each single model trained on the training patches,
# its test-patch probabilities out; the ablation arm reuses the rule on the other preprocessing.


rule staging_train:
    input:
        unpack(staging_weights),
        images=f"results/staging/patches/{STG_MAIN}/images.npy",
        index=f"results/staging/patches/{STG_MAIN}/index.csv",
        train="results/staging/split/train.csv",
        validation="results/staging/split/validation.csv",
        test="results/staging/split/test.csv",
    output:
        model="results/staging/{model}/model.pt",
        predictions="results/staging/{model}/predictions.csv",
        history="results/staging/{model}/history.csv",
        curves=report(
            "results/staging/{model}/history.png",
            caption="../report/staging_history.rst",
            category="Staging",
            subcategory="Training curves",
            labels={"model": "{model}", "preprocessing": STG_MAIN},
        ),
        curves_pdf="results/staging/{model}/history.pdf",
    log:
        "logs/staging/train_{model}.log",
    benchmark:
        "logs/bench/staging_train/{model}.tsv"
    wildcard_constraints:
        model="|".join(STG_SINGLE) or "none",
    conda:
        ENV
    threads: STG["train"]["threads"]
    resources:
        mem_mb=6000,
        # grows with each retry: a job killed at its time limit resumes from its checkpoint
        runtime=lambda wildcards, attempt: 120 * attempt,
        gpu=GPU_JOB,
    params:
        cfg=STG_TRAIN_CFG,
        classes=STG["classes"],
        device=config["device"],
        # beside the model: an interrupted job resumes from it
        checkpoint=lambda w, output: output.model.replace(
            "model.pt", "checkpoint.partial.pt"
        ),
    script:
        "../scripts/staging_train.py"


# Table 3's other arm: the transfer models on the patches with the other preprocessing.
use rule staging_train as staging_train_ablation with:
    input:
        unpack(staging_weights),
        images=f"results/staging/patches/{STG_OTHER}/images.npy",
        index=f"results/staging/patches/{STG_OTHER}/index.csv",
        train="results/staging/split/train.csv",
        validation="results/staging/split/validation.csv",
        test="results/staging/split/test.csv",
    output:
        model="results/staging/ablation/{model}/model.pt",
        predictions="results/staging/ablation/{model}/predictions.csv",
        history="results/staging/ablation/{model}/history.csv",
        curves=report(
            "results/staging/ablation/{model}/history.png",
            caption="../report/staging_history.rst",
            category="Staging",
            subcategory="Training curves",
            labels={"model": "{model}", "preprocessing": STG_OTHER},
        ),
        curves_pdf="results/staging/ablation/{model}/history.pdf",
    log:
        "logs/staging/train_ablation_{model}.log",
    benchmark:
        "logs/bench/staging_train_ablation/{model}.tsv"
    wildcard_constraints:
        model="|".join(STG_MODELS) or "none",
    conda:
        ENV
