# Pretrained ImageNet weights, fetched once from timm's hub into the weights folder named by
# classify.pretrained / staging.train.pretrained. A local rule: it runs where Snakemake runs (a
# login node with internet), so training jobs on compute nodes never touch the network.


localrules:
    weights,


rule weights:
    output:
        f"{WEIGHTS_DIR}/{{net}}.safetensors",
    log:
        "logs/weights/{net}.log",
    benchmark:
        "logs/bench/weights/{net}.tsv"
    wildcard_constraints:
        net="|".join(re.escape(n) for n in WEIGHT_NETS),
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/weights.py"
