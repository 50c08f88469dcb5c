# Test x train distance matrix -> KNN baseline; exact 1-NN query latency.


rule knn:
    input:
        matrix="results/{dataset}/{protocol}/distances/{metric}/test-train.npy",
        split="results/{dataset}/{protocol}/split.tsv",
        store="data/interim/{dataset}/sequences.parquet",
    output:
        "results/{dataset}/{protocol}/knn/{metric}.json",
    log:
        "logs/knn/{dataset}/{protocol}/{metric}.log",
    benchmark:
        "benchmarks/knn/{dataset}/{protocol}/{metric}.tsv"
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("knn"),
        code=CODE["models"],
    shell:
        "exec python -m geokd knn {input.matrix:q} {input.split:q} {output:q}"
        " --store {input.store:q} --settings {params.settings:q} > {log:q} 2>&1"


rule knn_latency:
    input:
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
    output:
        "results/{dataset}/{protocol}/knn/latency_{metric}.json",
    log:
        "logs/knn_latency/{dataset}/{protocol}/{metric}.log",
    benchmark:
        "benchmarks/knn_latency/{dataset}/{protocol}/{metric}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    params:
        settings=settings_file("knn_latency"),
        code=CODE["models"],
    shell:
        "exec python -m geokd knn-latency {input.store:q} {input.split:q} {output:q}"
        " --threads {threads} --settings {params.settings:q} > {log:q} 2>&1"
