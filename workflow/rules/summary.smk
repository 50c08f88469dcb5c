# Every step of one dataset and protocol -> results/<dataset>/<protocol>/summary.json.


rule summary:
    input:
        unpack(summary_inputs),
    output:
        "results/{dataset}/{protocol}/summary.json",
    log:
        "logs/summary/{dataset}/{protocol}.log",
    benchmark:
        "benchmarks/summary/{dataset}/{protocol}.tsv"
    conda:
        "../envs/core.yaml"
    params:
        config=config_json,
    shell:
        "python -m geokd summarize {output} --dataset {wildcards.dataset}"
        " --protocol {wildcards.protocol} --store {input.store} --knn {input.knn}"
        " --teacher {input.teachers} --run {input.runs} --latency {input.latency}"
        " --config '{params.config}' > {log} 2>&1"
