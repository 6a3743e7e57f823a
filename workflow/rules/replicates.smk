# Replicates of study A (replicates.folds >= 2): per (repeat, fold) its own patient split (fold k
# of repeat r is the test set), segmentation chosen on its own validation patients, crops; per
# training seed its classifiers. The same rules as the single split (same scripts), other paths:
#   results/replicates/r{repeat}/k{fold}/{split,seg,crops}/...
#   results/replicates/r{repeat}/k{fold}/s{seed}/classify/{net}/{fmt}/f{frac}/...
# One classifier of one fold and seed is one target and reruns alone. The pooled out-of-fold
# predictions of each (repeat, seed) make the primary MRMC analysis (anapart.metrics.replicates).
# Grad-CAM maps each fold's models (cam.fractions) and is pooled like the predictions; the
# external cohort stays with the single split.
REP_SPLIT = {
    "patients": f"{REP}/split/patients.csv",
    "test": f"{REP}/split/test.csv",
    **{f"train_f{f}": f"{REP}/split/train_f{f}.csv" for f in FRACTIONS},
}


if on("replicates"):

    use rule split as split_replicate with:
        input:
            manifest="results/cohort/manifest.csv",
        output:
            **REP_SPLIT,
        log:
            "logs/replicates/r{repeat}_k{fold}/split.log",
        benchmark:
            "logs/bench/split_replicate/r{repeat}_k{fold}.tsv"
        conda:
            ENV
        params:
            classes=config["classes"],
            split=config["split"],
            replicate=lambda w: {
                "folds": REP_FOLDS,
                "fold": int(w.fold),
                "repeat": int(w.repeat),
            },

    use rule seg_train as seg_train_replicate with:
        input:
            manifest="results/cohort/manifest.csv",
            images=ancient("results/cohort/images.npy"),
            masks=ancient("results/cohort/masks.npy"),
            store_fingerprint="results/cohort/fingerprint.json",
            patients=REP_SPLIT["patients"],
        output:
            model=f"{REP}/seg/{{arch}}/model.pt",
            metrics=f"{REP}/seg/{{arch}}/metrics.json",
        log:
            "logs/replicates/r{repeat}_k{fold}/seg_train_{arch}.log",
        benchmark:
            "logs/bench/seg_train_replicate/r{repeat}_k{fold}_{arch}.tsv"
        conda:
            ENV
        params:
            seg=config["segment"],
            device=config["device"],
            checkpoint=lambda w: f"results/replicates/r{w.repeat}/k{w.fold}/seg/{w.arch}/checkpoint.partial.pt",

    use rule seg_select as seg_select_replicate with:
        input:
            expand(
                "results/replicates/r{{repeat}}/k{{fold}}/seg/{arch}/metrics.json",
                arch=SEG_ARCHS,
            ),
        output:
            f"{REP}/seg/selected.json",
        log:
            "logs/replicates/r{repeat}_k{fold}/seg_select.log",
        benchmark:
            "logs/bench/seg_select_replicate/r{repeat}_k{fold}.tsv"
        conda:
            ENV

    use rule crops as crops_replicate with:
        input:
            manifest="results/cohort/manifest.csv",
            images=ancient("results/cohort/images.npy"),
            masks=ancient("results/cohort/masks.npy"),
            store_fingerprint="results/cohort/fingerprint.json",
            patients=REP_SPLIT["patients"],
            selected=f"{REP}/seg/selected.json",
            models=expand(
                "results/replicates/r{{repeat}}/k{{fold}}/seg/{arch}/model.pt",
                arch=SEG_ARCHS,
            ),
        output:
            **{
                f"{fmt}_{k}": f"{REP}/crops/{fmt}/{f}"
                for fmt in FORMATS
                for k, f in STORE_FILES
            },
            qc=f"{REP}/crops/qc.csv",
        log:
            "logs/replicates/r{repeat}_k{fold}/crops.log",
        benchmark:
            "logs/bench/crops_replicate/r{repeat}_k{fold}.tsv"
        conda:
            ENV

    use rule classify_train as classify_train_replicate with:
        input:
            unpack(classify_weights),
            images=ancient(f"{REP}/crops/{{fmt}}/images.npy"),
            store_fingerprint=f"{REP}/crops/{{fmt}}/fingerprint.json",
            index=f"{REP}/crops/{{fmt}}/index.csv",
            train=f"{REP}/split/train_f{{frac}}.csv",
            test=REP_SPLIT["test"],
        output:
            model=f"{REP_MODEL}/model.pt",
            predictions=f"{REP_MODEL}/predictions.csv",
        log:
            "logs/replicates/r{repeat}_k{fold}/s{seed}/{net}_{fmt}_f{frac}.log",
        benchmark:
            "logs/bench/classify_train_replicate/r{repeat}_k{fold}_s{seed}_{net}_{fmt}_{frac}.tsv"
        conda:
            ENV
        params:
            cfg=lambda w: {**TRAIN_CFG, "seed": int(w.seed)},
            preload_mb=config["classify"]["preload_mb"],
            classes=config["classes"],
            device=config["device"],
            checkpoint=lambda w: f"{REP_MODEL.format(**w)}/checkpoint.partial.pt",

    use rule classify_eval as classify_eval_replicate with:
        input:
            model=f"{REP_MODEL}/model.pt",
            predictions=f"{REP_MODEL}/predictions.csv",
            manifest="results/cohort/manifest.csv",
            patients=REP_SPLIT["patients"],
        output:
            metrics=f"{REP_MODEL}/metrics.json",
            roc=f"{REP_MODEL}/roc.png",
            roc_pdf=f"{REP_MODEL}/roc.pdf",
        log:
            "logs/replicates/r{repeat}_k{fold}/s{seed}/{net}_{fmt}_f{frac}_eval.log",
        benchmark:
            "logs/bench/classify_eval_replicate/r{repeat}_k{fold}_s{seed}_{net}_{fmt}_{frac}.tsv"
        conda:
            ENV

    rule replicate_tables:
        input:
            metrics=rep_expand(f"{REP_MODEL}/metrics.json"),
            predictions=rep_expand(f"{REP_MODEL}/predictions.csv"),
            manifest="results/cohort/manifest.csv",
        output:
            auc=report(
                "results/replicates/tables/auc.csv",
                caption="../report/replicates_auc.rst",
                category="Replicates",
            ),
            mrmc=report(
                "results/replicates/tables/mrmc.csv",
                caption="../report/replicates_mrmc.rst",
                category="Replicates",
            ),
            spread=report(
                "results/replicates/tables/mrmc_spread.csv",
                caption="../report/replicates_spread.rst",
                category="Replicates",
            ),
            figure=report(
                "results/replicates/figures/mrmc.png",
                caption="../report/replicates_figure.rst",
                category="Replicates",
            ),
            figure_pdf="results/replicates/figures/mrmc.pdf",
        log:
            "logs/replicate_tables.log",
        benchmark:
            "logs/bench/replicate_tables/all.tsv"
        conda:
            ENV
        resources:
            mem_mb=3000,
            runtime=60,
        params:
            classes=config["classes"],
            folds=REP_FOLDS,
            primary=REP_PRIMARY,
            primary_contrast=config["stats"]["primary"]["contrast"],
            figure=config["stats"]["primary"]["figure"],
            interaction=config["stats"]["interaction"],
            alpha=round(1 - config["evaluate"]["ci_level"], 10),
            ci_level=config["evaluate"]["ci_level"],
        script:
            "../scripts/replicate_tables.py"

    use rule cam as cam_replicate with:
        input:
            model=f"{REP_MODEL}/model.pt",
            predictions=f"{REP_MODEL}/predictions.csv",
            images=ancient(f"{REP}/crops/{{fmt}}/images.npy"),
            store_fingerprint=f"{REP}/crops/{{fmt}}/fingerprint.json",
            index=f"{REP}/crops/{{fmt}}/index.csv",
            common_index=f"{REP}/crops/{CAM_COMMON_FMT}/index.csv",
            manifest="results/cohort/manifest.csv",
            cohort_images=ancient("results/cohort/images.npy"),
            masks=ancient("results/cohort/masks.npy"),
            cohort_fingerprint="results/cohort/fingerprint.json",
        output:
            scores=f"{REP_CAM}/scores.csv",
            examples=f"{REP_CAM}/examples.png",
            examples_pdf=f"{REP_CAM}/examples.pdf",
        log:
            "logs/replicates/r{repeat}_k{fold}/s{seed}/cam_{net}_{fmt}_f{frac}.log",
        benchmark:
            "logs/bench/cam_replicate/r{repeat}_k{fold}_s{seed}_{net}_{fmt}_{frac}.tsv"
        conda:
            ENV

    rule replicate_cam:
        input:
            scores=rep_expand(f"{REP_CAM}/scores.csv", CAM_FRACTIONS),
            manifest="results/cohort/manifest.csv",
        output:
            report(
                "results/replicates/tables/cam_tests.csv",
                caption="../report/replicates_cam.rst",
                category="Replicates",
            ),
        log:
            "logs/replicate_cam.log",
        benchmark:
            "logs/bench/replicate_cam/all.tsv"
        conda:
            ENV
        resources:
            mem_mb=3000,
            runtime=60,
        params:
            folds=REP_FOLDS,
            formats=FORMATS,
            alpha=round(1 - config["evaluate"]["ci_level"], 10),
        script:
            "../scripts/replicate_cam.py"
