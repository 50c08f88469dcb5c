"""The DVC pipeline (``dvc.yaml``) of any config, generated from it.

``geokd dvc-yaml CONFIG [--out dvc.yaml]`` writes seven stages per dataset, each running one
slice of the Snakemake workflow (``snakemake --cores all TARGET... --allowed-rules RULE...``),
with the slice's outputs as ``outs``, the earlier stages' outputs, its rule files and the
geokd package as ``deps``, and the config keys it reads as ``params``; one ``report`` stage
gathers every dataset. A config with one dataset gets the plain stage names (``ingest``,
``split``, ``distances``, ``teacher``, ``knn``, ``training``, ``report``); with several, each
dataset's stages are suffixed ``_<dataset>``. The committed ``dvc.yaml`` is this function's
output for ``config/config.yaml`` (a test keeps them equal). Paths and targets are the
workflow's (the templates of :mod:`geokd.paths`, ``workflow/rules/common.smk``): a test
compares them with a Snakemake dry run.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import yaml

from . import paths
from .distances.shards import matrix_pairs
from .errors import InputError
from .paths import fill
from .settings import resolve_all, train_rule_name

DEFAULT_CONFIG = "config/config.yaml"

HEADER = """\
{intro}
#
# Snakemake runs the jobs; each stage builds one slice of the workflow, and --allowed-rules keeps
# it to its own rules, so a stage never rebuilds another stage's outputs (those are DVC's to
# judge). `snakemake` must be on PATH: activate the venv first (. .venv/bin/activate).
# deps: the stage's inputs, its rule files and the geokd package (any module of it can shape a
# stage's outputs: the settings, the command line); params: the config keys the stage reads.
"""

#: the rules of each stage, and the rule files that define them
RULES = {
    "ingest": None,  # by source: ingest_<source> (+ synthetic_signum)
    "split": ["split"],
    "distances": ["distance_block", "distance_matrix"],
    "teacher": ["soft_labels"],
    "knn": ["knn", "knn_latency"],
    "training": None,  # by seed group: train_seeds<...> (+ ensemble)
    "report": ["summary", "dvc_metrics", "paper_tables", "report_html"],
}
RULE_FILES = {
    "ingest": ["ingest"],
    "split": ["splits"],
    "distances": ["distances"],
    "teacher": ["teacher"],
    "knn": ["knn"],
    "training": ["train"],
    "budgets": ["budgets"],
    "report": ["summary", "report", "targets"],  # targets.smk: their input functions
}
INGEST_RULES = {
    "synthetic": ["ingest_synthetic"],
    "utd_mhad": ["ingest_utd_mhad"],
    "signum": ["ingest_signum"],
    "ntu": ["ingest_ntu"],
    "pyskl": ["ingest_pyskl"],
}


def _present(config: dict, key: str) -> bool:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _keys(config: dict, section: str, only: list[str] | None = None) -> list[str]:
    """``section.<key>`` for each key of the config's section (or those of ``only``)."""
    node = config
    for part in section.split("."):
        node = (node or {}).get(part) or {}
    return [f"{section}.{k}" for k in node if only is None or k in only]


def _code(stage: str) -> list[str]:
    """A stage's code deps: common.smk, its rule files, the package."""
    rules = [f"workflow/rules/{f}.smk" for f in RULE_FILES[stage]]
    return ["workflow/rules/common.smk", *rules, "src/geokd"]


def _block(name: str, stage: dict, comments: dict[str, str]) -> list[str]:
    """One stage as YAML lines (2-space indent), with comment lines before some fields."""
    lines = [f"  {name}:"]
    cmd = stage["cmd"]
    lines.append("    cmd: >-")
    lines += [f"      {word}" for word in cmd]
    for field in ("deps", "params", "outs", "metrics", "plots"):
        if field not in stage:
            continue
        if field in comments:
            lines.append(f"    # {comments[field]}")
        lines.append(f"    {field}:")
        for entry in stage[field]:
            if isinstance(entry, dict):
                ((path, keys),) = entry.items()
                if keys is None:
                    lines.append(f"      - {path}:")
                else:
                    lines.append(f"      - {path}:")
                    lines += [f"          - {k}" for k in keys]
            elif isinstance(entry, tuple):  # (comment, path)
                lines.append(f"      # {entry[0]}")
                lines.append(f"      - {entry[1]}")
            else:
                lines.append(f"      - {entry}")
    return lines


def pipeline(config_path: str | os.PathLike = DEFAULT_CONFIG) -> str:
    """The text of ``dvc.yaml`` for the config at ``config_path`` (relative to the project)."""
    config_path = str(config_path)
    config = yaml.safe_load(Path(config_path).read_text()) or {}
    settings = resolve_all(config)
    if not settings:
        raise InputError(config_path, "the config has no datasets")
    default = config_path == DEFAULT_CONFIG
    extra = [] if default else ["--configfile", config_path, "--replace-workflow-config"]
    several = len(settings) > 1
    head = ["snakemake --cores all"] + ([" ".join(extra)] if extra else [])

    def stage_name(stage: str, d: str) -> str:
        return f"{stage}_{d}" if several else stage

    def snakemake(targets: list[str], rules: list[str]) -> list[str]:
        return [*head, *targets, f"--allowed-rules {' '.join(rules)}"]

    def params(keys: list[str]) -> list[dict]:
        return [{config_path: keys}] if keys else []

    blocks: list[list[str]] = []
    report_deps: list[str] = []
    report_outs: list[str] = []
    metrics, plots = [], []
    for d, s in settings.items():
        ds = f"datasets.{d}"
        protocols = list(s.dataset.protocols)
        store = fill(paths.STORE, dataset=d)

        def per_protocol(template: str, only: list[str] = protocols, d: str = d) -> list[str]:
            """``template`` (a file or folder of a protocol) of each protocol (or of ``only``)."""
            return [fill(template, dataset=d, protocol=p) for p in only]

        splits = per_protocol(paths.SPLIT)

        def section(name: str, ds: str = ds) -> list[str]:
            """A top-level section's keys and the dataset's own override of it."""
            own = [f"{ds}.{name}"] if _present(config, f"{ds}.{name}") else []
            return _keys(config, name) + own

        # ingest: the store; a generated SIGNUM folder is an output too, real raw data a dep
        rules = list(INGEST_RULES[s.dataset.source])
        outs = [store]
        deps: list = []
        generated = next(
            (g for g in ("synthetic_signum", "synthetic_ntu") if getattr(s.dataset, g)), None
        )
        if generated:
            rules = [generated, *rules]
            outs = [fill(paths.RAW, dataset=d), store]
        elif s.dataset.source != "synthetic":
            raw = s.dataset.raw_dir or s.dataset.annotations
            raw = raw or str(Path(s.dataset.manifest).parent)
            deps = [("the raw data (`dvc add` it to version it: docs/dvc.md)", raw)]
        keys = [
            f"{ds}.{k}"
            for k in (
                "source",
                "synthetic",
                "synthetic_signum",
                "synthetic_ntu",
                "raw_dir",
                "manifest",
                "annotations",
                "bodies",
                "layout",
                "landmarks",
                "missing_landmarks",
            )
            if _present(config, f"{ds}.{k}")
        ] + section("ingest")
        stage = {
            "cmd": snakemake([store], rules),
            "deps": [*deps, *_code("ingest")],
            "params": params(keys),
            "outs": outs,
        }
        blocks.append(_block(stage_name("ingest", d), stage, {}))

        stage = {
            "cmd": snakemake(splits, RULES["split"]),
            "deps": [store, *_code("split")],
            "params": params([f"{ds}.protocols"]),
            "outs": splits,
        }
        blocks.append(_block(stage_name("split", d), stage, {}))

        matrices = [
            fill(paths.MATRIX, dataset=d, protocol=p, metric=m, query=q, reference=r)
            for p in protocols
            for m in s.metrics
            for q, r in matrix_pairs(s.dataset.protocols[p])
        ]
        dist_dirs = per_protocol(paths.DISTANCES)
        metric_key = [f"{ds}.metrics"] if _present(config, f"{ds}.metrics") else []
        stage = {
            "cmd": snakemake(matrices, RULES["distances"]),
            "deps": [store, *splits, *_code("distances")],
            "params": params(metric_key + section("distances")),
            "outs": [
                ("the assembled matrices and their sidecars (the block shards are Snakemake "
                 "temp files)", dist_dirs[0]),
                *dist_dirs[1:],
            ],
        }  # fmt: skip
        blocks.append(_block(stage_name("distances", d), stage, {}))

        teacher_metric = s.teacher.metric
        teacher_targets = [
            fill(paths.SOFT_LABELS, dataset=d, protocol=p, method=m)
            for p in protocols
            for m in s.teacher.methods
        ]
        teacher_dirs = per_protocol(paths.TEACHER)
        stage = {
            "cmd": snakemake(teacher_targets, RULES["teacher"]),
            "deps": [*splits, *dist_dirs, *_code("teacher")],
            "params": params(
                _keys(config, "teacher", ["metric", "methods", "softmax", "nngk"])
                + ([f"{ds}.teacher"] if _present(config, f"{ds}.teacher") else [])
            ),
            "outs": teacher_dirs,
        }
        blocks.append(_block(stage_name("teacher", d), stage, {}))

        knn_targets = [
            fill(template, dataset=d, protocol=p, metric=m)
            for p in protocols
            for template, m in [
                *[(paths.KNN_RESULT, m) for m in s.metrics],
                (paths.KNN_LATENCY, teacher_metric),
            ]
        ]
        knn_dirs = per_protocol(paths.KNN)
        stage = {
            "cmd": snakemake(knn_targets, RULES["knn"]),
            "deps": [store, *splits, *dist_dirs, *_code("knn")],
            "params": params(section("knn") + _keys(config, "teacher", ["metric"])),
            "outs": [("latency_*.json holds wall times: a rerun changes its bytes", knn_dirs[0]),
                     *knn_dirs[1:]],
        }  # fmt: skip
        blocks.append(_block(stage_name("knn", d), stage, {}))

        runs = [
            fill(paths.RUN_METRICS, dataset=d, protocol=p, model=m, seed=n)
            for p in protocols
            for m in s.training.models
            for n in s.training.seeds
        ]
        runs += [
            fill(paths.ENSEMBLE_METRICS, dataset=d, protocol=p, model=m)
            for p in protocols
            for m in s.training.ensembles
        ]
        train_rules = [train_rule_name(g) for g in s.training.seed_groups()]
        train_rules += ["ensemble"] if s.training.ensembles else []
        model_dirs = per_protocol(paths.MODELS)
        teacher_matrices = per_protocol(
            fill(paths.MATRIX, metric=teacher_metric, query="train", reference="train")
        )
        train_deps = [store, *splits, *teacher_dirs]
        if "metric" in s.training.models:
            train_deps += teacher_matrices
        stage = {
            "cmd": snakemake(runs, train_rules),
            "deps": [*train_deps, *_code("training")],
            "params": params(
                [f"training.{k}" for k in ("seeds", "seeds_per_job", "models", "ensembles",
                                           "train", "student")
                 if _present(config, f"training.{k}")]
                + ([f"{ds}.training"] if _present(config, f"{ds}.training") else [])
                + _keys(config, "teacher", ["distill_from"])
            ),
            "outs": [("<model>/seed<N>/: model.pt (+ .json checksum), history, metrics and "
                      "timings JSON", model_dirs[0]), *model_dirs[1:]],
        }  # fmt: skip
        blocks.append(_block(stage_name("training", d), stage, {}))

        studied = [
            p for p in protocols if s.budgets.enabled and len(s.dataset.protocols[p]["train"]) > 1
        ]
        if studied:  # the label-budget study: one stage per dataset
            budget_dirs = per_protocol(paths.BUDGETS, studied)
            stage = {
                "cmd": snakemake(
                    per_protocol(paths.BUDGET_SUMMARY, studied),
                    ["budget_subset", "budget_summary"],
                ),
                "deps": [store, *splits, *dist_dirs, *knn_dirs, *model_dirs, *_code("budgets")],
                "params": params(
                    section("budgets")
                    + _keys(config, "teacher", ["exclude", "softmax"])
                    + _keys(config, "distances", ["normalise"])
                    + [
                        f"training.{k}"
                        for k in ("train", "student")
                        if _present(config, f"training.{k}")
                    ]
                ),
                "outs": [
                    (
                        "<subset>.json: every arm's runs; summary.json: the bootstrap",
                        budget_dirs[0],
                    ),
                    *budget_dirs[1:],
                ],
            }
            blocks.append(_block(stage_name("budgets", d), stage, {}))

        report_deps += [store, *splits, *dist_dirs, *teacher_dirs, *knn_dirs, *model_dirs]
        report_outs += per_protocol(paths.TIMINGS) + per_protocol(paths.SUMMARY)
        metrics += per_protocol(paths.DVC_METRICS)
        plots += per_protocol(paths.CURVES)

    stage = {
        "cmd": snakemake([paths.REPORT, paths.ACCURACY_CSV, *metrics], RULES["report"]),
        "deps": [*report_deps, *_code("report")],
        "params": [{config_path: None}],
        "outs": [
            paths.TABLES,
            paths.FIGURES,
            paths.REPORT,
            ("measured times (summary.json has none, so it is the same to the byte for the "
             "same config)", report_outs[0]),
            *report_outs[1:],
        ],
        "metrics": metrics,
        "plots": plots,
    }  # fmt: skip
    blocks.append(
        _block(
            "report",
            stage,
            {
                "params": "summary.json records the whole resolved config: every key counts",
                "metrics": "`dvc metrics show/diff`: one flat file of numbers per protocol "
                "(geokd.report.dvc)",
                "plots": "`dvc plots show`: the mean training curves of every model, one row "
                "per epoch",
            },
        )
    )

    names = ", ".join(f"`{d}`" for d in settings)
    what = (
        f"the default config ({config_path}: dataset {names})"
        if default
        else f"{config_path} (dataset{'s' if several else ''} {names})"
    )
    intro = (
        f"DVC pipeline over the Snakemake workflow, for {what}. Generated by `geokd dvc-yaml "
        f"{config_path}`: change the config and regenerate, do not edit by hand (a test keeps "
        "the committed dvc.yaml equal to the default config's). How to use it: docs/dvc.md."
    )
    intro = "\n".join(textwrap.wrap(intro, 96, initial_indent="# ", subsequent_indent="# "))
    text = HEADER.format(intro=intro) + "stages:\n"
    text += "\n\n".join("\n".join(b) for b in blocks) + "\n"
    text += _plots_section(settings, plots)
    return text


def _plots_section(settings: dict, files: list[str]) -> str:
    """The top-level ``plots:``: test accuracy and loss per epoch of every model."""
    models = list(dict.fromkeys(m for s in settings.values() for m in s.training.models))
    lines = ["", "plots:"]
    for title, suffix, anchor in (
        ("test accuracy per epoch (mean over seeds)", "test_accuracy", "accuracy"),
        ("training loss per epoch (mean over seeds)", "loss", "loss"),
    ):
        lines += [f"  - {title}:", "      template: linear", "      x: epoch", "      y:"]
        for i, path in enumerate(files):
            if i == 0:
                lines.append(f"        {path}: &{anchor}")
                lines += [f"          - {m}_{suffix}" for m in models]
            else:
                lines.append(f"        {path}: *{anchor}")
    return "\n".join(lines) + "\n"


def write(config_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write :func:`pipeline`'s text to ``out`` atomically."""
    from .atomic import write_text

    text = pipeline(config_path)
    yaml.safe_load(text)  # it parses
    write_text(out, text)
    return Path(out)
