# Test x train distance matrix -> KNN baseline; exact 1-NN query latency.


rule knn:
    input:
        matrix=fill(paths.MATRIX, query="test", reference="train"),
        split=paths.SPLIT,
        store=paths.STORE,
    output:
        paths.KNN_RESULT,
    log:
        paths.log("knn", "{dataset}/{protocol}/{metric}"),
    benchmark:
        paths.benchmark("knn", "{dataset}/{protocol}/{metric}")
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
        store=paths.STORE,
        split=paths.SPLIT,
    output:
        paths.KNN_LATENCY,
    log:
        paths.log("knn_latency", "{dataset}/{protocol}/{metric}"),
    benchmark:
        paths.benchmark("knn_latency", "{dataset}/{protocol}/{metric}")
    conda:
        "../envs/core.yaml"
    threads: 1
    params:
        settings=settings_file("knn_latency"),
        code=CODE["models"],
    shell:
        "exec python -m geokd knn-latency {input.store:q} {input.split:q} {output:q}"
        " --threads {threads} --settings {params.settings:q} > {log:q} 2>&1"
