# Every step of one dataset and protocol -> results/<dataset>/<protocol>/summary.json (the
# same to the byte for the same config and seed) and timings.json (the measured times).


# --speed times the student (PyTorch eager and exported to ONNX) and exact 1-NN again, one
# thread each, into timings.json (geokd.report.speed): the job takes every core so that no
# training or distance job disturbs the timings.
rule summary:
    input:
        unpack(summary_inputs),
    output:
        summary=paths.SUMMARY,
        timings=paths.TIMINGS,
    log:
        paths.log("summary", "{dataset}/{protocol}"),
    benchmark:
        paths.benchmark("summary", "{dataset}/{protocol}")
    conda:
        "../envs/summary.yaml"
    threads: whole_machine
    params:
        settings=settings_file("summary"),
        code=CODE["report"],
    shell:
        "exec python -m geokd summarize {output.summary:q} --timings-out {output.timings:q}"
        " --dataset {wildcards.dataset} --protocol {wildcards.protocol}"
        " --store {input.store:q} --knn {input.knn:q} --teacher {input.teachers:q}"
        " --run {input.runs:q} --latency {input.latency:q} --run-timings {input.run_timings:q}"
        " --check {input.checked:q} --speed {input.split:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"


# summary.json + the runs' histories -> what DVC reads: a flat metrics file (`dvc metrics
# show/diff`) and the training curves as rows (`dvc plots show`), see dvc.yaml.
rule dvc_metrics:
    input:
        summary=paths.SUMMARY,
        histories=histories,
    output:
        metrics=paths.DVC_METRICS,
        curves=paths.CURVES,
    log:
        paths.log("dvc_metrics", "{dataset}/{protocol}"),
    benchmark:
        paths.benchmark("dvc_metrics", "{dataset}/{protocol}")
    conda:
        "../envs/core.yaml"
    params:
        histories=history_args,
        code=CODE["report"],
    shell:
        "exec python -m geokd dvc-metrics {input.summary:q} {output.metrics:q}"
        " {output.curves:q} {params.histories:q} > {log:q} 2>&1"
