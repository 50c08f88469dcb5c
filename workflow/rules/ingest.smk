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
        at(paths.RAW_LISTING, dataset=d),
        at(paths.RAW_LISTING_CACHE, dataset=d),
    )
)
body_raw_inputs = lambda w: (
    {"raw": at(paths.RAW, w)}
    if SETTINGS[w.dataset].dataset.synthetic_ntu
    else {"raw": ancient(body_raw(w.dataset)), "listing": body_listing_of(w.dataset)}
)


rule ingest_synthetic:
    output:
        paths.STORE,
    log:
        paths.log("ingest_synthetic", "{dataset}"),
    benchmark:
        paths.benchmark("ingest_synthetic", "{dataset}")
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
        paths.STORE,
    log:
        paths.log("ingest_utd_mhad", "{dataset}"),
    benchmark:
        paths.benchmark("ingest_utd_mhad", "{dataset}")
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
        directory(paths.RAW),
    log:
        paths.log("synthetic_signum", "{dataset}"),
    benchmark:
        paths.benchmark("synthetic_signum", "{dataset}")
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
        paths.STORE,
    log:
        paths.log("ingest_signum", "{dataset}"),
    benchmark:
        paths.benchmark("ingest_signum", "{dataset}")
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
        directory(paths.RAW),
    log:
        paths.log("synthetic_ntu", "{dataset}"),
    benchmark:
        paths.benchmark("synthetic_ntu", "{dataset}")
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
        paths.STORE,
    log:
        paths.log("ingest_ntu", "{dataset}"),
    benchmark:
        paths.benchmark("ingest_ntu", "{dataset}")
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
        paths.STORE,
    log:
        paths.log("ingest_pyskl", "{dataset}"),
    benchmark:
        paths.benchmark("ingest_pyskl", "{dataset}")
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
