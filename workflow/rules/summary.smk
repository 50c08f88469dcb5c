# Every step of one dataset and protocol -> results/<dataset>/<protocol>/summary.json (the
# same to the byte for the same config and seed) and timings.json (the measured times).


rule summary:
    input:
        unpack(summary_inputs),
    output:
        summary="results/{dataset}/{protocol}/summary.json",
        timings="results/{dataset}/{protocol}/timings.json",
    log:
        "logs/summary/{dataset}/{protocol}.log",
    benchmark:
        "benchmarks/summary/{dataset}/{protocol}.tsv"
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("summary"),
    shell:
        "python -m geokd summarize {output.summary} --timings-out {output.timings}"
        " --dataset {wildcards.dataset}"
        " --protocol {wildcards.protocol} --store {input.store} --knn {input.knn}"
        " --teacher {input.teachers} --run {input.runs} --latency {input.latency}"
        " --run-timings {input.run_timings}"
        " --settings {params.settings} > {log} 2>&1"
