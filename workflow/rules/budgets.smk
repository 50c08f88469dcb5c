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
budget_targets = lambda: [
    at(paths.BUDGET_SUMMARY, dataset=d, protocol=p) for d, p in budget_protocols()
]
budget_results = lambda w: [
    at(paths.BUDGET_SUBSET, w, subset=subset_name(s))
    for _, s in budget_plan_of(w.dataset, w.protocol)
]
# the full-label reference: the main run's labels-only family, distilled students and 1-NN
full_families = lambda w: [
    m
    for m in (SETTINGS[w.dataset].budgets.labels, "distilled")
    if m in SETTINGS[w.dataset].training.models
]
full_runs = lambda w: seed_runs(paths.RUN_METRICS, w.dataset, w.protocol, full_families(w))
full_run_args = lambda w, input: [
    f"--full-run={'labels' if Path(p).parts[-3] != 'distilled' else 'distilled'}={p}"
    for p in input.full
]
train_subject_args = lambda w: SETTINGS[w.dataset].dataset.protocols[w.protocol]["train"]
budget_knn = lambda w: at(paths.KNN_RESULT, w, metric=SETTINGS[w.dataset].teacher.metric)
budget_test_matrix = lambda w: at(
    paths.MATRIX, w, metric=SETTINGS[w.dataset].teacher.metric, query="test", reference="train"
)


rule budget_subset:
    input:
        store=paths.STORE,
        split=paths.SPLIT,
        train_matrix=teacher_matrix,
        test_matrix=budget_test_matrix,
    output:
        paths.BUDGET_SUBSET,
    log:
        paths.log("budget_subset", "{dataset}/{protocol}/{subset}"),
    benchmark:
        paths.benchmark("budget_subset", "{dataset}/{protocol}/{subset}")
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
        paths.BUDGET_SUMMARY,
    log:
        paths.log("budget_summary", "{dataset}/{protocol}"),
    benchmark:
        paths.benchmark("budget_summary", "{dataset}/{protocol}")
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
