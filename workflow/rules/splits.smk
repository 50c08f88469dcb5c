# The sequence store -> one split table per protocol.


checkpoint split:
    input:
        paths.STORE,
    output:
        paths.SPLIT,
    log:
        paths.log("split", "{dataset}/{protocol}"),
    benchmark:
        paths.benchmark("split", "{dataset}/{protocol}")
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("split"),
        code=CODE["data"],
    shell:
        "exec python -m geokd split {input:q} {output:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"
