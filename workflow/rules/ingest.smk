# Raw data -> the canonical sequence store (one Parquet file per dataset).


rule ingest_synthetic:
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_synthetic/{dataset}.log",
    benchmark:
        "benchmarks/ingest_synthetic/{dataset}.tsv"
    wildcard_constraints:
        dataset=named("synthetic"),
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("ingest"),
        code=CODE["data"],
    shell:
        "exec python -m geokd ingest synthetic {output:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"


rule ingest_utd_mhad:
    input:
        unpack(raw_inputs),
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_utd_mhad/{dataset}.log",
    benchmark:
        "benchmarks/ingest_utd_mhad/{dataset}.tsv"
    wildcard_constraints:
        dataset=named("utd_mhad"),
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("ingest"),
        code=CODE["data"],
    shell:
        "exec python -m geokd ingest utd-mhad {input.raw:q} {output:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule synthetic_signum:
    output:
        directory("data/raw/{dataset}"),
    log:
        "logs/synthetic_signum/{dataset}.log",
    benchmark:
        "benchmarks/synthetic_signum/{dataset}.tsv"
    wildcard_constraints:
        dataset=named("signum", generated=True),
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("synthetic_signum"),
        code=CODE["data"],
    shell:
        "exec python -m geokd synthetic-signum {output:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"


rule ingest_signum:
    input:
        unpack(raw_inputs),
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_signum/{dataset}.log",
    benchmark:
        "benchmarks/ingest_signum/{dataset}.tsv"
    wildcard_constraints:
        dataset=named("signum"),
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("ingest"),
        code=CODE["data"],
    shell:
        "exec python -m geokd ingest signum {input.raw:q} {output:q}"
        " --dataset {wildcards.dataset} --settings {params.settings:q} > {log:q} 2>&1"
