# Sequences (+ the teacher's soft labels for `distilled`, the train x train matrix for `metric`)
# -> one student per model family and seed.
# A job writes all its outputs as one atomic unit; model.pt.json is the checkpoint's checksum,
# timings.json the measured times (everything else is the same to the byte for the same seed).


rule train:
    input:
        unpack(train_inputs),
    output:
        model="results/{dataset}/{protocol}/models/{model}/seed{seed}/model.pt",
        model_sidecar="results/{dataset}/{protocol}/models/{model}/seed{seed}/model.pt.json",
        history="results/{dataset}/{protocol}/models/{model}/seed{seed}/history.json",
        metrics="results/{dataset}/{protocol}/models/{model}/seed{seed}/metrics.json",
        timings="results/{dataset}/{protocol}/models/{model}/seed{seed}/timings.json",
    log:
        "logs/train/{dataset}/{protocol}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{protocol}/{model}/seed{seed}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        settings=settings_file("train"),
        teacher=teacher_option,
        out_dir=subpath(output.metrics, parent=True),
        code=CODE["models"],
    shell:
        "exec python -m geokd train {input.store:q} {input.split:q} {params.out_dir:q}"
        " --mode {wildcards.model} --seed {wildcards.seed} {params.teacher:q}"
        " --threads {threads} --settings {params.settings:q} > {log:q} 2>&1"


rule ensemble:
    input:
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
        members=ensemble_members,
    output:
        metrics="results/{dataset}/{protocol}/models/{model}_ensemble/metrics.json",
        timings="results/{dataset}/{protocol}/models/{model}_ensemble/timings.json",
    log:
        "logs/ensemble/{dataset}/{protocol}/{model}.log",
    benchmark:
        "benchmarks/ensemble/{dataset}/{protocol}/{model}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        out_dir=subpath(output.metrics, parent=True),
        code=CODE["models"],
    shell:
        "exec python -m geokd ensemble {input.store:q} {input.split:q} {params.out_dir:q}"
        " {input.members:q} --name {wildcards.model}_ensemble > {log:q} 2>&1"
