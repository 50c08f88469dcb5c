"""Protocols: named subject splits, written as one split table per protocol.

A protocol maps ``train``, ``test`` and optionally ``val`` to lists of subject numbers.
The split table (TSV) has one row per sequence of the store that the protocol uses:
``sequence_id, label, subject, trial, split`` with split in {train, val, test}.
Sequences of subjects the protocol does not name are left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from .atomic import write_text
from .errors import InputError
from .store import load_meta

SPLITS = ("train", "val", "test")


def assign_splits(meta: pd.DataFrame, protocol: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """The split table of ``meta`` under ``protocol`` (subjects per split).

    Raises ``ValueError`` when a subject is in two splits, ``train`` or ``test`` is
    missing or names no subject of the data.
    """
    unknown = set(protocol) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split name(s) {sorted(unknown)}; expected {SPLITS}")
    owner: dict[int, str] = {}
    for split in SPLITS:
        for s in protocol.get(split, []) or []:
            if s in owner:
                raise ValueError(f"subject {s} is in both '{owner[s]}' and '{split}'")
            owner[int(s)] = split
    table = meta[["sequence_id", "label", "subject", "trial"]].copy()
    table["split"] = table["subject"].map(owner)
    table = table[table["split"].notna()].reset_index(drop=True)
    for split in ("train", "test"):
        if not (table["split"] == split).any():
            raise ValueError(f"split '{split}' has no sequences (subjects {protocol.get(split)})")
    return table


def write_split(
    store: str | os.PathLike, out: str | os.PathLike, protocol: Mapping[str, Sequence[int]]
) -> pd.DataFrame:
    """Write the split table of the store under ``protocol`` as TSV, atomically."""
    try:
        table = assign_splits(load_meta(store), protocol)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(store, str(exc)) from exc
    write_text(out, table.to_csv(sep="\t", index=False, lineterminator="\n"))
    return table


def read_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split table written by :func:`write_split`."""
    table = pd.read_csv(path, sep="\t", dtype={"sequence_id": str, "split": str})
    missing = {"sequence_id", "label", "subject", "split"} - set(table.columns)
    if missing:
        raise InputError(path, f"not a split table (missing columns {sorted(missing)})")
    return table
