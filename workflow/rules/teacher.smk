# Train x train distance matrix -> soft class probabilities (the teacher), per method; the
# .parquet.json sidecar holds the soft labels' checksum, verified by every reader.


rule soft_labels:
    input:
        matrix=teacher_matrix,
        split="results/{dataset}/{protocol}/split.tsv",
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
    shell:
        "python -m geokd teacher {input.matrix} {input.split} {output.labels}"
        " {output.diagnostics} --settings {params.settings} > {log} 2>&1"
