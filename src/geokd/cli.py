"""The ``geokd`` command line: one subcommand per pipeline step.

Every subcommand validates its input, writes its outputs atomically, and on bad input prints
one line ``geokd: error: <file>: <problem>`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import __version__
from .errors import InputError


def _cmd_ingest_utd(args: argparse.Namespace) -> None:
    from .utd_mhad import ingest

    n, rejected = ingest(args.raw_dir, args.out, skip_bad=args.skip_bad, rejected_out=args.rejected)
    print(f"wrote {n} sequences to {args.out}; {len(rejected)} file(s) rejected", file=sys.stderr)


def _cmd_ingest_synthetic(args: argparse.Namespace) -> None:
    from .synthetic import SyntheticConfig, write_synthetic

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticConfig)}
    cfg = SyntheticConfig(**{k: v for k, v in values.items() if v is not None})
    write_synthetic(args.out, cfg)
    print(f"wrote synthetic dataset to {args.out} ({cfg})", file=sys.stderr)


def _cmd_split(args: argparse.Namespace) -> None:
    from .splits import write_split

    protocol = {"train": args.train, "test": args.test}
    if args.val:
        protocol["val"] = args.val
    table = write_split(args.store, args.out, protocol)
    counts = table["split"].value_counts().to_dict()
    print(f"wrote {args.out}: {counts}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    from .report import DatasetEntry, build_report

    entries: dict[str, DatasetEntry] = {}
    for spec in args.dataset:
        name, _, path = spec.partition("=")
        if not path:
            raise InputError(spec, "expected --dataset NAME=STORE.parquet")
        entries[name] = DatasetEntry(name=name, store=Path(path), splits={})
    for spec in args.split:
        key, _, path = spec.partition("=")
        name, _, protocol = key.partition("/")
        if not path or not protocol or name not in entries:
            raise InputError(spec, "expected --split DATASET/PROTOCOL=SPLIT.tsv for a --dataset")
        entries[name].splits[protocol] = Path(path)
    build_report(args.out, list(entries.values()))


def _matrix_spec(args: argparse.Namespace):
    from .shards import MatrixSpec

    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        try:
            params[key] = float(value)
        except ValueError:
            raise InputError(item, "expected --param NAME=NUMBER") from None
    return MatrixSpec(args.query, args.reference, args.metric, args.window, params)


def _cmd_distances_block(args: argparse.Namespace) -> None:
    from .shards import compute_block

    spec = _matrix_spec(args)
    block = tuple(args.block)
    compute_block(args.store, args.split, args.out, spec, block, args.block_size, args.threads)
    print(f"wrote block {block} of {spec} to {args.out}", file=sys.stderr)


def _cmd_distances_assemble(args: argparse.Namespace) -> None:
    from .checksum import sha256_file
    from .shards import assemble

    spec = _matrix_spec(args)
    matrix = assemble(
        args.split, args.blocks, args.out, spec, args.block_size, sha256_file(args.store)
    )
    print(f"wrote {matrix.shape} matrix to {args.out}", file=sys.stderr)


def _matrix_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", default="test", help="query split (rows), default test")
    parser.add_argument("--reference", default="train", help="reference split (columns)")
    parser.add_argument("--metric", default="procrustes", help="frame cost (default procrustes)")
    parser.add_argument("--window", type=int, default=None, help="Sakoe-Chiba band (default off)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a metric parameter"
    )
    parser.add_argument("--block-size", type=int, required=True, help="rows/columns per block")


def _synthetic_options(parser: argparse.ArgumentParser) -> None:
    from .synthetic import SyntheticConfig

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
    utd.set_defaults(func=_cmd_ingest_utd)
    syn = isub.add_parser("synthetic", help="generate the seeded synthetic skeleton dataset")
    syn.add_argument("out", help="output Parquet store")
    _synthetic_options(syn)
    syn.set_defaults(func=_cmd_ingest_synthetic)

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

    report = sub.add_parser("report", help="write the self-contained HTML report")
    report.add_argument("out", help="output HTML file")
    report.add_argument(
        "--dataset", action="append", default=[], metavar="NAME=STORE", help="a dataset store"
    )
    report.add_argument(
        "--split", action="append", default=[], metavar="NAME/PROTOCOL=TSV", help="a split table"
    )
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (InputError, ValueError) as exc:
        print(f"geokd: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
