"""Protocols: named subject splits, written as one split table per protocol.

A protocol maps ``train``, ``test`` and optionally ``val`` to lists of subject numbers, or,
with ``by`` (:data:`BY`), of another key of the store's rows: ``camera`` or ``setup`` numbers
(NTU RGB+D's cross-view and cross-setup protocols; the store's optional columns of those
names) or pyskl ``split`` names (a sequence belongs to the split whose names include one it is
listed in, the store's ``splits`` column). The split table (TSV) has one row per sequence of
the store that the protocol uses: ``sequence_id, label, subject, trial, split`` with split in
{train, val, test} (``subject`` stays the subject, whatever ``by`` is). Sequences the
protocol does not name are left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from ..atomic import write_text
from ..errors import InputError
from .store import load_sequences

SPLITS = ("train", "val", "test")
#: what a protocol's lists name: subjects (the default), NTU cameras or setups, pyskl splits
BY = ("subject", "camera", "setup", "split")


def assign_splits(meta: pd.DataFrame, protocol: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """The split table of ``meta`` under ``protocol`` (subjects per split, or what its ``by``
    names: see the module docstring).

    Raises ``ValueError`` when a subject (camera, setup, split name) is in two splits, ``by``
    names a column the store lacks, a sequence falls in two splits, ``train`` or ``test`` is
    missing or names nothing of the data.
    """
    protocol = dict(protocol)
    by = protocol.pop("by", None) or "subject"
    if by not in BY:
        raise ValueError(f"unknown protocol key by: {by!r}; expected one of {BY}")
    unknown = set(protocol) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split name(s) {sorted(unknown)}; expected {SPLITS}")
    column = "splits" if by == "split" else by
    if column not in meta.columns:
        raise ValueError(
            f"the protocol splits by {by}, but the store has no {column!r} column (NTU RGB+D "
            "stores have camera and setup, pyskl stores splits)"
        )
    owner: dict = {}
    for split in SPLITS:
        for s in protocol.get(split, []) or []:
            s = str(s) if by == "split" else int(s)
            if s in owner:
                raise ValueError(f"{by} {s} is in both '{owner[s]}' and '{split}'")
            owner[s] = split
    table = meta[["sequence_id", "label", "subject", "trial"]].copy()
    if by == "split":
        table["split"] = _split_of(meta, owner)
    else:
        table["split"] = meta[column].map(owner)
    table = table[table["split"].notna()].reset_index(drop=True)
    for split in ("train", "test"):
        if not (table["split"] == split).any():
            what = "subjects" if by == "subject" else by
            raise ValueError(f"split '{split}' has no sequences ({what} {protocol.get(split)})")
    return table


def _split_of(meta: pd.DataFrame, owner: dict[str, str]) -> list[str | None]:
    """Each row's split under a ``by: split`` protocol (``owner``: pyskl split name -> split)
    from the comma-separated names in ``meta["splits"]``."""
    listed = [
        [] if not isinstance(v, str) or not v else v.split(",") for v in meta["splits"].tolist()
    ]
    known = {name for names in listed for name in names}
    if missing := sorted(set(owner) - known):
        raise ValueError(f"pyskl split(s) {missing} not in the store (it has {sorted(known)})")
    out: list[str | None] = []
    for sid, names in zip(meta["sequence_id"], listed, strict=True):
        mine = {owner[n] for n in names if n in owner}
        if len(mine) > 1:
            raise ValueError(
                f"sequence {sid} is listed in pyskl splits {sorted(n for n in names if n in owner)}"
                f", which the protocol puts in {sorted(mine)}"
            )
        out.append(mine.pop() if mine else None)
    return out


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
