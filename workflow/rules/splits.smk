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
    shell:
        "python -m geokd split {input} {output} --settings {params.settings} > {log} 2>&1"
