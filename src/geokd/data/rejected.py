"""What every raw reader shares: the table of rejected raw files (``<store>.rejected.tsv``),
the check that a raw entry is a readable file (broken symlinks named), and the check that no
recording is ingested twice (same SHA-256 under two names or labels)."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..errors import InputError


@dataclass
class Rejected:
    """A raw file (or manifest row) that could not be read, and why."""

    source: str
    reason: str


def write_rejected(
    out: str | os.PathLike, rejected: list[Rejected], path: str | os.PathLike | None = None
) -> Path:
    """Write ``rejected`` as TSV (``source``, ``reason``) to ``path`` (default
    ``<out>.rejected.tsv``, beside the store ``out``), atomically; returns the path."""
    path = Path(path) if path else Path(f"{out}.rejected.tsv")
    lines = ["source\treason"] + [f"{r.source}\t{r.reason}" for r in rejected]
    write_text(path, "\n".join(lines) + "\n")
    return path


def check_raw_file(path: Path, missing: str = "does not exist") -> None:
    """:class:`InputError` naming ``path`` unless it is (a link to) a regular file.

    A dangling symlink and a symlink loop are named as such (with the link's target), so a
    raw file that a link no longer reaches is reported, never skipped; ``missing`` is the
    problem of a path that does not exist at all.
    """
    try:
        st = path.stat()
    except OSError as exc:
        if path.is_symlink():
            target = os.readlink(path)
            if exc.errno == errno.ELOOP:
                raise InputError(path, f"symlink loop (-> {target})") from None
            raise InputError(
                path, f"dangling symlink: its target {target} does not exist"
            ) from None
        if exc.errno == errno.ENOENT:
            raise InputError(path, missing) from None
        raise InputError(path, f"unreadable ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, "not a regular file")


def check_duplicate_recordings(meta: pd.DataFrame, root: Path, allow: bool = False) -> None:
    """:class:`InputError` when two rows of ``meta`` hold the same recording (the same
    ``sha256`` of the raw file) under two ids, naming both; ``allow`` keeps them
    (``ingest: {allow_duplicates: true}``). ``root``: the folder ``source`` is relative to."""
    if allow or meta.empty:
        return
    dup = meta["sha256"].duplicated(keep=False)
    if not dup.any():
        return
    first = meta.loc[dup, "sha256"].iloc[0]
    a, b = meta[meta["sha256"] == first].iloc[:2].to_dict("records")
    raise InputError(
        root / b["source"],
        f"the same recording as {a['source']}: sequences {a['sequence_id']} and "
        f"{b['sequence_id']} have the same SHA-256 (one recording under two names or labels); "
        "set ingest: {allow_duplicates: true} (--allow-duplicates) to keep both",
    )
