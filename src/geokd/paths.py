"""The project's file layout: one template per artifact, the only place a path under
``data/``, ``results/``, ``logs/``, ``benchmarks/`` or ``.snakemake/`` is spelled.

The workflow's rules (``workflow/rules/*.smk``: their inputs, outputs, logs and benchmarks),
the DVC pipeline's generator (:mod:`geokd.dvcfile`) and the report (a protocol's results
folder, :func:`in_protocol`) all build their paths from these templates, so the layout can
change here alone. A template is a Snakemake pattern: its fields (``{dataset}``,
``{protocol}``, ...) carry the names of the rules' wildcards; :func:`fill` fills some and
leaves the others for Snakemake. Paths are relative to the project root (the working
directory of every job). Standard library only: every rule file imports this module.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"\{(\w+)\}")


def fields(template: str) -> tuple[str, ...]:
    """The fields (wildcard names) of ``template``, in order of first appearance."""
    return tuple(dict.fromkeys(_FIELD.findall(template)))


def fill(template: str, **values: object) -> str:
    """``template`` with the fields named in ``values`` filled (``str(value)``) and the others
    left as ``{field}`` (for Snakemake); :class:`KeyError` for a keyword that is not a field."""
    unknown = sorted(set(values) - set(fields(template)))
    if unknown:
        raise KeyError(f"{', '.join(unknown)}: not a field of {template!r}")
    return _FIELD.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], template)


def sidecar(path: str) -> str:
    """The checksum sidecar of an artifact (or of a template): ``<path>.json``."""
    return f"{path}.json"


# ---------------------------------------------------------------- data
#: a generated raw folder (rules synthetic_signum, synthetic_ntu)
RAW = "data/raw/{dataset}"
#: the canonical sequence store of a dataset
STORE = "data/interim/{dataset}/sequences.parquet"
#: the checksums of the raw files ingest reads (geokd.data.raw_listing), and its cache
RAW_LISTING = "data/interim/{dataset}/raw_listing.tsv"
RAW_LISTING_CACHE = ".snakemake/geokd/raw/{dataset}.json"

# ---------------------------------------------------------------- workflow state
#: the jobs' content-addressed settings files (geokd.settings.write_settings_file)
SETTINGS_DIR = ".snakemake/geokd/settings"
#: rewritten when a file the report reads is missing (geokd.report.missing)
MISSING_MARKER = ".snakemake/geokd/report/missing.txt"
LOGS = "logs"
BENCHMARKS = "benchmarks"


def log(job: str, key: str) -> str:
    """The log file of a job of rule (or job family) ``job``; ``key`` tells its jobs apart
    (their wildcards, e.g. ``{dataset}/{protocol}``)."""
    return f"{LOGS}/{job}/{key}.log"


def benchmark(job: str, key: str) -> str:
    """The benchmark file (Snakemake's ``benchmark:``) of a job, as :func:`log`."""
    return f"{BENCHMARKS}/{job}/{key}.tsv"


# ---------------------------------------------------------------- results of a protocol
PROTOCOL = "results/{dataset}/{protocol}"
SPLIT = PROTOCOL + "/split.tsv"
DISTANCES = PROTOCOL + "/distances"
MATRIX = DISTANCES + "/{metric}/{query}-{reference}.npy"
MATRIX_SIDECAR = sidecar(MATRIX)
#: a shard of a matrix (a Snakemake temp file)
BLOCK = DISTANCES + "/{metric}/{query}-{reference}/block_{bi}_{bj}.npy"
BLOCK_SIDECAR = sidecar(BLOCK)
TEACHER = PROTOCOL + "/teacher"
SOFT_LABELS = TEACHER + "/{method}.parquet"
SOFT_LABELS_SIDECAR = sidecar(SOFT_LABELS)
TEACHER_DIAGNOSTICS = TEACHER + "/{method}.json"
KNN = PROTOCOL + "/knn"
KNN_RESULT = KNN + "/{metric}.json"
KNN_LATENCY = KNN + "/latency_{metric}.json"
MODELS = PROTOCOL + "/models"
#: one seed's training run of a model family
RUN = MODELS + "/{model}/seed{seed}"


def run_file(name: str) -> str:
    """The template of file ``name`` of a run (geokd.models.config.RUN_FILES)."""
    return f"{RUN}/{name}"


RUN_MODEL = run_file("model.pt")
RUN_MODEL_SIDECAR = sidecar(RUN_MODEL)
RUN_HISTORY = run_file("history.json")
RUN_METRICS = run_file("metrics.json")
RUN_TIMINGS = run_file("timings.json")
#: the ensemble of a family's seeds
ENSEMBLE = MODELS + "/{model}_ensemble"
ENSEMBLE_METRICS = ENSEMBLE + "/metrics.json"
ENSEMBLE_TIMINGS = ENSEMBLE + "/timings.json"
#: the label-budget study: a labelled subset's runs, and the study's summary
BUDGETS = PROTOCOL + "/budgets"
BUDGET_SUBSET = BUDGETS + "/{subset}.json"
BUDGET_SUMMARY = BUDGETS + "/summary.json"
SUMMARY = PROTOCOL + "/summary.json"
TIMINGS = PROTOCOL + "/timings.json"
#: what DVC reads (geokd.report.dvc): flat metrics and the training curves
DVC_METRICS = PROTOCOL + "/metrics.json"
CURVES = PROTOCOL + "/training_curves.json"

# ---------------------------------------------------------------- results of the whole run
TABLES = "results/tables"
ACCURACY_CSV = TABLES + "/accuracy.csv"
ACCURACY_TEX = TABLES + "/accuracy.tex"
INFERENCE_CSV = TABLES + "/inference.csv"
INFERENCE_TEX = TABLES + "/inference.tex"
#: every file of the paper's tables (geokd.report.tables)
TABLE_FILES = (ACCURACY_CSV, ACCURACY_TEX, INFERENCE_CSV, INFERENCE_TEX)
FIGURES = "results/figures"
REPORT = "results/report.html"


def in_protocol(template: str, **values: object) -> str:
    """The part of ``template`` below a protocol's results folder (:data:`PROTOCOL`), every
    other field filled from ``values`` (``"*"`` makes it a glob pattern): what a reader given
    that folder (the report's ``--results``) opens, e.g. ``in_protocol(KNN_LATENCY,
    metric="paper")`` is ``knn/latency_paper.json``. :class:`KeyError` for a missing value
    or one that is not a field; :class:`ValueError` for a template outside the folder."""
    if not template.startswith(f"{PROTOCOL}/"):
        raise ValueError(f"{template!r} is not below {PROTOCOL!r}")
    rest = template[len(PROTOCOL) + 1 :]
    missing = sorted(set(fields(rest)) - set(values))
    if missing:
        raise KeyError(f"{', '.join(missing)}: no value for a field of {rest!r}")
    return fill(rest, **values)
