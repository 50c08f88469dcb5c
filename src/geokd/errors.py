"""Errors raised on bad input. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: names the offending file (or item) and the problem."""

    def __init__(self, where: object, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
