"""The fault-injection suite's ledger (a pytest plugin; tests/conftest.py registers it).

Every fault test records the faults it injects and the bad inputs it tries, and checks that
the artifacts a fault must not touch are still the same bytes; the run prints the totals
("fault ledger: ..., artifacts lost: N"). Under pytest-xdist each worker counts its own tests
and hands its counts to the controller, which prints the sum.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

KEY = "geokd_fault_ledger"


class Ledger:
    """Counts of faults injected, bad inputs tried and artifacts checked / lost."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lost: list[str] = []

    def fault(self, n: int = 1) -> None:
        self.counts["faults injected"] += n

    def bad_input(self, n: int = 1) -> None:
        self.counts["bad inputs tried"] += n

    def intact(self, before: dict[str, bytes], root: Path) -> None:
        """Assert that every file of snapshot ``before`` still has the same bytes."""
        lost = [rel for rel, data in before.items() if _read(root / rel) != data]
        self.counts["artifacts checked"] += len(before)
        self.lost += [str(root / rel) for rel in lost]
        assert not lost, f"artifacts lost or altered: {lost}"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


LEDGER = Ledger()


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput[KEY] = {"counts": dict(LEDGER.counts), "lost": list(LEDGER.lost)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """The controller adds up the workers' ledgers."""
    data = getattr(node, "workeroutput", {}).get(KEY)
    if data:
        LEDGER.counts.update(data["counts"])
        LEDGER.lost += data["lost"]


def pytest_terminal_summary(terminalreporter) -> None:
    if LEDGER.counts:
        line = ", ".join(f"{k}: {v}" for k, v in sorted(LEDGER.counts.items()))
        terminalreporter.write_line(f"fault ledger: {line}, artifacts lost: {len(LEDGER.lost)}")
