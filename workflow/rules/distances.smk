# Split tables -> Procrustes-DTW distance matrices, computed in blocks (one job per block).


rule distance_block:
    input:
        store=paths.STORE,
        split=paths.SPLIT,
    output:
        npy=temp(paths.BLOCK),
        sidecar=temp(paths.BLOCK_SIDECAR),
    log:
        paths.log("distance_block", "{dataset}/{protocol}/{metric}/{query}-{reference}/{bi}_{bj}"),
    benchmark:
        paths.benchmark(
            "distance_block", "{dataset}/{protocol}/{metric}/{query}-{reference}/{bi}_{bj}"
        )
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
        store=paths.STORE,
        split=paths.SPLIT,
    output:
        npy=paths.MATRIX,
        sidecar=paths.MATRIX_SIDECAR,
    log:
        paths.log("distance_matrix", "{dataset}/{protocol}/{metric}/{query}-{reference}"),
    benchmark:
        paths.benchmark("distance_matrix", "{dataset}/{protocol}/{metric}/{query}-{reference}")
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
