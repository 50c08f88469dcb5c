# Train x train distance matrix -> soft class probabilities (the teacher), per method; the
# .parquet.json sidecar holds the soft labels' checksum, verified by every reader.


rule soft_labels:
    input:
        matrix=teacher_matrix,
        split=paths.SPLIT,
        store=paths.STORE,
    output:
        labels=paths.SOFT_LABELS,
        sidecar=paths.SOFT_LABELS_SIDECAR,
        diagnostics=paths.TEACHER_DIAGNOSTICS,
    log:
        paths.log("soft_labels", "{dataset}/{protocol}/{method}"),
    benchmark:
        paths.benchmark("soft_labels", "{dataset}/{protocol}/{method}")
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("teacher"),
        code=CODE["models"],
    shell:
        "exec python -m geokd teacher {input.matrix:q} {input.split:q} {output.labels:q}"
        " {output.diagnostics:q} --store {input.store:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"
