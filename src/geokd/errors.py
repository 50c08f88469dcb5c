"""Errors raised on bad input. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations

import json
import os
from pathlib import Path


class InputError(ValueError):
    """Bad input: names the offending file (or item) and the problem."""

    def __init__(self, where: object, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


def read_json(path: str | os.PathLike, what: str = "JSON file"):
    """Parse a JSON file; :class:`InputError` naming it when it is unreadable or malformed."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable {what} ({exc})") from exc
