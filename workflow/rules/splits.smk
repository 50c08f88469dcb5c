# The sequence store -> one split table per protocol.


checkpoint split:
    input:
        "data/interim/{dataset}/sequences.parquet",
    output:
        "results/{dataset}/{protocol}/split.tsv",
    log:
        "logs/split/{dataset}/{protocol}.log",
    benchmark:
        "benchmarks/split/{dataset}/{protocol}.tsv"
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("split"),
        code=CODE["data"],
    shell:
        "exec python -m geokd split {input:q} {output:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"
