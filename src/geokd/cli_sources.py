"""The ``geokd`` subcommands of the two-person skeleton sources (issue 26), added to the parser
by :func:`geokd.cli.build_parser`: ``ingest ntu`` (NTU RGB+D ``.skeleton`` files), ``ingest
pyskl`` (a pyskl annotation pickle) and ``synthetic-ntu`` (a synthetic NTU-format folder).
Kept out of :mod:`geokd.cli` so that module stays readable; the options follow its
conventions (unset options are None, so the ``--settings`` file decides; defaults shown from
the job dataclasses)."""

from __future__ import annotations

import dataclasses

from . import commands, jobs

SOURCES = (
    ("ntu", "a folder of NTU RGB+D SsssCcccPpppRrrrAaaa.skeleton files", "raw_dir",
     "folder with the .skeleton files", commands.ingest_ntu),
    ("pyskl", "a pyskl annotation pickle (split + annotations)", "annotations",
     "the .pkl file (read safely: plain containers and NumPy arrays only)",
     commands.ingest_pyskl),
)  # fmt: skip


def add_parsers(sub, isub) -> None:
    """``ingest ntu`` and ``ingest pyskl`` under ``isub`` (``geokd ingest``'s subparsers),
    ``synthetic-ntu`` under ``sub`` (the top level)."""
    from .data.ntu_synthetic import NtuSyntheticConfig

    for source, what, raw, raw_help, func in SOURCES:
        p = isub.add_parser(source, help=what)
        p.add_argument(raw, help=raw_help)
        p.add_argument("out", help="output Parquet store")
        bodies = jobs.IngestJob.defaults(source=source).bodies
        p.add_argument(
            "--bodies",
            type=int,
            choices=(1, 2),
            default=None,
            help="bodies per frame: 1 = the most active, 2 = the two most active (the other "
            f"repeated where one is missing; default {bodies})",
        )
        p.add_argument("--dataset", help=f"dataset name in the store (default {source})")
        p.add_argument(
            "--skip-bad",
            action="store_true",
            default=None,  # unset: the --settings file's skip_bad decides
            help="write the good sequences and list rejected ones instead of failing",
        )
        p.add_argument(
            "--allow-duplicates",
            action="store_true",
            default=None,
            help="keep one recording stored under two names or labels (same SHA-256)",
        )
        p.add_argument(
            "--rejected", help="TSV of rejected samples (default OUT.rejected.tsv; always written)"
        )
        _settings(p)
        p.set_defaults(func=func)

    syn = sub.add_parser("synthetic-ntu", help="write synthetic data in the NTU .skeleton format")
    syn.add_argument("out_dir", help="output folder (.skeleton files); must not exist")
    for f in dataclasses.fields(NtuSyntheticConfig):
        syn.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=type(f.default),
            default=None,
            help=f"(default: {f.default})",
        )
    _settings(syn)
    syn.set_defaults(func=commands.synthetic_ntu)


def _settings(parser) -> None:
    parser.add_argument(
        "--settings",
        metavar="FILE",
        help="JSON file of this step's settings (the workflow writes one per job)",
    )
