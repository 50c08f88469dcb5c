# The label-budget study (geokd.models.budgets): for each protocol and each labelled subset of
# its training subjects (the plan: geokd.models.budgets.budget_plan), every arm trained and
# tested in one job; then the summary with bootstrap intervals, beside the full-label run.
from geokd.models.budgets import budget_plan, subset_name

budget_plan_of = lambda d, p: budget_plan(
    SETTINGS[d].dataset.protocols[p]["train"],
    SETTINGS[d].budgets.max_subsets,
    SETTINGS[d].budgets.sample_seed,
)
budget_protocols = lambda: [
    (d, p)
    for d, p in protocols()
    if SETTINGS[d].budgets.enabled and len(SETTINGS[d].dataset.protocols[p]["train"]) > 1
]
budget_targets = lambda: [f"results/{d}/{p}/budgets/summary.json" for d, p in budget_protocols()]
budget_results = lambda w: [
    f"results/{w.dataset}/{w.protocol}/budgets/{subset_name(s)}.json"
    for _, s in budget_plan_of(w.dataset, w.protocol)
]
# the full-label reference: the main run's labels-only family, distilled students and 1-NN
full_families = lambda w: [
    m
    for m in (SETTINGS[w.dataset].budgets.labels, "distilled")
    if m in SETTINGS[w.dataset].training.models
]
full_runs = lambda w: [
    f"results/{w.dataset}/{w.protocol}/models/{m}/seed{n}/metrics.json"
    for m in full_families(w)
    for n in SETTINGS[w.dataset].training.seeds
]
full_run_args = lambda w, input: [
    f"--full-run={'labels' if Path(p).parts[-3] != 'distilled' else 'distilled'}={p}"
    for p in input.full
]
train_subject_args = lambda w: SETTINGS[w.dataset].dataset.protocols[w.protocol]["train"]
budget_knn = lambda w: (
    f"results/{w.dataset}/{w.protocol}/knn/{SETTINGS[w.dataset].teacher.metric}.json"
)
budget_test_matrix = lambda w: (
    f"results/{w.dataset}/{w.protocol}/distances/{SETTINGS[w.dataset].teacher.metric}/test-train.npy"
)


rule budget_subset:
    input:
        store="data/interim/{dataset}/sequences.parquet",
        split="results/{dataset}/{protocol}/split.tsv",
        train_matrix=teacher_matrix,
        test_matrix=budget_test_matrix,
    output:
        "results/{dataset}/{protocol}/budgets/{subset}.json",
    log:
        "logs/budget_subset/{dataset}/{protocol}/{subset}.log",
    benchmark:
        "benchmarks/budget_subset/{dataset}/{protocol}/{subset}.tsv"
    wildcard_constraints:
        subset=r"s\d+(-\d+)*",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        settings=settings_file("budgets"),
        code=CODE["models"],
    shell:
        "exec python -m geokd budget-run {input.store:q} {input.split:q}"
        " {input.train_matrix:q} {input.test_matrix:q} {output:q}"
        " --subset {wildcards.subset} --threads {threads} --settings {params.settings:q}"
        " > {log:q} 2>&1"


rule budget_summary:
    input:
        subsets=budget_results,
        full=full_runs,
        knn=budget_knn,
    output:
        "results/{dataset}/{protocol}/budgets/summary.json",
    log:
        "logs/budget_summary/{dataset}/{protocol}.log",
    benchmark:
        "benchmarks/budget_summary/{dataset}/{protocol}.tsv"
    conda:
        "../envs/core.yaml"
    params:
        subjects=train_subject_args,
        full=full_run_args,
        code=CODE["report"],
    shell:
        "exec python -m geokd budget-summary {output:q} {input.subsets:q}"
        " --dataset {wildcards.dataset} --protocol {wildcards.protocol}"
        " --train-subjects {params.subjects:q} {params.full:q} --full-knn {input.knn:q}"
        " > {log:q} 2>&1"
