# The 36 classifiers: one job per (net, format, fraction); on a cluster each asks for one GPU.
# The training job also predicts the test cohort (the model is in memory, torch and timm are
# loaded); scoring is a separate light job, so changing the bootstrap retrains nothing.
# With an external cohort the job also predicts its crops, after the model is saved, for
# prediction only: no external label is an input (scoring joins them), and the model never sees
# the external images while it trains (a changed external cohort reruns the job; the model comes
# out byte-identical, tests/workflow/test_workflow.py).


rule classify_train:
    input:
        unpack(classify_weights),
        unpack(classify_external),
        # paths only (ancient): the 'full' store is a hard link of the cohort store (crop.smk); the
        # trigger is the store's content fingerprint, written by crops (anapart.io.fingerprint)
        images=ancient("results/crops/{fmt}/images.npy"),
        store_fingerprint="results/crops/{fmt}/fingerprint.json",
        index="results/crops/{fmt}/index.csv",
        train="results/split/train_f{frac}.csv",
        test="results/split/test.csv",
    output:
        **classify_external_output(),
        model="results/classify/{net}/{fmt}/f{frac}/model.pt",
        predictions="results/classify/{net}/{fmt}/f{frac}/predictions.csv",
    log:
        "logs/classify/{net}_{fmt}_f{frac}.log",
    benchmark:
        "logs/bench/classify_train/{net}_{fmt}_{frac}.tsv"
    priority: PRIORITY["train"]
    conda:
        ENV
    threads: config["classify"]["threads"]
    resources:
        mem_mb=6000,
        # grows with each retry: a job killed at its time limit resumes from its checkpoint
        runtime=lambda wildcards, attempt: 240 * attempt,
        gpu=GPU_JOB,
    params:
        cfg=TRAIN_CFG,
        preload_mb=config["classify"]["preload_mb"],
        classes=config["classes"],
        device=config["device"],
        checkpoint=lambda w: f"results/classify/{w.net}/{w.fmt}/f{w.frac}/checkpoint.partial.pt",
    script:
        "../scripts/classify_train.py"


rule classify_eval:
    input:
        unpack(external_eval_inputs),
        # not read here, but the scores belong to this model: a rebuilt model is rescored
        model="results/classify/{net}/{fmt}/f{frac}/model.pt",
        predictions="results/classify/{net}/{fmt}/f{frac}/predictions.csv",
        manifest="results/cohort/manifest.csv",
        patients="results/split/patients.csv",
    output:
        metrics="results/classify/{net}/{fmt}/f{frac}/metrics.json",
        roc=report(
            "results/classify/{net}/{fmt}/f{frac}/roc.png",
            caption="../report/roc.rst",
            category="Classification",
            subcategory="ROC curves",
            # labels sort as text: a space-padded fraction lists 25, 50, 100 in that order
            labels=lambda wildcards: {
                "network": wildcards.net,
                "format": wildcards.fmt,
                "training fraction": f"{int(wildcards.frac):>3}%",
            },
        ),
        roc_pdf="results/classify/{net}/{fmt}/f{frac}/roc.pdf",
    log:
        "logs/classify/{net}_{fmt}_f{frac}_eval.log",
    benchmark:
        "logs/bench/classify_eval/{net}_{fmt}_{frac}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        evaluate=config["evaluate"],
        classes=config["classes"],
    script:
        "../scripts/classify_eval.py"
