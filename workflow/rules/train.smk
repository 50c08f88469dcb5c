# Sequences (+ the teacher's soft labels for `distilled`, the train x train matrix for `metric`)
# -> one student per model family and seed.
# A job writes all its outputs as one atomic unit; model.pt.json is the checkpoint's checksum,
# timings.json the measured times (everything else is the same to the byte for the same seed).


# One job trains a family's seeds at once, as one batched model (training.seeds_per_job sets
# the group size): a rule per distinct group of seeds, each seed still its own output folder.
from geokd.models.config import RUN_FILES
from geokd.settings import group_name, train_groups, train_rule_name

TRAIN_GROUPS = train_groups(SETTINGS)  # {seeds trained together: their datasets}
train_minutes = lambda seeds: 60 + 30 * len(seeds)  # a cluster's runtime limit (CPU)
run_folders = lambda w, output: [str(Path(p).parent) for p in output if p.endswith("metrics.json")]
train_outputs = lambda seeds: {  # every file of every seed's run
    f"{n.replace('.', '_')}_{s}": fill(paths.run_file(n), seed=s) for s in seeds for n in RUN_FILES
}

for seeds, datasets in TRAIN_GROUPS.items():

    rule:
        name:
            train_rule_name(seeds)
        input:
            unpack(train_inputs),
        output:
            **train_outputs(seeds),
        log:
            paths.log("train", f"{{dataset}}/{{protocol}}/{{model}}/{group_name(seeds)}"),
        benchmark:
            paths.benchmark("train", f"{{dataset}}/{{protocol}}/{{model}}/{group_name(seeds)}")
        wildcard_constraints:
            dataset=alternatives(datasets),
        conda:
            "../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=train_minutes(seeds),
        params:
            settings=settings_file("train"),
            teacher=teacher_option,
            out_dirs=run_folders,
            seeds=[str(s) for s in seeds],
            code=CODE["models"],
        shell:
            "exec python -m geokd train {input.store:q} {input.split:q} {params.out_dirs:q}"
            " --mode {wildcards.model} --seed {params.seeds:q} {params.teacher:q}"
            " --threads {threads} --settings {params.settings:q} > {log:q} 2>&1"


rule ensemble:
    input:
        store=paths.STORE,
        split=paths.SPLIT,
        members=ensemble_members,
    output:
        metrics=paths.ENSEMBLE_METRICS,
        timings=paths.ENSEMBLE_TIMINGS,
    log:
        paths.log("ensemble", "{dataset}/{protocol}/{model}"),
    benchmark:
        paths.benchmark("ensemble", "{dataset}/{protocol}/{model}")
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
