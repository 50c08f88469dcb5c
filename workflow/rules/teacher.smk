# Train x train distance matrix -> soft class probabilities (the teacher), per method; the
# .parquet.json sidecar holds the soft labels' checksum, verified by every reader.


rule soft_labels:
    input:
        matrix=teacher_matrix,
        split="results/{dataset}/{protocol}/split.tsv",
        store="data/interim/{dataset}/sequences.parquet",
    output:
        labels="results/{dataset}/{protocol}/teacher/{method}.parquet",
        sidecar="results/{dataset}/{protocol}/teacher/{method}.parquet.json",
        diagnostics="results/{dataset}/{protocol}/teacher/{method}.json",
    log:
        "logs/soft_labels/{dataset}/{protocol}/{method}.log",
    benchmark:
        "benchmarks/soft_labels/{dataset}/{protocol}/{method}.tsv"
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("teacher"),
        code=CODE["models"],
    shell:
        "exec python -m geokd teacher {input.matrix:q} {input.split:q} {output.labels:q}"
        " {output.diagnostics:q} --store {input.store:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"
