# The anatomical partition: full / seg112 / seg224 stores cut at the predicted region's centre.


rule crops:
    input:
        manifest="results/cohort/manifest.csv",
        images="results/cohort/images.npy",
        masks="results/cohort/masks.npy",
        patients="results/split/patients.csv",
        selected="results/seg/selected.json",
        models=expand("results/seg/{arch}/model.pt", arch=SEG_ARCHS),
    output:
        **{
            f"{fmt}_{k}": f"results/crops/{fmt}/{f}"
            for fmt in FORMATS
            for k, f in (("images", "images.npy"), ("index", "index.csv"))
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
        threshold=config["segment"].get("threshold", 0.5),
        device=config.get("device", "auto"),
    script:
        "../scripts/crops.py"
