# Raw data -> the canonical sequence store (one Parquet file per dataset).

# NTU RGB+D (.skeleton files) and pyskl (an annotation pickle): their raw files are listed
# once per run (geokd.data.ntu.refresh_listing), so a changed file reruns ingest; a generated
# NTU-format folder is the output of the rule synthetic_ntu instead.
from geokd.data.ntu import refresh_listing as body_listing

ntu_generated = alternatives(
    [n for n, s in SETTINGS.items() if s.dataset.source == "ntu" and s.dataset.synthetic_ntu]
)
body_raw = lambda d: SETTINGS[d].dataset.raw_dir or SETTINGS[d].dataset.annotations
body_listing_of = cache(
    lambda d: body_listing(
        SETTINGS[d].dataset.source,
        body_raw(d),
        f"data/interim/{d}/raw_listing.tsv",
        f".snakemake/geokd/raw/{d}.json",
    )
)
body_raw_inputs = lambda w: (
    {"raw": f"data/raw/{w.dataset}"}
    if SETTINGS[w.dataset].dataset.synthetic_ntu
    else {"raw": ancient(body_raw(w.dataset)), "listing": body_listing_of(w.dataset)}
)


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


rule synthetic_ntu:
    output:
        directory("data/raw/{dataset}"),
    log:
        "logs/synthetic_ntu/{dataset}.log",
    benchmark:
        "benchmarks/synthetic_ntu/{dataset}.tsv"
    wildcard_constraints:
        dataset=ntu_generated,
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("synthetic_ntu"),
        code=CODE["data"],
    shell:
        "exec python -m geokd synthetic-ntu {output:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"


rule ingest_ntu:
    input:
        unpack(body_raw_inputs),
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_ntu/{dataset}.log",
    benchmark:
        "benchmarks/ingest_ntu/{dataset}.tsv"
    wildcard_constraints:
        dataset=named("ntu"),
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("ingest"),
        code=CODE["data"],
    shell:
        "exec python -m geokd ingest ntu {input.raw:q} {output:q}"
        " --dataset {wildcards.dataset} --settings {params.settings:q} > {log:q} 2>&1"


rule ingest_pyskl:
    input:
        unpack(body_raw_inputs),
    output:
        "data/interim/{dataset}/sequences.parquet",
    log:
        "logs/ingest_pyskl/{dataset}.log",
    benchmark:
        "benchmarks/ingest_pyskl/{dataset}.tsv"
    wildcard_constraints:
        dataset=named("pyskl"),
    conda:
        "../envs/core.yaml"
    params:
        settings=settings_file("ingest"),
        code=CODE["data"],
    shell:
        "exec python -m geokd ingest pyskl {input.raw:q} {output:q}"
        " --dataset {wildcards.dataset} --settings {params.settings:q} > {log:q} 2>&1"
