# Shared set-up: config validation, wildcard constraints and named input/param functions.
# Anything bigger than path and argument plumbing belongs in src/geokd.
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
from geokd.shards import matrix_pairs, planned_blocks  # noqa: E402

DATASETS = config["datasets"]
DISTANCES = config.get("distances", {})


def _names(source=None):
    return [n for n, d in DATASETS.items() if source is None or d["source"] == source]


def _alternatives(names):
    return "|".join(names) if names else "(?!x)x"


wildcard_constraints:
    dataset=_alternatives(_names()),
    protocol=_alternatives(
        sorted({p for d in DATASETS.values() for p in d["protocols"]})
    ),


def store_path(dataset):
    return f"data/interim/{dataset}/sequences.parquet"


def split_path(dataset, protocol):
    return f"results/{dataset}/{protocol}/split.tsv"


def all_splits():
    return [split_path(d, p) for d in DATASETS for p in DATASETS[d]["protocols"]]


def metrics(dataset):
    return DATASETS[dataset].get("metrics", DISTANCES.get("metrics", ["procrustes"]))


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


def all_outputs():
    return ["results/report.html", *all_matrices()]


def block_size():
    return DISTANCES.get("block_size", 64)


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
            split, wildcards.query, wildcards.reference, block_size()
        )
    ]


def distance_block_sidecars(wildcards):
    return [f"{path}.json" for path in distance_blocks(wildcards)]


def matrix_args(wildcards):
    params = DISTANCES.get("metric_params", {}).get(wildcards.metric, {})
    args = [
        f"--query {wildcards.query} --reference {wildcards.reference}",
        f"--metric {wildcards.metric} --block-size {block_size()}",
        *(f"--param {k}={v}" for k, v in params.items()),
    ]
    if DISTANCES.get("window") is not None:
        args.append(f"--window {DISTANCES['window']}")
    return " ".join(args)


def block_mem_mb(wildcards, input):
    return 500 + 2 * input.size_mb


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


def protocol_args(wildcards):
    protocol = DATASETS[wildcards.dataset]["protocols"][wildcards.protocol]
    return " ".join(
        f"--{split} " + " ".join(map(str, subjects))
        for split, subjects in protocol.items()
        if subjects
    )


def report_inputs(wildcards):
    return {
        "stores": [store_path(d) for d in DATASETS],
        "splits": all_splits(),
        "matrices": all_matrices(),
    }


def report_args(wildcards):
    args = [f"--dataset {d}={store_path(d)}" for d in DATASETS]
    args += [
        f"--split {d}/{p}={split_path(d, p)}"
        for d in DATASETS
        for p in DATASETS[d]["protocols"]
    ]
    return " ".join(args)
