# Shared set-up: config validation, wildcard constraints and named input/param functions.
# Anything bigger than path and argument plumbing belongs in src/geokd.
import os
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# Jobs run `python -m geokd`: use the interpreter that runs Snakemake (the project's venv) and
# the package sources of this checkout, also under --sdm conda where `python` is the env's.
os.environ["PATH"] = os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ["PATH"]]
)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(Path(workflow.basedir).parent / "src"), os.environ.get("PYTHONPATH", "")]
).rstrip(os.pathsep)

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


def store_path(dataset):
    return f"data/interim/{dataset}/sequences.parquet"


def split_path(dataset, protocol):
    return f"results/{dataset}/{protocol}/split.tsv"


def all_splits():
    return [split_path(d, p) for d in DATASETS for p in DATASETS[d]["protocols"]]


def all_outputs():
    return ["results/report.html"]


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
    return {"stores": [store_path(d) for d in DATASETS], "splits": all_splits()}


def report_args(wildcards):
    args = [f"--dataset {d}={store_path(d)}" for d in DATASETS]
    args += [
        f"--split {d}/{p}={split_path(d, p)}"
        for d in DATASETS
        for p in DATASETS[d]["protocols"]
    ]
    return " ".join(args)
