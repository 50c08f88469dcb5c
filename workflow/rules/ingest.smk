# Raw data -> the canonical sequence store (one Parquet file per dataset).


rule ingest_synthetic:
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_synthetic/{dataset}.log",
    benchmark:
        "benchmarks/ingest_synthetic/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternatives(_names("synthetic")),
    conda:
        "../envs/core.yaml"
    params:
        args=synthetic_args,
    shell:
        "python -m geokd ingest synthetic {output} --dataset {wildcards.dataset} {params.args}"
        " > {log} 2>&1"


rule ingest_utd_mhad:
    input:
        raw=raw_dir,
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_utd_mhad/{dataset}.log",
    benchmark:
        "benchmarks/ingest_utd_mhad/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternatives(_names("utd_mhad")),
    conda:
        "../envs/core.yaml"
    params:
        skip_bad=skip_bad_flag,
        layout=layout_flag,
    shell:
        "python -m geokd ingest utd-mhad {input.raw} {output} {params.skip_bad}"
        " {params.layout} > {log} 2>&1"


rule synthetic_signum:
    output:
        directory("data/raw/{dataset}"),
    log:
        "logs/synthetic_signum/{dataset}.log",
    benchmark:
        "benchmarks/synthetic_signum/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternatives(generated_signum()),
    conda:
        "../envs/core.yaml"
    params:
        args=synthetic_signum_args,
    shell:
        "python -m geokd synthetic-signum {output} {params.args} > {log} 2>&1"


rule ingest_signum:
    input:
        raw=signum_manifest,
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_signum/{dataset}.log",
    benchmark:
        "benchmarks/ingest_signum/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternatives(_names("signum")),
    conda:
        "../envs/core.yaml"
    params:
        args=signum_args,
    shell:
        "python -m geokd ingest signum {input.raw} {output} {params.args} > {log} 2>&1"
