# What Snakemake needs: validation, resolved settings, constraints, targets, input functions, by
# stage. Settings and defaults live in src/geokd/settings.py; each job gets its slice as a small
# content-addressed JSON file (--settings): a changed setting reruns exactly the jobs it shapes.
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# Jobs run `python -m geokd` from this checkout (PYTHONPATH) with Snakemake's interpreter
# (the venv) or, with --sdm conda, the rule's conda env.
SRC = Path(workflow.basedir).parent / "src"
_prefix = f'set -euo pipefail; export PYTHONPATH="{SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _prefix += f'export PATH="{Path(sys.executable).parent}:$PATH"; '
shell.prefix(_prefix)

sys.path.insert(0, str(SRC))
from geokd.distances.shards import matrix_pairs, planned_blocks  # noqa: E402
from geokd.settings import MODELS, job_settings, resolve_all, write_settings_file  # noqa: E402

SETTINGS = resolve_all(config)  # SettingsError names the config key of a bad value
SETTINGS_DIR = ".snakemake/geokd/settings"


def alternatives(names):
    return "|".join(names) if names else "(?!x)x"


def named(source=None, generated=False):
    """Names of the datasets of `source` (None: all), or with a generated SIGNUM folder."""
    keep = [n for n, s in SETTINGS.items() if source in (None, s.dataset.source)]
    return alternatives([n for n in keep if SETTINGS[n].dataset.synthetic_signum or not generated])


wildcard_constraints:
    dataset=named(),
    protocol=alternatives(sorted({p for s in SETTINGS.values() for p in s.dataset.protocols})),
    query="train|val|test",
    reference="train|val|test",
    metric="procrustes|paper|euclidean|hand",
    bi=r"\d+",
    bj=r"\d+",
    method="softmax|nngk",
    model=alternatives(MODELS),
    seed=r"\d+",


def settings_file(job):
    """Param function: the file holding job family `job`'s settings slice for these wildcards."""

    def path(wildcards):
        values = job_settings(SETTINGS[wildcards.dataset], job, **dict(wildcards.items()))
        return str(write_settings_file(values, SETTINGS_DIR))

    return path


# ---------------------------------------------------------------- paths and targets
def store_path(dataset):
    return f"data/interim/{dataset}/sequences.parquet"


def protocol_dir(dataset, protocol):
    return f"results/{dataset}/{protocol}"


def split_path(dataset, protocol):
    return f"{protocol_dir(dataset, protocol)}/split.tsv"


def protocols():
    return [(d, p) for d, s in SETTINGS.items() for p in s.dataset.protocols]


def all_matrices():
    return [
        f"{protocol_dir(d, p)}/distances/{m}/{q}-{r}.npy"
        for d, p in protocols()
        for m in SETTINGS[d].metrics
        for q, r in matrix_pairs(SETTINGS[d].dataset.protocols[p])
    ]


def all_summaries():
    return [f"{protocol_dir(d, p)}/summary.json" for d, p in protocols()]


def all_outputs():
    return ["results/report.html", "results/tables/accuracy.csv", *all_matrices(), *all_summaries()]


# ---------------------------------------------------------------- ingest
def raw_dir(wildcards):
    return SETTINGS[wildcards.dataset].dataset.raw_dir


def signum_manifest(wildcards):
    s = SETTINGS[wildcards.dataset].dataset
    return f"data/raw/{wildcards.dataset}" if s.synthetic_signum else s.manifest


# ---------------------------------------------------------------- distances
def distance_blocks(wildcards):
    w = wildcards
    split = checkpoints.split.get(dataset=w.dataset, protocol=w.protocol).output[0]
    size = SETTINGS[w.dataset].distances.block_size
    prefix = f"{protocol_dir(w.dataset, w.protocol)}/distances/{w.metric}/{w.query}-{w.reference}"
    plan = planned_blocks(split, w.query, w.reference, size)
    return [f"{prefix}/block_{bi}_{bj}.npy" for bi, bj in plan]


def distance_block_sidecars(wildcards):
    return [f"{b}.json" for b in distance_blocks(wildcards)]


def block_mem_mb(wildcards, input):
    return 500 + 2 * input.size_mb


def block_runtime(wildcards, threads, attempt):
    """Minutes for one distance block: block_size**2 pairs at 5000 pairs per thread-minute
    (300-frame sequences, ~6x margin; docs/cluster.md), times the attempt number."""
    pairs = SETTINGS[wildcards.dataset].distances.block_size**2
    return attempt * (5 + -(-pairs // (5000 * threads)))


def matrix_mem_mb(wildcards, input):
    return 500 + 3 * input.size_mb


# ---------------------------------------------------------------- teacher, KNN, students
def teacher_matrix(wildcards):
    base = protocol_dir(wildcards.dataset, wildcards.protocol)
    return f"{base}/distances/{SETTINGS[wildcards.dataset].teacher.metric}/train-train.npy"


def train_inputs(wildcards):
    """Store and split; distilled reads the teacher's soft labels, metric the train matrix."""
    d, p = wildcards.dataset, wildcards.protocol
    inputs = {"store": store_path(d), "split": split_path(d, p)}
    if wildcards.model == "distilled":
        method = SETTINGS[d].teacher.distill_from
        inputs["teacher"] = f"{protocol_dir(d, p)}/teacher/{method}.parquet"
    if wildcards.model == "metric":
        inputs["distances"] = teacher_matrix(wildcards)
    return inputs


def ensemble_members(wildcards):
    base = f"{protocol_dir(wildcards.dataset, wildcards.protocol)}/models/{wildcards.model}"
    return [f"{base}/seed{n}/model.pt" for n in SETTINGS[wildcards.dataset].training.seeds]


def teacher_option(wildcards, input):
    """--soft-labels (distilled) or --distances (metric): what the model learns from."""
    extra = {"teacher": "--soft-labels", "distances": "--distances"}
    return " ".join(f"{flag} {input[k]}" for k, flag in extra.items() if k in input.keys())


# ---------------------------------------------------------------- summary and report
def summary_inputs(wildcards):
    d, p = wildcards.dataset, wildcards.protocol
    s, base = SETTINGS[d], protocol_dir(d, p)
    runs = [f"{base}/models/{m}/seed{n}" for m in s.training.models for n in s.training.seeds]
    runs += [f"{base}/models/{m}_ensemble" for m in s.training.ensembles]
    return {
        "store": store_path(d),
        "knn": [f"{base}/knn/{m}.json" for m in s.metrics],
        "latency": [f"{base}/knn/latency_{s.teacher.metric}.json"],
        "teachers": [f"{base}/teacher/{m}.json" for m in s.teacher.methods],
        "runs": [f"{run}/metrics.json" for run in runs],
        "run_timings": [f"{run}/timings.json" for run in runs],
    }


def report_inputs(wildcards):
    stores, splits = [store_path(d) for d in SETTINGS], [split_path(*dp) for dp in protocols()]
    return dict(stores=stores, splits=splits, matrices=all_matrices(), summaries=all_summaries())


def report_args(wildcards):
    args = [f"--dataset {d}={store_path(d)}" for d in SETTINGS]
    for d, p in protocols():
        args += [f"--split {d}/{p}={split_path(d, p)}", f"--results {d}/{p}={protocol_dir(d, p)}"]
    return " ".join(args)


def tables_args(wildcards):
    """Corrected runs as --summary; a dataset with `as_published_of: X` fills X's
    "as published" column (--as-published X/PROTOCOL=ITS_SUMMARY)."""
    args = []
    for d, p in protocols():
        of = SETTINGS[d].dataset.as_published_of
        option = "--summary" if of is None else "--as-published"
        args.append(f"{option} {of or d}/{p}={protocol_dir(d, p)}/summary.json")
    return " ".join(args)
