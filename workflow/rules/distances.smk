# Split tables -> Procrustes-DTW distance matrices, computed in blocks (one job per block).


rule distance_block:
    input:
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
    output:
        npy=temp(
            "results/{dataset}/{protocol}/distances/{metric}/{query}-{reference}/block_{bi}_{bj}.npy"
        ),
        sidecar=temp(
            "results/{dataset}/{protocol}/distances/{metric}/{query}-{reference}/block_{bi}_{bj}.npy.json"
        ),
    log:
        "logs/distance_block/{dataset}/{protocol}/{metric}/{query}-{reference}/{bi}_{bj}.log",
    benchmark:
        "benchmarks/distance_block/{dataset}/{protocol}/{metric}/{query}-{reference}/{bi}_{bj}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=block_mem_mb,
        runtime=block_runtime,
    params:
        settings=settings_file("distances"),
        code=CODE["distances"],
    shell:
        "exec python -m geokd distances block {input.store:q} {input.split:q} {output.npy:q}"
        " --query {wildcards.query} --reference {wildcards.reference}"
        " --block {wildcards.bi} {wildcards.bj} --threads {threads}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule distance_matrix:
    input:
        blocks=distance_blocks,
        sidecars=block_sidecars,
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
    output:
        npy="results/{dataset}/{protocol}/distances/{metric}/{query}-{reference}.npy",
        sidecar="results/{dataset}/{protocol}/distances/{metric}/{query}-{reference}.npy.json",
    log:
        "logs/distance_matrix/{dataset}/{protocol}/{metric}/{query}-{reference}.log",
    benchmark:
        "benchmarks/distance_matrix/{dataset}/{protocol}/{metric}/{query}-{reference}.tsv"
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=matrix_mem_mb,
    params:
        settings=settings_file("distances"),
        code=CODE["distances"],
    shell:
        "exec python -m geokd distances assemble {input.store:q} {input.split:q}"
        " {output.npy:q} {input.blocks:q}"
        " --query {wildcards.query} --reference {wildcards.reference}"
        " --settings {params.settings:q} > {log:q} 2>&1"
