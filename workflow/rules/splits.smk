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
        args=protocol_args,
    shell:
        "python -m geokd split {input} {output} {params.args} > {log} 2>&1"
