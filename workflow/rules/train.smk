# Sequences (+ teacher) -> transformer students, one job per model and seed. A job writes all
# its outputs as one atomic unit; model.pt.json is the checkpoint's checksum, timings.json the
# measured times (everything else is the same to the byte for the same seed).


rule train_transformer:
    input:
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
    output:
        model="results/{dataset}/{protocol}/models/transformer/seed{seed}/model.pt",
        model_sidecar="results/{dataset}/{protocol}/models/transformer/seed{seed}/model.pt.json",
        history="results/{dataset}/{protocol}/models/transformer/seed{seed}/history.json",
        metrics="results/{dataset}/{protocol}/models/transformer/seed{seed}/metrics.json",
        timings="results/{dataset}/{protocol}/models/transformer/seed{seed}/timings.json",
    log:
        "logs/train_transformer/{dataset}/{protocol}/seed{seed}.log",
    benchmark:
        "benchmarks/train_transformer/{dataset}/{protocol}/seed{seed}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        options=training_options,
        out_dir=subpath(output.metrics, parent=True),
    shell:
        "python -m geokd train {input.store} {input.split} {params.out_dir}"
        " --mode transformer --seed {wildcards.seed} --threads {threads}"
        " --options '{params.options}' > {log} 2>&1"


rule train_distilled:
    input:
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
        teacher=distillation_teacher,
    output:
        model="results/{dataset}/{protocol}/models/distilled/seed{seed}/model.pt",
        model_sidecar="results/{dataset}/{protocol}/models/distilled/seed{seed}/model.pt.json",
        history="results/{dataset}/{protocol}/models/distilled/seed{seed}/history.json",
        metrics="results/{dataset}/{protocol}/models/distilled/seed{seed}/metrics.json",
        timings="results/{dataset}/{protocol}/models/distilled/seed{seed}/timings.json",
    log:
        "logs/train_distilled/{dataset}/{protocol}/seed{seed}.log",
    benchmark:
        "benchmarks/train_distilled/{dataset}/{protocol}/seed{seed}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        options=training_options,
        out_dir=subpath(output.metrics, parent=True),
    shell:
        "python -m geokd train {input.store} {input.split} {params.out_dir}"
        " --mode distilled --seed {wildcards.seed} --soft-labels {input.teacher}"
        " --threads {threads} --options '{params.options}' > {log} 2>&1"
