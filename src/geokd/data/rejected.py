"""The table of rejected raw files, shared by every reader (``<store>.rejected.tsv``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text


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
