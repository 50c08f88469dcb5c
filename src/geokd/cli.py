"""The ``geokd`` command line: one subcommand per pipeline step (the steps: :mod:`geokd.commands`).

Every subcommand validates its input, writes its outputs atomically, and on bad input prints
one line ``geokd: error: <file or setting>: <problem>`` to stderr and exits with status 2.
Settings come the same way to every step: ``--settings FILE`` (the workflow writes each job's
slice of the config there, :mod:`geokd.settings`), and any explicit option overrides it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from . import __version__, cli_sources, commands, jobs, lifeline
from .errors import InputError
from .models.config import MODES


def _default(job: type, name: str, **context) -> str:
    """A job setting's default, for the help text (the dataclasses hold the only defaults)."""
    value = getattr(job.defaults(**context), name)
    return "off" if value is None else str(value)


SETTINGS_HELP = "JSON file of this step's settings (the workflow writes one per job)"


def _settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", metavar="FILE", help=SETTINGS_HELP)


def _positive_int(text: str, low: int = 1) -> int:
    """An argparse type: an integer >= 1 (>= ``low``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def _frames_option(parser: argparse.ArgumentParser, job: type) -> None:
    tip = f"resample sequences to this many frames before DTW (default {_default(job, 'frames')})"
    parser.add_argument("--frames", type=lambda text: _positive_int(text, 2), help=tip)


def _member(text: str) -> int | str:  # a subject (camera, setup) number or a pyskl split name
    return int(text) if text.strip().lstrip("+-").isdigit() else text


def _duplicates_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-duplicates",
        action="store_true",
        default=None,
        help="keep one recording stored under two names or labels (same SHA-256)",
    )


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
        default=None,
        help="landmark subset to store (default "
        f"{_default(jobs.IngestJob, 'landmarks', source='signum')})",
    )
    sig.add_argument(
        "--missing-landmarks",
        choices=MISSING_POLICIES,
        default=None,
        help="NaN (undetected) landmarks: refuse the sample, or store 0 (default "
        f"{_default(jobs.IngestJob, 'missing_landmarks', source='signum')})",
    )
    sig.add_argument("--dataset", help="dataset name in the store (default signum)")
    sig.add_argument("--n-signs", type=int, help=f"sign ids are 1..N (default {N_SIGNS})")
    sig.add_argument("--n-signers", type=int, help=f"signers are 1..N (default {N_SIGNERS})")
    sig.add_argument(
        "--skip-bad",
        action="store_true",
        default=None,  # unset: the --settings file's skip_bad decides
        help="write the good sequences and list rejected samples instead of failing",
    )
    _duplicates_option(sig)
    sig.add_argument(
        "--allow-outside-paths",
        action="store_true",
        default=None,
        help="read manifest paths outside the manifest's folder (absolute or with ..)",
    )
    sig.add_argument("--rejected", help="TSV of rejected samples (default OUT.rejected.tsv)")
    _settings_option(sig)
    sig.set_defaults(func=commands.ingest_signum)

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
    _settings_option(syn)
    syn.set_defaults(func=commands.synthetic_signum)


def _matrix_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", default="test", help="query split (rows), default test")
    parser.add_argument("--reference", default="train", help="reference split (columns)")
    parser.add_argument(
        "--metric", help=f"frame cost (default {_default(jobs.DistanceJob, 'metric')})"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help=f"Sakoe-Chiba band (default {_default(jobs.DistanceJob, 'window')})",
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a metric parameter"
    )
    parser.add_argument(
        "--block-size",
        type=_positive_int,
        help=f"rows/columns per block (default {_default(jobs.DistanceJob, 'block_size')})",
    )
    parser.add_argument(
        "--precision",
        choices=("float64", "float32"),
        help=f"precision of the frame costs (default {_default(jobs.DistanceJob, 'precision')})",
    )
    _frames_option(parser, jobs.DistanceJob)
    _settings_option(parser)


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
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-v", "--verbose", action="store_true", help="log details too (DEBUG); default INFO"
    )
    loud.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="convert a raw dataset into the sequence store")
    isub = ingest.add_subparsers(dest="source", required=True, metavar="SOURCE")
    utd = isub.add_parser("utd-mhad", help="a folder of UTD-MHAD aA_sS_tT_skeleton.mat files")
    utd.add_argument("raw_dir", help="folder with the .mat files")
    utd.add_argument("out", help="output Parquet store")
    utd.add_argument(
        "--skip-bad",
        action="store_true",
        default=None,  # unset: the --settings file's skip_bad decides
        help="write the good sequences and list rejected files instead of failing",
    )
    _duplicates_option(utd)
    utd.add_argument("--rejected", help="TSV of rejected files (default OUT.rejected.tsv)")
    utd.add_argument(
        "--layout",
        choices=("natural", "reshape"),
        default=None,
        help="natural frames, or the original code's reshape-scrambled frames padded to 125 "
        "(paper-notes defect 2; for 'as published' runs only; default "
        f"{_default(jobs.IngestJob, 'layout', source='utd_mhad')})",
    )
    _settings_option(utd)
    utd.set_defaults(func=commands.ingest_utd)
    syn = isub.add_parser("synthetic", help="generate the seeded synthetic skeleton dataset")
    syn.add_argument("out", help="output Parquet store")
    _synthetic_options(syn)
    _settings_option(syn)
    syn.set_defaults(func=commands.ingest_synthetic)
    _signum_parsers(sub, isub)
    cli_sources.add_parsers(sub, isub)  # ingest ntu, ingest pyskl, synthetic-ntu

    split = sub.add_parser("split", help="write the split table of a protocol")
    split.add_argument("store", help="Parquet sequence store")
    split.add_argument("out", help="output split table (TSV)")
    split.add_argument("--train", type=_member, nargs="+", help="training subjects")
    split.add_argument("--test", type=_member, nargs="+", help="test subjects")
    split.add_argument("--val", type=_member, nargs="*", default=[], help="validation subjects")
    split.add_argument(
        "--by",
        choices=("subject", "camera", "setup", "split"),
        help="what the lists name: subjects (default), NTU cameras or setups, pyskl split names",
    )
    _settings_option(split)
    split.set_defaults(func=commands.split)

    dist = sub.add_parser("distances", help="Procrustes-DTW distance matrices in blocks")
    dsub = dist.add_subparsers(dest="action", required=True, metavar="ACTION")
    block = dsub.add_parser("block", help="compute one block of a distance matrix")
    block.add_argument("store", help="Parquet sequence store")
    block.add_argument("split", help="split table (TSV)")
    block.add_argument("out", help="output block (.npy, with a .npy.json sidecar)")
    block.add_argument("--block", type=int, nargs=2, required=True, metavar=("BI", "BJ"))
    block.add_argument("--threads", type=int, default=None, help="CPU threads (default all)")
    block.add_argument(
        "--backend",
        choices=("cpu", "torch", "cuda", "auto"),
        help=f"distance kernel (default {_default(jobs.DistanceJob, 'backend')}; auto: cuda "
        "where a GPU is visible)",
    )
    _matrix_options(block)
    block.set_defaults(func=commands.distances_block)
    asm = dsub.add_parser("assemble", help="check every block and write the full matrix")
    asm.add_argument("store", help="Parquet sequence store (its checksum goes in the sidecar)")
    asm.add_argument("split", help="split table (TSV)")
    asm.add_argument("out", help="output matrix (.npy, with a .npy.json sidecar)")
    asm.add_argument("blocks", nargs="+", help="the block files")
    _matrix_options(asm)
    asm.set_defaults(func=commands.distances_assemble)

    teacher = sub.add_parser("teacher", help="soft labels from the train x train matrix")
    teacher.add_argument("matrix", help="train x train distance matrix (.npy with sidecar)")
    teacher.add_argument("split", help="split table (TSV)")
    teacher.add_argument("out", help="output soft labels (Parquet)")
    teacher.add_argument("diagnostics", help="output diagnostics (JSON)")
    teacher.add_argument(
        "--method",
        choices=["softmax", "nngk"],
        help=f"soft-label method (default {_default(jobs.TeacherJob, 'method')}); its "
        "parameters come from --settings or the config's defaults",
    )
    teacher.add_argument("--store", help="sequence store: frame counts for distances.normalise")
    _settings_option(teacher)
    teacher.set_defaults(func=commands.teacher)

    knn = sub.add_parser("knn", help="KNN accuracy for k = 1..K on the test x train matrix")
    knn.add_argument("matrix", help="test x train distance matrix (.npy with sidecar)")
    knn.add_argument("split", help="split table (TSV)")
    knn.add_argument("out", help="output JSON")
    knn.add_argument(
        "--k-max", type=_positive_int, help=f"largest k (default {_default(jobs.KnnJob, 'k_max')})"
    )
    knn.add_argument("--store", help="sequence store: frame counts for distances.normalise")
    _settings_option(knn)
    knn.set_defaults(func=commands.knn)

    lat = sub.add_parser("knn-latency", help="time exact Procrustes-DTW 1-NN test queries")
    lat.add_argument("store", help="Parquet sequence store")
    lat.add_argument("split", help="split table (TSV)")
    lat.add_argument("out", help="output JSON")
    lat.add_argument(
        "--metric", help=f"frame cost (default {_default(jobs.KnnLatencyJob, 'metric')})"
    )
    lat.add_argument(
        "--n-queries",
        type=_positive_int,
        help=f"test queries to time (default {_default(jobs.KnnLatencyJob, 'n_queries')})",
    )
    lat.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    _frames_option(lat, jobs.KnnLatencyJob)
    _settings_option(lat)
    lat.set_defaults(func=commands.knn_latency)

    train = sub.add_parser(
        "train",
        help="train one student per seed (several seeds: at once, as one batched model)",
    )
    train.add_argument("store", help="Parquet sequence store")
    train.add_argument("split", help="split table (TSV)")
    train.add_argument(
        "out_dir",
        nargs="+",
        help="output folder per seed (model.pt, history.json, metrics.json, timings.json)",
    )
    train.add_argument("--mode", choices=MODES, default="transformer", help="model family")
    train.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="seed(s), one per output folder"
    )
    train.add_argument("--soft-labels", help="teacher soft labels (Parquet), for distilled")
    train.add_argument("--distances", help="train x train distance matrix (.npy), for metric")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument(
        "--settings", metavar="FILE", help='JSON: {"train": {TrainConfig}, "student": {...}}'
    )
    train.set_defaults(func=commands.train)

    brun = sub.add_parser(
        "budget-run", help="the label-budget study: every arm for one labelled subset"
    )
    brun.add_argument("store", help="Parquet sequence store")
    brun.add_argument("split", help="split table (TSV)")
    brun.add_argument("train_matrix", help="train x train distance matrix (the teacher's)")
    brun.add_argument("test_matrix", help="test x train distance matrix (exact 1-NN)")
    brun.add_argument("out", help="output JSON: one row per arm and seed")
    brun.add_argument("--subset", required=True, help="labelled training subjects, e.g. s1-3")
    brun.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    _settings_option(brun)
    brun.set_defaults(func=commands.budget_run)

    bsum = sub.add_parser("budget-summary", help="aggregate the label-budget study (bootstrap)")
    bsum.add_argument("out", help="output JSON")
    bsum.add_argument("subset_results", nargs="+", help="the subsets' JSON (budget-run)")
    bsum.add_argument("--dataset", required=True)
    bsum.add_argument("--protocol", required=True)
    bsum.add_argument("--train-subjects", type=int, nargs="+", required=True)
    bsum.add_argument(
        "--full-run", action="append", metavar="ARM=METRICS", help="full-label reference run"
    )
    bsum.add_argument("--full-knn", help="the full-label run's KNN JSON")
    bsum.set_defaults(func=commands.budget_summary)

    ens = sub.add_parser("ensemble", help="evaluate a seed ensemble of trained students")
    ens.add_argument("store", help="Parquet sequence store")
    ens.add_argument("split", help="split table (TSV)")
    ens.add_argument("out_dir", help="output folder: metrics.json, timings.json")
    ens.add_argument("checkpoints", nargs="+", help="the members' model.pt files")
    ens.add_argument("--name", required=True, help="the ensemble's model name")
    ens.set_defaults(func=commands.ensemble)

    pred = sub.add_parser("predict", help="apply a trained student to new sequences (CSV)")
    pred.add_argument("checkpoint", help="a student's model.pt (with its model.pt.json)")
    pred.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a sequence store (.parquet), a folder of UTD-MHAD .mat files, or a SIGNUM "
        "manifest (or its folder)",
    )
    pred.add_argument("--out", required=True, help="output CSV")
    pred.add_argument("--batch-size", type=_positive_int, help="default: the checkpoint's")
    pred.set_defaults(func=commands.predict)

    exp = sub.add_parser("export", help="export a student to ONNX or TorchScript")
    exp.add_argument("checkpoint", help="a student's model.pt (with its model.pt.json)")
    exp.add_argument("out", help="output file (its metadata goes to OUT.json)")
    exp.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    exp.set_defaults(func=commands.export)

    summ = sub.add_parser("summarize", help="gather one dataset/protocol into summary.json")
    summ.add_argument("out", help="output summary (JSON)")
    summ.add_argument("--dataset", required=True)
    summ.add_argument("--protocol", required=True)
    summ.add_argument("--store", required=True, help="sequence store (its checksum)")
    summ.add_argument("--settings", metavar="FILE", help="the resolved settings (hashed)")
    for name in ("knn", "teacher", "run", "latency", "run-timings"):
        summ.add_argument(f"--{name}", nargs="*", default=[], help=f"{name} JSON files")
    summ.add_argument(
        "--timings-out", help="write the measured times here, not into the summary (JSON)"
    )
    summ.add_argument(
        "--speed",
        metavar="SPLIT",
        help="the protocol's split table: time the student (PyTorch eager and ONNX) and exact "
        "1-NN again on its test sequences, one thread each, into the timings (give this job "
        "the machine to itself)",
    )
    summ.add_argument(
        "--check",
        nargs="*",
        default=[],
        metavar="ARTIFACT",
        help="checksummed artifacts the results stand on (model.pt, soft labels): each must "
        "match its .json sidecar, else nothing is written",
    )
    summ.set_defaults(func=commands.summarize)

    dvc = sub.add_parser("dvc-metrics", help="the flat metrics and training curves DVC reads")
    dvc.add_argument("summary", help="a protocol's summary.json")
    dvc.add_argument("metrics_out", help="output: flat metrics (JSON)")
    dvc.add_argument("curves_out", help="output: training curves, one row per epoch (JSON)")
    dvc.add_argument(
        "histories", nargs="*", metavar="MODEL=HISTORY", help="the runs' history.json files"
    )
    dvc.set_defaults(func=commands.dvc_metrics)

    dvcy = sub.add_parser(
        "dvc-yaml", help="write the DVC pipeline (dvc.yaml) of a config: stages per dataset"
    )
    dvcy.add_argument("config", help="the workflow config, relative to the project root")
    dvcy.add_argument("--out", default="dvc.yaml", help="output (default: dvc.yaml)")
    dvcy.set_defaults(func=commands.dvc_yaml)

    verify = sub.add_parser(
        "verify", help="check every checksummed artifact (blocks, matrices, soft labels, models)"
    )
    verify.add_argument("paths", nargs="+", help="folders (searched recursively) or files")
    verify.add_argument(
        "--delete", action="store_true", help="delete damaged artifacts so the workflow redoes them"
    )
    verify.set_defaults(func=commands.verify)

    report = sub.add_parser("report", help="write the self-contained HTML report")
    report.add_argument("out", help="output HTML file")
    report.add_argument(
        "--dataset", action="append", default=[], metavar="NAME=STORE", help="a dataset store"
    )
    report.add_argument(
        "--split", action="append", default=[], metavar="NAME/PROTOCOL=TSV", help="a split table"
    )
    report.add_argument(
        "--as-published-of",
        action="append",
        default=[],
        metavar="NAME=OTHER",
        help="dataset NAME is the 'as published' run of dataset OTHER (the config's "
        "as_published_of): it fills OTHER's 'as published' row of the headline tables",
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
    report.set_defaults(func=commands.report)

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
    tables.set_defaults(func=commands.tables)
    return parser


def setup_logging(level: int) -> None:
    """Log records of the ``geokd`` loggers (training epochs, distance blocks, ...) as
    ``geokd: <message>`` lines on stderr, the job's log in the workflow (standard logging)."""
    logger = logging.getLogger("geokd")
    if not any(getattr(h, "_geokd", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("geokd: %(message)s"))
        handler._geokd = True
        logger.addHandler(handler)
    for h in logger.handlers:
        if getattr(h, "_geokd", False):
            h.stream = sys.stderr  # the current stderr (tests capture it)
    logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the geokd command (not a call from Python): die with the parent
        lifeline.arm()
    args = build_parser().parse_args(argv)
    setup_logging(
        logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    )
    try:
        rc = args.func(args)
    except lifeline.OrphanedError as exc:  # its job is gone: nothing was written
        print(f"geokd: error: {exc}", file=sys.stderr)
        return 1
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
