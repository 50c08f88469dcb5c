"""The one JSON format of every file geokd writes: sorted keys, indent 1, a final newline."""

from __future__ import annotations

import json
import os

from .atomic import write_text


def json_text(obj) -> str:
    """``obj`` as geokd writes JSON (deterministic: the same object gives the same bytes)."""
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` to ``path`` in :func:`json_text`'s format, atomically."""
    write_text(path, json_text(obj))
