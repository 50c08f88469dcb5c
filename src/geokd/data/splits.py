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

from ..atomic import write_text
from ..errors import InputError
from .store import load_sequences

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
    """Write the split table of the store under ``protocol`` as TSV, atomically.

    The whole store is loaded, so a store that breaks the data contract (non-finite values,
    empty sequences, mismatched landmark counts, ...) is refused here, at the first step.
    """
    try:
        table = assign_splits(load_sequences(store)[1], protocol)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(store, str(exc)) from exc
    write_text(out, table.to_csv(sep="\t", index=False, lineterminator="\n"))
    return table


def read_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split table written by :func:`write_split`.

    Raises :class:`InputError` naming the file when it is missing or not a split table:
    unparsable, missing columns, empty or duplicate ``sequence_id``, a ``label`` that is not
    a class index >= 0 (an unknown label), or a ``split`` other than train, val, test.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype={"sequence_id": str, "split": str})
    except FileNotFoundError as exc:
        raise InputError(path, "split table not found") from exc
    except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
        raise InputError(path, f"not a readable split table ({type(exc).__name__}: {exc})") from exc
    missing = {"sequence_id", "label", "subject", "split"} - set(table.columns)
    if missing:
        raise InputError(path, f"not a split table (missing columns {sorted(missing)})")
    if table["sequence_id"].isna().any() or table["sequence_id"].duplicated().any():
        raise InputError(path, "empty or duplicate sequence_id values")
    label = pd.to_numeric(table["label"], errors="coerce")
    bad = table.index[label.isna() | (label < 0) | (label % 1 != 0)]
    if len(bad):
        row = bad[0]
        raise InputError(
            path, f"sequence {table['sequence_id'][row]}: unknown label {table['label'][row]!r}"
        )
    table["label"] = label.astype("int64")
    other = sorted(set(table["split"].astype(str)) - set(SPLITS))
    if other:
        raise InputError(path, f"unknown split name(s) {other}; expected {SPLITS}")
    return table
