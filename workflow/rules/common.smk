# What Snakemake needs: validation, settings, constraints, targets, input functions, by stage.
# Every path is a template of geokd.paths (the file layout, spelled there only), filled by at().
# Defaults live in src/geokd/settings.py; each job gets its slice as a content-addressed JSON
# file (--settings). A job reruns when a setting, its stage's code (CODE), its command
# (rerun-triggers: code) or its raw files (listing) change (docs/reliability.md).
import sys
from functools import cache
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")
sys.path.insert(0, str(SRC))  # SRC, and how jobs run: workflow/Snakefile
from geokd import paths  # noqa: E402  every path of the workflow: a template of geokd.paths
from geokd.paths import fields, fill  # noqa: E402
from geokd.data.raw_listing import refresh_listing  # noqa: E402
from geokd.distances.shards import block_minutes, matrix_pairs, planned_blocks  # noqa: E402
from geokd.provenance import CODE_STAGES, code_hash  # noqa: E402
from geokd.jobs import job_settings  # noqa: E402
from geokd.settings import MODELS, resolve_all, write_settings_file  # noqa: E402

SETTINGS = resolve_all(config)  # SettingsError names the config key of a bad value
# CODE[stage]: each rule's param `code`: a code change reruns the stages it reaches (provenance)
CODE = {stage: code_hash(SRC / "geokd", stage) for stage in CODE_STAGES}
alternatives = lambda names: "|".join(names) if names else "(?!x)x"


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
    values = lambda w: job_settings(SETTINGS[w.dataset], job, **dict(w.items()))
    return lambda w: str(write_settings_file(values(w), paths.SETTINGS_DIR))


# ---------------------------------------------------------------- paths and targets
def at(template, w=None, **values):
    """A path of an input function or target: geokd.paths `template` filled from the
    wildcards (or dict) `w` (those the template has) and `values`; every field must be given."""
    names = fields(template)
    given = {k: v for k, v in (w or {}).items() if k in names} | values
    missing = [f for f in names if f not in given]
    if missing:
        raise KeyError(f"{', '.join(missing)}: no value for a field of {template!r}")
    return fill(template, **given)


store_path = lambda dataset: at(paths.STORE, dataset=dataset)
protocol_dir = lambda dataset, protocol: at(paths.PROTOCOL, dataset=dataset, protocol=protocol)
split_path = lambda dataset, protocol: at(paths.SPLIT, dataset=dataset, protocol=protocol)
protocols = lambda: [(d, p) for d, s in SETTINGS.items() for p in s.dataset.protocols]
published_of = lambda d: SETTINGS[d].dataset.as_published_of  # X: d is X's "as published" run
all_summaries = lambda: [at(paths.SUMMARY, dataset=d, protocol=p) for d, p in protocols()]


def seed_runs(template, d, p, models=None):
    """A run file (`template`: geokd.paths.RUN_...) of every seed of the protocol's models
    (default: every model), by model then seed."""
    s = SETTINGS[d]
    return [
        at(template, dataset=d, protocol=p, model=m, seed=n)
        for m in (s.training.models if models is None else models)
        for n in s.training.seeds
    ]


def all_matrices():
    return [
        at(paths.MATRIX, dataset=d, protocol=p, metric=m, query=q, reference=r)
        for d, p in protocols()
        for m in SETTINGS[d].metrics
        for q, r in matrix_pairs(SETTINGS[d].dataset.protocols[p])
    ]


# ---------------------------------------------------------------- ingest
@cache
def raw_inputs_of(dataset):
    """The raw folder or manifest (its time ignored) and the checksums of the files ingest
    reads, refreshed once per run (geokd.data.raw_listing); or a generated SIGNUM folder."""
    d = SETTINGS[dataset].dataset
    if d.synthetic_signum:
        return {"raw": at(paths.RAW, dataset=dataset)}
    raw, out = d.raw_dir or d.manifest, at(paths.RAW_LISTING, dataset=dataset)
    listing = refresh_listing(d.source, raw, out, at(paths.RAW_LISTING_CACHE, dataset=dataset))
    return {"raw": ancient(raw), "listing": listing}


raw_inputs = lambda w: raw_inputs_of(w.dataset)


# ---------------------------------------------------------------- distances
def distance_blocks(w):
    split = checkpoints.split.get(dataset=w.dataset, protocol=w.protocol).output[0]
    size = SETTINGS[w.dataset].distances.block_size
    plan = planned_blocks(split, w.query, w.reference, size)
    return [at(paths.BLOCK, w, bi=bi, bj=bj) for bi, bj in plan]


block_sidecars = lambda w: [paths.sidecar(b) for b in distance_blocks(w)]
block_mem_mb = lambda w, input: 500 + 2 * input.size_mb
matrix_mem_mb = lambda w: 1000 + 8 * SETTINGS[w.dataset].distances.block_size**2 // 10**6
block_runtime = lambda w, threads, attempt: block_minutes(
    SETTINGS[w.dataset].distances.block_size, threads, attempt
)


# ---------------------------------------------------------------- teacher, KNN, students
teacher_matrix = lambda w: at(
    paths.MATRIX, w, metric=SETTINGS[w.dataset].teacher.metric, query="train", reference="train"
)


def train_inputs(wildcards):
    """Store and split; distilled reads the teacher's soft labels, metric the train matrix."""
    d, p = wildcards.dataset, wildcards.protocol
    inputs = {"store": store_path(d), "split": split_path(d, p)}
    if wildcards.model == "distilled":
        method = SETTINGS[d].teacher.distill_from
        inputs["teacher"] = at(paths.SOFT_LABELS, wildcards, method=method)
    if wildcards.model == "metric":
        inputs["distances"] = teacher_matrix(wildcards)
    return inputs


def teacher_option(wildcards, input):
    """--soft-labels (distilled) or --distances (metric): what the model learns from (a list
    of arguments, for {params.teacher:q})."""
    extra = {"teacher": "--soft-labels", "distances": "--distances"}
    return [arg for k, flag in extra.items() if k in input.keys() for arg in (flag, input[k])]


ensemble_members = lambda w: seed_runs(paths.RUN_MODEL, w.dataset, w.protocol, [w.model])

# summary and report: their input functions and the targets (all_outputs) live in
# rules/summary.smk and rules/report.smk.
