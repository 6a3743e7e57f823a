# The model package: one classifier (config package.*) with the segmentation model that cut its
# crops, as safetensors, its preprocessing, the shareable config and a model card, for `anapart
# predict` at another site (anapart.export; docs/share-models.md). Not part of rule all: a target.
from anapart.export.build import choice_problems, resolve_choice

if workflow.is_main_process:
    _package_problems = choice_problems(config)
    if _package_problems:
        raise ValueError("config:\n  " + "\n  ".join(_package_problems))
PACKAGE = resolve_choice(config)
PACKAGE_MODEL = "results/classify/{net}/{format}/f{fraction}".format(**PACKAGE)


rule package:
    input:
        seg_selected="results/seg/selected.json",
        seg_models=expand("results/seg/{arch}/model.pt", arch=SEG_ARCHS),
        model=f"{PACKAGE_MODEL}/model.pt",
        metrics=f"{PACKAGE_MODEL}/metrics.json",
        manifest="results/cohort/manifest.csv",
        masks="results/cohort/masks.npy",
        check="results/cohort/check.json",
        patients="results/split/patients.csv",
        train=f"results/split/train_f{PACKAGE['fraction']}.csv",
        test="results/split/test.csv",
        lock="requirements.lock",
    output:
        "results/package/model.zip",
    log:
        "logs/package.log",
    benchmark:
        "logs/bench/package/all.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # what the package holds (the merged config goes in without salts or paths: anapart.export.build)
        choice=PACKAGE,
        config=public_config(config),
    script:
        "../scripts/package.py"
