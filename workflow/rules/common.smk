# Shared set-up: config validation, wildcard constraints and named input/param functions.
# Anything bigger than path and argument plumbing belongs in src/geokd.
import json
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# Jobs run `python -m geokd` with this checkout's sources on PYTHONPATH. Without --sdm conda,
# `python` is the interpreter that runs Snakemake (the project's venv, activated or not); with
# it, the rule's conda env.
SRC = Path(workflow.basedir).parent / "src"
# (shell.prefix formats its argument: doubled braces survive as shell braces)
_prefix = (
    f'set -euo pipefail; export PYTHONPATH="{SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
)
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _prefix += f'export PATH="{Path(sys.executable).parent}:$PATH"; '
shell.prefix(_prefix)

sys.path.insert(0, str(SRC))
from geokd.distances.shards import matrix_pairs, planned_blocks  # noqa: E402

DATASETS = config["datasets"]


def _names(source=None):
    return [n for n, d in DATASETS.items() if source is None or d["source"] == source]


def _alternatives(names):
    return "|".join(names) if names else "(?!x)x"


wildcard_constraints:
    dataset=_alternatives(_names()),
    protocol=_alternatives(
        sorted({p for d in DATASETS.values() for p in d["protocols"]})
    ),
    query="train|val|test",
    reference="train|val|test",
    metric="procrustes|paper|euclidean|hand",
    bi=r"\d+",
    bj=r"\d+",
    method="softmax|nngk",
    seed=r"\d+",


def store_path(dataset):
    return f"data/interim/{dataset}/sequences.parquet"


def split_path(dataset, protocol):
    return f"results/{dataset}/{protocol}/split.tsv"


def all_splits():
    return [split_path(d, p) for d in DATASETS for p in DATASETS[d]["protocols"]]


def _merged(base, over):
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def settings(dataset, section):
    """config[section] with datasets.<dataset>.overrides.<section> merged in (key by key)."""
    overrides = DATASETS[dataset].get("overrides", {}).get(section, {})
    return _merged(config.get(section, {}), overrides)


def metrics(dataset):
    distances = settings(dataset, "distances")
    return DATASETS[dataset].get("metrics", distances.get("metrics", ["procrustes"]))


def matrix_path(dataset, protocol, metric, query, reference):
    return f"results/{dataset}/{protocol}/distances/{metric}/{query}-{reference}.npy"


def all_matrices():
    return [
        matrix_path(d, p, m, q, r)
        for d in DATASETS
        for p, subjects in DATASETS[d]["protocols"].items()
        for m in metrics(d)
        for q, r in matrix_pairs(subjects)
    ]


def summary_path(dataset, protocol):
    return f"results/{dataset}/{protocol}/summary.json"


def all_summaries():
    return [summary_path(d, p) for d in DATASETS for p in DATASETS[d]["protocols"]]


def all_outputs():
    return [
        "results/report.html",
        "results/tables/accuracy.csv",
        *all_matrices(),
        *all_summaries(),
    ]


def block_size(dataset):
    return settings(dataset, "distances").get("block_size", 64)


def distance_blocks(wildcards):
    split = checkpoints.split.get(
        dataset=wildcards.dataset, protocol=wildcards.protocol
    ).output[0]
    prefix = (
        f"results/{wildcards.dataset}/{wildcards.protocol}/distances/{wildcards.metric}"
    )
    return [
        f"{prefix}/{wildcards.query}-{wildcards.reference}/block_{bi}_{bj}.npy"
        for bi, bj in planned_blocks(
            split, wildcards.query, wildcards.reference, block_size(wildcards.dataset)
        )
    ]


def distance_block_sidecars(wildcards):
    return [f"{path}.json" for path in distance_blocks(wildcards)]


def matrix_args(wildcards):
    distances = settings(wildcards.dataset, "distances")
    params = distances.get("metric_params", {}).get(wildcards.metric, {})
    args = [
        f"--query {wildcards.query} --reference {wildcards.reference}",
        f"--metric {wildcards.metric} --block-size {block_size(wildcards.dataset)}",
        *(f"--param {k}={v}" for k, v in params.items()),
    ]
    if distances.get("window") is not None:
        args.append(f"--window {distances['window']}")
    return " ".join(args)


def teacher_metric(dataset):
    return settings(dataset, "teacher").get("metric", "procrustes")


def teacher_matrix(wildcards):
    return matrix_path(
        wildcards.dataset,
        wildcards.protocol,
        teacher_metric(wildcards.dataset),
        "train",
        "train",
    )


def teacher_options(wildcards):
    teacher = settings(wildcards.dataset, "teacher")
    return json.dumps(teacher.get(wildcards.method, {}), sort_keys=True)


def distillation_teacher(wildcards):
    method = settings(wildcards.dataset, "teacher").get("distill_from", "softmax")
    return f"results/{wildcards.dataset}/{wildcards.protocol}/teacher/{method}.parquet"


def knn_k_max(wildcards):
    return settings(wildcards.dataset, "knn").get("k_max", 30)


def latency_queries(wildcards):
    return settings(wildcards.dataset, "knn").get("latency_queries", 5)


def metric_options(wildcards):
    distances = settings(wildcards.dataset, "distances")
    return json.dumps(distances.get("metric_params", {}).get(wildcards.metric, {}))


def training_options(wildcards):
    training = settings(wildcards.dataset, "training")
    options = {k: training.get(k, {}) for k in ("train", "student")}
    return json.dumps(options, sort_keys=True)


def config_json(wildcards):
    return json.dumps(config, sort_keys=True)


def summary_inputs(wildcards):
    d, p = wildcards.dataset, wildcards.protocol
    seeds = settings(d, "training").get("seeds", [0, 1, 2])
    models = ("transformer", "distilled")
    return {
        "store": store_path(d),
        "knn": [f"results/{d}/{p}/knn/{m}.json" for m in metrics(d)],
        "latency": [f"results/{d}/{p}/knn/latency_{teacher_metric(d)}.json"],
        "teachers": [
            f"results/{d}/{p}/teacher/{m}.json"
            for m in settings(d, "teacher").get("methods", ["softmax", "nngk"])
        ],
        "runs": [
            f"results/{d}/{p}/models/{m}/seed{s}/metrics.json"
            for m in models
            for s in seeds
        ],
        "run_timings": [
            f"results/{d}/{p}/models/{m}/seed{s}/timings.json"
            for m in models
            for s in seeds
        ],
    }


def block_mem_mb(wildcards, input):
    return 500 + 2 * input.size_mb


def block_runtime(wildcards, threads, attempt):
    """Minutes for one distance block: block_size**2 pairs at 5000 pairs per thread-minute
    (300-frame sequences, ~6x margin; docs/cluster.md), times the attempt number.
    """
    pairs = block_size(wildcards.dataset) ** 2
    return attempt * (5 + -(-pairs // (5000 * threads)))


def matrix_mem_mb(wildcards, input):
    return 500 + 3 * input.size_mb


def raw_dir(wildcards):
    return DATASETS[wildcards.dataset]["raw_dir"]


def _flags(mapping):
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in mapping.items())


def synthetic_args(wildcards):
    return _flags(DATASETS[wildcards.dataset].get("synthetic", {}))


def skip_bad_flag(wildcards):
    return "--skip-bad" if config.get("ingest", {}).get("skip_bad", False) else ""


def layout_flag(wildcards):
    return f"--layout {DATASETS[wildcards.dataset].get('layout', 'natural')}"


def generated_signum():
    return [n for n, d in DATASETS.items() if "synthetic_signum" in d]


def signum_manifest(wildcards):
    d = DATASETS[wildcards.dataset]
    return f"data/raw/{wildcards.dataset}" if "synthetic_signum" in d else d["manifest"]


def signum_args(wildcards):
    d = DATASETS[wildcards.dataset]
    return (
        f"--dataset {wildcards.dataset} --landmarks {d.get('landmarks', 'both_hands')}"
        f" --missing-landmarks {d.get('missing_landmarks', 'reject')}"
        f" {skip_bad_flag(wildcards)}"
    )


def synthetic_signum_args(wildcards):
    return _flags(DATASETS[wildcards.dataset]["synthetic_signum"])


def protocol_args(wildcards):
    protocol = DATASETS[wildcards.dataset]["protocols"][wildcards.protocol]
    return " ".join(
        f"--{split} " + " ".join(map(str, subjects))
        for split, subjects in protocol.items()
        if subjects
    )


def protocol_dir(dataset, protocol):
    return f"results/{dataset}/{protocol}"


def report_inputs(wildcards):
    return {
        "stores": [store_path(d) for d in DATASETS],
        "splits": all_splits(),
        "matrices": all_matrices(),
        "summaries": all_summaries(),
        "tables": "results/tables/accuracy.csv",
    }


def report_args(wildcards):
    args = [f"--dataset {d}={store_path(d)}" for d in DATASETS]
    for d in DATASETS:
        for p in DATASETS[d]["protocols"]:
            args.append(f"--split {d}/{p}={split_path(d, p)}")
            args.append(f"--results {d}/{p}={protocol_dir(d, p)}")
    return " ".join(args)


def tables_args(wildcards):
    """Corrected runs as --summary; a dataset with `as_published_of: X` fills X's
    "as published" column (--as-published X/PROTOCOL=ITS_SUMMARY)."""
    args = []
    for d, entry in DATASETS.items():
        of = entry.get("as_published_of")
        for p in entry["protocols"]:
            if of is None:
                args.append(f"--summary {d}/{p}={summary_path(d, p)}")
            else:
                args.append(f"--as-published {of}/{p}={summary_path(d, p)}")
    return " ".join(args)
