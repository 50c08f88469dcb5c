"""The steps behind the ``geokd`` subcommands (:mod:`geokd.cli` parses, these run).

Every step reads its settings the same way: its job's typed dataclass (:mod:`geokd.jobs`)
from a ``--settings FILE`` (the job's slice of the config, :func:`geokd.settings.job_settings`)
or, without one, from the config sections' defaults; then any explicit command-line option on
top (:func:`geokd.jobs.load`). No default is written here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import jobs
from .errors import InputError
from .settings import SettingsError, build


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def ingest_utd(args: argparse.Namespace) -> None:
    from .data.utd_mhad import ingest

    job = jobs.load(jobs.IngestJob, args, source="utd_mhad")
    n, rejected = ingest(
        args.raw_dir,
        args.out,
        skip_bad=job.skip_bad,
        rejected_out=args.rejected,
        layout=job.layout,
        allow_duplicates=job.allow_duplicates,
    )
    _say(f"wrote {n} sequences to {args.out}; {len(rejected)} file(s) rejected")


def _dataclass_options(args: argparse.Namespace, cls: type, base: dict, key: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {**base, **{n: getattr(args, n) for n in fields if getattr(args, n, None) is not None}}
    return build(cls, values, key)


def ingest_synthetic(args: argparse.Namespace) -> None:
    from .data.synthetic import SyntheticConfig, write_synthetic

    job = jobs.load(jobs.IngestJob, args, source="synthetic")
    cfg = _dataclass_options(args, SyntheticConfig, dataclasses.asdict(job.synthetic), "synthetic")
    write_synthetic(args.out, cfg)
    _say(f"wrote synthetic dataset to {args.out} ({cfg})")


def ingest_signum(args: argparse.Namespace) -> None:
    from .data.signum import N_SIGNERS, N_SIGNS, ingest

    job = jobs.load(jobs.IngestJob, args, source="signum")
    n, rejected = ingest(
        args.manifest,
        args.out,
        landmarks=job.landmarks,
        missing=job.missing_landmarks,
        skip_bad=job.skip_bad,
        rejected_out=args.rejected,
        dataset=args.dataset or "signum",
        n_signs=args.n_signs or N_SIGNS,
        n_signers=args.n_signers or N_SIGNERS,
        allow_duplicates=job.allow_duplicates,
        allow_outside_paths=job.allow_outside_paths,
    )
    _say(f"wrote {n} sequences to {args.out}; {len(rejected)} sample(s) rejected")


def synthetic_signum(args: argparse.Namespace) -> None:
    from .data.signum_synthetic import SignumSyntheticConfig, write_synthetic_signum

    base = dataclasses.asdict(jobs.load(jobs.SyntheticSignumJob, args).synthetic_signum)
    cfg = _dataclass_options(args, SignumSyntheticConfig, base, "synthetic_signum")
    manifest = write_synthetic_signum(args.out_dir, cfg)
    _say(f"wrote synthetic SIGNUM-format set to {manifest} ({cfg})")


def ingest_ntu(args: argparse.Namespace) -> None:
    from .data.ntu import ingest

    job = jobs.load(jobs.IngestJob, args, source="ntu")
    n, rejected = ingest(
        args.raw_dir,
        args.out,
        bodies=job.bodies,
        skip_bad=job.skip_bad,
        rejected_out=args.rejected,
        dataset=args.dataset or "ntu",
        allow_duplicates=job.allow_duplicates,
    )
    _say(f"wrote {n} sequences to {args.out}; {len(rejected)} file(s) rejected")


def ingest_pyskl(args: argparse.Namespace) -> None:
    from .data.pyskl import ingest

    job = jobs.load(jobs.IngestJob, args, source="pyskl")
    n, rejected = ingest(
        args.annotations,
        args.out,
        bodies=job.bodies,
        skip_bad=job.skip_bad,
        rejected_out=args.rejected,
        dataset=args.dataset or "pyskl",
        allow_duplicates=job.allow_duplicates,
    )
    _say(f"wrote {n} sequences to {args.out}; {len(rejected)} sample(s) rejected")


def synthetic_ntu(args: argparse.Namespace) -> None:
    from .data.ntu_synthetic import NtuSyntheticConfig, write_synthetic_ntu

    base = dataclasses.asdict(jobs.load(jobs.SyntheticNtuJob, args).synthetic_ntu)
    cfg = _dataclass_options(args, NtuSyntheticConfig, base, "synthetic_ntu")
    out = write_synthetic_ntu(args.out_dir, cfg)
    _say(f"wrote synthetic NTU-format set to {out} ({cfg})")


def split(args: argparse.Namespace) -> None:
    from .data.splits import write_split

    protocol = dict(jobs.load(jobs.SplitJob, args).protocol)
    for name in ("train", "val", "test", "by"):
        if getattr(args, name, None):
            protocol[name] = getattr(args, name)
    protocol = {k: v for k, v in protocol.items() if v}
    for name in ("train", "test"):
        if name not in protocol:
            raise InputError(f"--{name}", "no subjects (give --settings or the option)")
    table = write_split(args.store, args.out, protocol)
    _say(f"wrote {args.out}: {table['split'].value_counts().to_dict()}")


def _matrix_spec(args: argparse.Namespace):
    from .distances.shards import MatrixSpec

    job = jobs.load(jobs.DistanceJob, args, metric=args.metric)
    params = dict(job.metric_params)
    for item in args.param or []:
        key, _, value = item.partition("=")
        try:
            params[key] = float(value)
        except ValueError:
            raise InputError(item, "expected --param NAME=NUMBER") from None
    spec = MatrixSpec(
        args.query, args.reference, job.metric, job.window, params, job.precision, job.frames
    )
    return spec, job


def distances_block(args: argparse.Namespace) -> None:
    from .distances.shards import compute_block

    spec, job = _matrix_spec(args)
    block = tuple(args.block)
    compute_block(
        args.store,
        args.split,
        args.out,
        spec,
        block,
        job.block_size,
        args.threads,
        backend=job.backend,
    )
    _say(f"wrote block {block} of {spec} to {args.out}")


def distances_assemble(args: argparse.Namespace) -> None:
    from .checksum import sha256_file
    from .distances.shards import assemble

    spec, job = _matrix_spec(args)
    matrix = assemble(
        args.split, args.blocks, args.out, spec, job.block_size, sha256_file(args.store)
    )
    _say(f"wrote {matrix.shape} matrix to {args.out}")


def teacher(args: argparse.Namespace) -> None:
    from .jsonfile import write_json
    from .models.teacher import make_soft_labels

    job = jobs.load(jobs.TeacherJob, args, method=args.method)
    if args.method is not None and args.settings and job.method != args.method:
        raise InputError("--method", f"{args.method}, but the settings file says {job.method}")
    params = dataclasses.asdict(job.params)
    result = make_soft_labels(
        args.matrix,
        args.split,
        args.out,
        job.method,
        exclude=job.exclude,
        store=args.store,
        distance_normalise=job.normalise,
        **params,
    )
    write_json(args.diagnostics, result)
    _say(f"wrote {args.out}: LOO accuracy {result['accuracy']:.3f}")


def knn(args: argparse.Namespace) -> None:
    from .models.knn import run_knn

    job = jobs.load(jobs.KnnJob, args)
    if job.k_max < 1:
        raise SettingsError("k_max", f"must be >= 1, got {job.k_max}")
    ks = range(1, job.k_max + 1)
    result = run_knn(
        args.matrix, args.split, args.out, ks, normalise=job.normalise, store=args.store
    )
    _say(f"wrote {args.out}: 1-NN accuracy {result['per_k']['1']['accuracy']:.3f}")


def knn_latency(args: argparse.Namespace) -> None:
    from .models.knn import knn_latency as measure

    job = jobs.load(jobs.KnnLatencyJob, args, metric=args.metric)
    extra = dict(job.metric_params)
    if job.window is not None:
        extra["window"] = job.window
    result = measure(
        args.store,
        args.split,
        args.out,
        metric=job.metric,
        n_queries=job.n_queries,
        n_jobs=args.threads,
        frames=job.frames,
        **extra,
    )
    _say(f"1-NN query: {result['ms_per_query']:.1f} ms")


def train(args: argparse.Namespace) -> None:
    from .models.runs import run_trainings

    job = jobs.load(jobs.TrainJob, args, model=args.mode)
    tcfg = dataclasses.replace(job.train, progress=False, num_threads=args.threads)
    if len(args.out_dir) != len(args.seed):
        raise InputError("--seed", f"{len(args.seed)} seed(s) for {len(args.out_dir)} folder(s)")
    results = run_trainings(
        args.store,
        args.split,
        args.soft_labels,
        args.out_dir,
        args.mode,
        args.seed,
        tcfg,
        job.student,
        distances_path=args.distances,
        distance_normalise=job.normalise,
    )
    for seed, result in zip(args.seed, results, strict=True):
        _say(f"{args.mode} seed {seed}: test accuracy {result['test']['accuracy']:.3f}")


def budget_run(args: argparse.Namespace) -> None:
    from .models.budgets import parse_subset, run_subset

    job = jobs.load(jobs.BudgetJob, args)
    try:
        subset = parse_subset(args.subset)
    except ValueError as exc:
        raise InputError("--subset", str(exc)) from None
    result = run_subset(
        args.store,
        args.split,
        args.train_matrix,
        args.test_matrix,
        args.out,
        subset,
        seeds=job.seeds,
        labels_cfg=(job.labels.train, job.labels.student),
        distilled_cfg=(job.distilled.train, job.distilled.student),
        teacher=job.teacher,
        exclude=job.exclude,
        normalise=job.normalise,
        threads=args.threads,
    )
    mean = {}
    for r in result["rows"]:
        mean.setdefault(r["arm"], []).append(r["accuracy"])
    text = ", ".join(f"{a} {sum(v) / len(v):.3f}" for a, v in mean.items())
    _say(f"{args.out}: labelled subjects {list(subset)}: test accuracy {text}")


def budget_summary(args: argparse.Namespace) -> None:
    from .report.budgets import summarise_budgets

    full: dict[str, list[str]] = {}
    for item in args.full_run or []:
        arm, _, path = item.partition("=")
        if not arm or not path:
            raise InputError(item, "expected --full-run ARM=METRICS.json")
        full.setdefault(arm, []).append(path)
    result = summarise_budgets(
        args.subset_results,
        args.out,
        dataset=args.dataset,
        protocol=args.protocol,
        train_subjects=args.train_subjects,
        full_runs=full,
        full_knn=args.full_knn,
    )
    for b in result["by_budget"]:
        _say(b["verdict"])


def ensemble(args: argparse.Namespace) -> None:
    from .models.ensemble import run_ensemble

    result = run_ensemble(args.store, args.split, args.checkpoints, args.out_dir, args.name)
    _say(f"{args.name}: test accuracy {result['test']['accuracy']:.3f}")


def predict(args: argparse.Namespace) -> None:
    from .models.predict import run_predict

    result = run_predict(args.checkpoint, args.inputs, args.out, args.batch_size)
    line = f"{args.out}: {result['n_sequences']} sequence(s) predicted"
    if result["n_labelled"]:
        line += f"; accuracy {result['accuracy']:.4f} on the {result['n_labelled']} labelled"
    _say(line)


def export(args: argparse.Namespace) -> None:
    from .models.export import export_student

    meta = export_student(args.checkpoint, args.format, args.out)
    _say(f"{args.out}: {args.format}, {meta['size']} bytes; metadata in {args.out}.json")


def dvc_metrics(args: argparse.Namespace) -> None:
    from .report.dvc import write_dvc_files

    pairs = []
    for item in args.histories:
        mode, sep, path = item.partition("=")
        if not sep or not mode or not path:
            raise InputError(item, "expected MODEL=HISTORY")
        pairs.append((mode, path))
    metrics = write_dvc_files(args.summary, pairs, args.metrics_out, args.curves_out)
    _say(f"{args.metrics_out}: {len(metrics)} metrics; {args.curves_out}: curves")


def dvc_yaml(args: argparse.Namespace) -> None:
    from .dvcfile import write

    if not Path(args.config).is_file():
        raise InputError(args.config, "no such config file")
    out = write(args.config, args.out)
    _say(f"{out}: the DVC pipeline of {args.config} (dvc repro; docs/dvc.md)")


def summarize(args: argparse.Namespace) -> None:
    from .checksum import verify_sidecar
    from .report.summary import summarize as write_summary

    for artifact in args.check:
        verify_sidecar(artifact)  # InputError naming a missing or damaged one
    write_summary(
        args.out,
        knn=args.knn,
        teachers=args.teacher,
        runs=args.run,
        latency=args.latency,
        store=args.store,
        config=jobs.load(jobs.SummaryJob, args).sections,
        dataset=args.dataset,
        protocol=args.protocol,
        run_timings=args.run_timings,
        timings_out=args.timings_out,
        speed=args.speed,
    )


def _keyed_paths(specs: list[str], option: str) -> dict[tuple[str, str], Path]:
    """Parse ``DATASET/PROTOCOL=PATH`` options."""
    out = {}
    for spec in specs:
        key, _, path = spec.partition("=")
        name, _, protocol = key.partition("/")
        if not path or not protocol or not name:
            raise InputError(spec, f"expected {option} DATASET/PROTOCOL=PATH")
        out[(name, protocol)] = Path(path)
    return out


def report(args: argparse.Namespace) -> None:
    from .report.page import DatasetEntry, build_report

    entries: dict[str, DatasetEntry] = {}
    for spec in args.dataset:
        name, _, path = spec.partition("=")
        if not path:
            raise InputError(spec, "expected --dataset NAME=STORE.parquet")
        entries[name] = DatasetEntry(name=name, store=Path(path))
    for spec in args.as_published_of:
        name, _, other = spec.partition("=")
        if name not in entries or other not in entries:
            raise InputError(spec, "--as-published-of NAME=OTHER names two --dataset entries")
        entries[name].as_published_of = other
    for option, specs, attr in (
        ("--split", args.split, "splits"),
        ("--results", args.results, "results"),
    ):
        for (name, protocol), path in _keyed_paths(specs, option).items():
            if name not in entries:
                raise InputError(f"{name}/{protocol}", f"{option} names no --dataset")
            getattr(entries[name], attr)[protocol] = path
    build_report(
        args.out, list(entries.values()), figures_dir=args.figures, benchmarks_dir=args.benchmarks
    )


def tables(args: argparse.Namespace) -> None:
    from .report.tables import write_tables

    corrected = _keyed_paths(args.summary, "--summary")
    published = _keyed_paths(args.as_published, "--as-published") or None
    for path in write_tables(args.out_dir, corrected, published):
        _say(f"wrote {path}")


def verify(args: argparse.Namespace) -> int:
    from .checksum import sidecar_path, verify_tree

    artifacts, damaged = verify_tree(*args.paths)
    for path, problem in damaged:
        print(f"geokd: error: {path}: {problem}", file=sys.stderr)
        if args.delete:
            for p in (path, sidecar_path(path)) if path.suffix != ".json" else (path,):
                p.unlink(missing_ok=True)
    print(f"checked {len(artifacts)} artifact(s): {len(damaged)} damaged")
    if damaged and args.delete:
        # true because the workflow's default rule asks for every matrix, model and
        # soft-label file (with its sidecar) by name (workflow/rules/common.smk: all_outputs)
        print(
            f"deleted the {len(damaged)} damaged file(s) and their sidecars. The next workflow "
            "run (`snakemake --cores all`, the default target) recomputes each deleted distance "
            "matrix, soft-label file and model that the config asks for, and what was computed "
            "from it; a distance block (temporary) is recomputed only while its matrix is "
            "missing, and an artifact of a dataset, protocol, model or seed no longer in the "
            "config is not recomputed."
        )
    elif damaged:
        print("`geokd verify --delete` deletes them so that the workflow recomputes them")
    return 2 if damaged and not args.delete else 0
