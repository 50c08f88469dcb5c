"""The fault-injection suite's fixtures (see docs/reliability.md); its helpers are in
tests/helpers/faults.py.

- ``ledger``: the run's count of faults injected, bad inputs tried and artifacts checked and
  lost, printed at the end of the run (tests/helpers/ledger.py).
- ``reference_run``: one uninterrupted run of ``FAULTS`` on 2 cores, shared by the session.
- ``project``: tiny in-process projects (store, split, matrices, soft labels, checkpoints) for
  the unit-level faults.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers.faults import (
    FAULTS,
    LEDGER,
    TARGETS,
    Ledger,
    build_project,
    make_workdir,
    project_paths,
    snakemake,
    snapshot,
)
from tests.helpers.shared import shared_folder


@pytest.fixture
def ledger() -> Ledger:
    return LEDGER


def _reference_run(root: Path) -> None:
    work = make_workdir(root, FAULTS)
    t0 = time.monotonic()
    done = snakemake(work, *TARGETS)
    run = {"seconds": time.monotonic() - t0, "stdout": done.stdout}
    (root / "run.json").write_text(json.dumps(run))


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> dict:
    """One uninterrupted run of FAULTS on 2 cores, once per run (shared by the xdist workers):
    its folder, snapshot and time. Treat as read-only: clone_run copies it."""
    root = shared_folder(tmp_path_factory, "reference", _reference_run)
    work = root / "work"
    return {"work": work, "files": snapshot(work), **json.loads((root / "run.json").read_text())}


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> dict[str, Path]:
    """Store, split, blocks, matrices, soft labels, KNN, two students and a summary of a tiny
    synthetic dataset, each written by its ``geokd`` subcommand (tests/helpers/faults.py:
    build_project), built once per run. Treat as read-only: copy what a test damages."""
    return project_paths(shared_folder(tmp_path_factory, "project", build_project))
