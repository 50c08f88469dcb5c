"""The ``geokd`` command line: one subcommand per pipeline step.

Every subcommand validates its input, writes its outputs atomically, and on bad input prints
one line ``geokd: error: <file>: <problem>`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from . import __version__
from .errors import InputError


def _cmd_ingest_utd(args: argparse.Namespace) -> None:
    from .data.utd_mhad import ingest

    n, rejected = ingest(
        args.raw_dir,
        args.out,
        skip_bad=args.skip_bad,
        rejected_out=args.rejected,
        layout=args.layout,
    )
    print(f"wrote {n} sequences to {args.out}; {len(rejected)} file(s) rejected", file=sys.stderr)


def _cmd_ingest_synthetic(args: argparse.Namespace) -> None:
    from .data.synthetic import SyntheticConfig, write_synthetic

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticConfig)}
    cfg = SyntheticConfig(**{k: v for k, v in values.items() if v is not None})
    write_synthetic(args.out, cfg)
    print(f"wrote synthetic dataset to {args.out} ({cfg})", file=sys.stderr)


def _cmd_ingest_signum(args: argparse.Namespace) -> None:
    from .data.signum import ingest

    n, rejected = ingest(
        args.manifest,
        args.out,
        landmarks=args.landmarks,
        missing=args.missing_landmarks,
        skip_bad=args.skip_bad,
        rejected_out=args.rejected,
        dataset=args.dataset,
        n_signs=args.n_signs,
        n_signers=args.n_signers,
    )
    print(f"wrote {n} sequences to {args.out}; {len(rejected)} sample(s) rejected", file=sys.stderr)


def _cmd_synthetic_signum(args: argparse.Namespace) -> None:
    from .data.signum_synthetic import SignumSyntheticConfig, write_synthetic_signum

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SignumSyntheticConfig)}
    cfg = SignumSyntheticConfig(**{k: v for k, v in values.items() if v is not None})
    manifest = write_synthetic_signum(args.out_dir, cfg)
    print(f"wrote synthetic SIGNUM-format set to {manifest} ({cfg})", file=sys.stderr)


def _signum_parsers(sub, isub) -> None:
    """``ingest signum`` and ``synthetic-signum``."""
    from .data.signum import MISSING_POLICIES, N_SIGNERS, N_SIGNS, SUBSETS
    from .data.signum_synthetic import SignumSyntheticConfig

    sig = isub.add_parser("signum", help="a SIGNUM manifest of MediaPipe landmark .npy files")
    sig.add_argument("manifest", help="manifest (.csv/.parquet) or a folder holding one")
    sig.add_argument("out", help="output Parquet store")
    sig.add_argument(
        "--landmarks",
        choices=sorted(SUBSETS),
        default="both_hands",
        help="landmark subset to store (default both_hands: 42)",
    )
    sig.add_argument(
        "--missing-landmarks",
        choices=MISSING_POLICIES,
        default="reject",
        help="NaN (undetected) landmarks: refuse the sample, or store 0",
    )
    sig.add_argument("--dataset", default="signum", help="dataset name in the store")
    sig.add_argument("--n-signs", type=int, default=N_SIGNS, help="sign ids are 1..N")
    sig.add_argument("--n-signers", type=int, default=N_SIGNERS, help="signers are 1..N")
    sig.add_argument(
        "--skip-bad",
        action="store_true",
        help="write the good sequences and list rejected samples instead of failing",
    )
    sig.add_argument("--rejected", help="TSV of rejected samples (default OUT.rejected.tsv)")
    sig.set_defaults(func=_cmd_ingest_signum)

    syn = sub.add_parser("synthetic-signum", help="write synthetic data in the SIGNUM format")
    syn.add_argument("out_dir", help="output folder (manifest.csv + .npy files); must not exist")
    for f in dataclasses.fields(SignumSyntheticConfig):
        syn.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=type(f.default),
            default=None,
            help=f"(default: {f.default})",
        )
    syn.set_defaults(func=_cmd_synthetic_signum)


def _cmd_split(args: argparse.Namespace) -> None:
    from .data.splits import write_split

    protocol = {"train": args.train, "test": args.test}
    if args.val:
        protocol["val"] = args.val
    table = write_split(args.store, args.out, protocol)
    counts = table["split"].value_counts().to_dict()
    print(f"wrote {args.out}: {counts}", file=sys.stderr)


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


def _cmd_report(args: argparse.Namespace) -> None:
    from .report.page import DatasetEntry, build_report

    entries: dict[str, DatasetEntry] = {}
    for spec in args.dataset:
        name, _, path = spec.partition("=")
        if not path:
            raise InputError(spec, "expected --dataset NAME=STORE.parquet")
        entries[name] = DatasetEntry(name=name, store=Path(path))
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


def _cmd_tables(args: argparse.Namespace) -> None:
    from .report.tables import write_tables

    corrected = _keyed_paths(args.summary, "--summary")
    published = _keyed_paths(args.as_published, "--as-published") or None
    for path in write_tables(args.out_dir, corrected, published):
        print(f"wrote {path}", file=sys.stderr)


def _matrix_spec(args: argparse.Namespace):
    from .distances.shards import MatrixSpec

    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        try:
            params[key] = float(value)
        except ValueError:
            raise InputError(item, "expected --param NAME=NUMBER") from None
    return MatrixSpec(args.query, args.reference, args.metric, args.window, params)


def _cmd_distances_block(args: argparse.Namespace) -> None:
    from .distances.shards import compute_block

    spec = _matrix_spec(args)
    block = tuple(args.block)
    compute_block(args.store, args.split, args.out, spec, block, args.block_size, args.threads)
    print(f"wrote block {block} of {spec} to {args.out}", file=sys.stderr)


def _cmd_distances_assemble(args: argparse.Namespace) -> None:
    from .checksum import sha256_file
    from .distances.shards import assemble

    spec = _matrix_spec(args)
    matrix = assemble(
        args.split, args.blocks, args.out, spec, args.block_size, sha256_file(args.store)
    )
    print(f"wrote {matrix.shape} matrix to {args.out}", file=sys.stderr)


def _json_option(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(what, f"not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InputError(what, "expected a JSON object")
    return value


def _cmd_teacher(args: argparse.Namespace) -> None:
    from .atomic import write_text
    from .models.teacher import make_soft_labels

    params = _json_option(args.options, "--options")
    result = make_soft_labels(args.matrix, args.split, args.out, args.method, **params)
    write_text(args.diagnostics, json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}: LOO accuracy {result['accuracy']:.3f}", file=sys.stderr)


def _cmd_knn(args: argparse.Namespace) -> None:
    from .models.knn import run_knn

    result = run_knn(args.matrix, args.split, args.out, range(1, args.k_max + 1))
    acc = result["per_k"]["1"]["accuracy"]
    print(f"wrote {args.out}: 1-NN accuracy {acc:.3f}", file=sys.stderr)


def _cmd_knn_latency(args: argparse.Namespace) -> None:
    from .models.knn import knn_latency

    params = _json_option(args.options, "--options")
    result = knn_latency(
        args.store,
        args.split,
        args.out,
        metric=args.metric,
        n_queries=args.n_queries,
        n_jobs=args.threads,
        **params,
    )
    print(f"1-NN query: {result['ms_per_query']:.1f} ms", file=sys.stderr)


def _cmd_train(args: argparse.Namespace) -> None:
    from .models.runs import run_training
    from .models.student import StudentConfig
    from .models.train import TrainConfig

    options = _json_option(args.options, "--options")
    unknown = set(options) - {"train", "student"}
    if unknown:
        raise InputError("--options", f"unknown section(s) {sorted(unknown)}: use train, student")
    train_options = {**options.get("train", {}), "progress": False}
    if args.threads:
        train_options["num_threads"] = args.threads
    try:
        tcfg = TrainConfig(**train_options)
        scfg = StudentConfig(**options.get("student", {}))
    except TypeError as exc:
        raise InputError("--options", str(exc)) from exc
    result = run_training(
        args.store, args.split, args.soft_labels, args.out_dir, args.mode, args.seed, tcfg, scfg
    )
    acc = result["test"]["accuracy"]
    print(f"{args.mode} seed {args.seed}: test accuracy {acc:.3f}", file=sys.stderr)


def _cmd_summarize(args: argparse.Namespace) -> None:
    from .report.summary import summarize

    config = _json_option(args.config, "--config")
    summarize(
        args.out,
        knn=args.knn,
        teachers=args.teacher,
        runs=args.run,
        latency=args.latency,
        store=args.store,
        config=config,
        dataset=args.dataset,
        protocol=args.protocol,
        run_timings=args.run_timings,
        timings_out=args.timings_out,
    )


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _cmd_verify(args: argparse.Namespace) -> int:
    from .checksum import sidecar_path, verify_tree

    artifacts, damaged = verify_tree(*args.paths)
    for path, problem in damaged:
        print(f"geokd: error: {path}: {problem}", file=sys.stderr)
        if args.delete:
            for p in (path, sidecar_path(path)) if path.suffix != ".json" else (path,):
                p.unlink(missing_ok=True)
    action = "deleted (the workflow recomputes them)" if args.delete else "damaged"
    print(f"checked {len(artifacts)} artifact(s): {len(damaged)} {action}")
    return 2 if damaged and not args.delete else 0


def _matrix_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", default="test", help="query split (rows), default test")
    parser.add_argument("--reference", default="train", help="reference split (columns)")
    parser.add_argument("--metric", default="procrustes", help="frame cost (default procrustes)")
    parser.add_argument("--window", type=int, default=None, help="Sakoe-Chiba band (default off)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a metric parameter"
    )
    parser.add_argument(
        "--block-size", type=_positive_int, required=True, help="rows/columns per block (>= 1)"
    )


def _synthetic_options(parser: argparse.ArgumentParser) -> None:
    from .data.synthetic import SyntheticConfig

    for f in dataclasses.fields(SyntheticConfig):
        kind = type(f.default) if f.default is not dataclasses.MISSING else str
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            default=None,
            help=f"(default: {f.default})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geokd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"geokd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="convert a raw dataset into the sequence store")
    isub = ingest.add_subparsers(dest="source", required=True, metavar="SOURCE")
    utd = isub.add_parser("utd-mhad", help="a folder of UTD-MHAD aA_sS_tT_skeleton.mat files")
    utd.add_argument("raw_dir", help="folder with the .mat files")
    utd.add_argument("out", help="output Parquet store")
    utd.add_argument(
        "--skip-bad",
        action="store_true",
        help="write the good sequences and list rejected files instead of failing",
    )
    utd.add_argument("--rejected", help="TSV of rejected files (default OUT.rejected.tsv)")
    utd.add_argument(
        "--layout",
        choices=("natural", "reshape"),
        default="natural",
        help="natural frames (default), or the original code's reshape-scrambled frames "
        "padded to 125 (paper-notes defect 2; for 'as published' runs only)",
    )
    utd.set_defaults(func=_cmd_ingest_utd)
    syn = isub.add_parser("synthetic", help="generate the seeded synthetic skeleton dataset")
    syn.add_argument("out", help="output Parquet store")
    _synthetic_options(syn)
    syn.set_defaults(func=_cmd_ingest_synthetic)
    _signum_parsers(sub, isub)

    split = sub.add_parser("split", help="write the split table of a protocol")
    split.add_argument("store", help="Parquet sequence store")
    split.add_argument("out", help="output split table (TSV)")
    split.add_argument("--train", type=int, nargs="+", required=True, help="training subjects")
    split.add_argument("--test", type=int, nargs="+", required=True, help="test subjects")
    split.add_argument("--val", type=int, nargs="*", default=[], help="validation subjects")
    split.set_defaults(func=_cmd_split)

    dist = sub.add_parser("distances", help="Procrustes-DTW distance matrices in blocks")
    dsub = dist.add_subparsers(dest="action", required=True, metavar="ACTION")
    block = dsub.add_parser("block", help="compute one block of a distance matrix")
    block.add_argument("store", help="Parquet sequence store")
    block.add_argument("split", help="split table (TSV)")
    block.add_argument("out", help="output block (.npy, with a .npy.json sidecar)")
    block.add_argument("--block", type=int, nargs=2, required=True, metavar=("BI", "BJ"))
    block.add_argument("--threads", type=int, default=None, help="CPU threads (default all)")
    _matrix_options(block)
    block.set_defaults(func=_cmd_distances_block)
    asm = dsub.add_parser("assemble", help="check every block and write the full matrix")
    asm.add_argument("store", help="Parquet sequence store (its checksum goes in the sidecar)")
    asm.add_argument("split", help="split table (TSV)")
    asm.add_argument("out", help="output matrix (.npy, with a .npy.json sidecar)")
    asm.add_argument("blocks", nargs="+", help="the block files")
    _matrix_options(asm)
    asm.set_defaults(func=_cmd_distances_assemble)

    teacher = sub.add_parser("teacher", help="soft labels from the train x train matrix")
    teacher.add_argument("matrix", help="train x train distance matrix (.npy with sidecar)")
    teacher.add_argument("split", help="split table (TSV)")
    teacher.add_argument("out", help="output soft labels (Parquet)")
    teacher.add_argument("diagnostics", help="output diagnostics (JSON)")
    teacher.add_argument("--method", choices=["softmax", "nngk"], default="softmax")
    teacher.add_argument("--options", default="{}", help="method parameters as a JSON object")
    teacher.set_defaults(func=_cmd_teacher)

    knn = sub.add_parser("knn", help="KNN accuracy for k = 1..K on the test x train matrix")
    knn.add_argument("matrix", help="test x train distance matrix (.npy with sidecar)")
    knn.add_argument("split", help="split table (TSV)")
    knn.add_argument("out", help="output JSON")
    knn.add_argument("--k-max", type=_positive_int, default=30, help="largest k (default 30)")
    knn.set_defaults(func=_cmd_knn)

    lat = sub.add_parser("knn-latency", help="time exact Procrustes-DTW 1-NN test queries")
    lat.add_argument("store", help="Parquet sequence store")
    lat.add_argument("split", help="split table (TSV)")
    lat.add_argument("out", help="output JSON")
    lat.add_argument("--metric", default="procrustes")
    lat.add_argument("--n-queries", type=_positive_int, default=5, help="test queries to time")
    lat.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    lat.add_argument("--options", default="{}", help="metric parameters as a JSON object")
    lat.set_defaults(func=_cmd_knn_latency)

    train = sub.add_parser("train", help="train one student (transformer or distilled)")
    train.add_argument("store", help="Parquet sequence store")
    train.add_argument("split", help="split table (TSV)")
    train.add_argument("out_dir", help="output folder: model.pt, history.json, metrics.json")
    train.add_argument("--mode", choices=["transformer", "distilled"], default="transformer")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--soft-labels", help="teacher soft labels (Parquet), for distilled")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument(
        "--options", default="{}", help='JSON: {"train": {...TrainConfig}, "student": {...}}'
    )
    train.set_defaults(func=_cmd_train)

    summ = sub.add_parser("summarize", help="gather one dataset/protocol into summary.json")
    summ.add_argument("out", help="output summary (JSON)")
    summ.add_argument("--dataset", required=True)
    summ.add_argument("--protocol", required=True)
    summ.add_argument("--store", required=True, help="sequence store (its checksum)")
    summ.add_argument("--config", default="{}", help="the resolved config (JSON) to hash")
    for name in ("knn", "teacher", "run", "latency", "run-timings"):
        summ.add_argument(f"--{name}", nargs="*", default=[], help=f"{name} JSON files")
    summ.add_argument(
        "--timings-out", help="write the measured times here, not into the summary (JSON)"
    )
    summ.set_defaults(func=_cmd_summarize)

    verify = sub.add_parser(
        "verify", help="check every checksummed artifact (blocks, matrices, soft labels, models)"
    )
    verify.add_argument("paths", nargs="+", help="folders (searched recursively) or files")
    verify.add_argument(
        "--delete", action="store_true", help="delete damaged artifacts so the workflow redoes them"
    )
    verify.set_defaults(func=_cmd_verify)

    report = sub.add_parser("report", help="write the self-contained HTML report")
    report.add_argument("out", help="output HTML file")
    report.add_argument(
        "--dataset", action="append", default=[], metavar="NAME=STORE", help="a dataset store"
    )
    report.add_argument(
        "--split", action="append", default=[], metavar="NAME/PROTOCOL=TSV", help="a split table"
    )
    report.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="NAME/PROTOCOL=DIR",
        help="results folder of a protocol (matrices, teacher, KNN, models, summary)",
    )
    report.add_argument("--benchmarks", help="Snakemake benchmark folder (run facts)")
    report.add_argument("--figures", help="also save every figure as PNG and PDF here")
    report.set_defaults(func=_cmd_report)

    tables = sub.add_parser("tables", help="the paper's tables as CSV and LaTeX")
    tables.add_argument("out_dir", help="output folder")
    tables.add_argument(
        "--summary",
        action="append",
        default=[],
        metavar="NAME/PROTOCOL=JSON",
        help="summary.json of our corrected pipeline",
    )
    tables.add_argument(
        "--as-published",
        action="append",
        default=[],
        metavar="NAME/PROTOCOL=JSON",
        help="summary.json of the run in the original's settings",
    )
    tables.set_defaults(func=_cmd_tables)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except (InputError, ValueError) as exc:
        print(f"geokd: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment: disk full, read-only or missing folder, ...
        where = exc.filename if exc.filename is not None else "I/O"
        print(f"geokd: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return rc or 0


if __name__ == "__main__":
    raise SystemExit(main())
