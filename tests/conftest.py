"""Shared fixtures (the real UTD-MHAD data, skipped cleanly where absent; a fake UTD-MHAD folder;
the tiny workflow run, built once per run),
CI's rule that a skip fails, the order of the test files (the longest first, for make test's
parallel workers), the session's process guard (tests/helpers/leftovers.py: a process the run
started that is still alive at its end fails it) and the fault ledger's totals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.shared import shared_folder
from tests.helpers.slurm_cluster import remove_a_dead_clusters_conf
from tests.helpers.utd import fake_utd_folder
from tests.helpers.workflow import TINY, make_workdir, snakemake

#: the session's process guard, and the fault ledger's totals (also under pytest-xdist)
pytest_plugins = ["tests.helpers.leftovers", "tests.helpers.ledger"]

ROOT = Path(__file__).resolve().parents[1]
UTD_DIR = ROOT.parent / "shared" / "datasets" / "utd-mhad" / "Skeleton"


#: Test files whose tests take longest together (a module-scoped workflow run, the tests of
#: the one SLURM cluster, whole-pipeline runs): they run first, so that make test's parallel
#: workers (--dist loadfile: a file's tests in one worker; --no-loadscope-reorder: in this
#: order) do not end waiting for one of them. The order of the rest is unchanged.
FIRST = (
    "tests/test_slurm.py",
    "tests/test_workflow.py",
    "tests/faults/test_determinism.py",
    "tests/test_dvc.py",
    "tests/faults/test_concurrency.py",
    "tests/faults/test_kill_resume.py",
    "tests/faults/test_stale_results.py",
    "tests/faults/test_disk_full.py",
    "tests/faults/test_bad_inputs.py",
)


#: Test files that read the shared tiny run (``tiny_run``) but do not build it: they run last,
#: when tests/test_workflow.py (first) has built it, so that no worker waits for it.
LAST = ("tests/test_workflow_rebuild.py",)


def pytest_sessionstart(session):
    """A slurm.conf that a killed test run left behind points SLURM clients at a dead slurmctld,
    and the SLURM executor plugin's ``scontrol show config`` at each Snakemake start then waits
    about 10 s for it: removed before any test runs (tests/helpers/slurm_cluster.py)."""
    remove_a_dead_clusters_conf()


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(FIRST)}
    rank |= {path: len(FIRST) + 1 + i for i, path in enumerate(LAST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With ``GEOKD_FAIL_ON_SKIP=1`` (set by ``.ci/run``) a skipped test is a failure: CI has
    the real data, the cross-check libraries and the SLURM daemons, so a skip there means a
    cross-check did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("GEOKD_FAIL_ON_SKIP") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (GEOKD_FAIL_ON_SKIP=1): {reason}"


@pytest.fixture(scope="session")
def utd_dir() -> Path:
    """The real UTD-MHAD skeleton folder; skips the test where it is absent."""
    if not (UTD_DIR.is_dir() and any(UTD_DIR.glob("*.mat"))):
        pytest.skip(f"real UTD-MHAD data not found at {UTD_DIR} (see ../shared/datasets)")
    return UTD_DIR


@pytest.fixture
def fake_utd(tmp_path: Path) -> Path:
    """A tiny UTD-MHAD-style folder: 2 actions x 3 subjects x 2 trials of random skeletons."""
    return fake_utd_folder(tmp_path / "raw")


def _tiny_run(root: Path) -> None:
    snakemake(make_workdir(root, TINY), "results/report.html")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The workflow run to its report on the tiny test config (.test/config/config.yaml), once
    per test run, shared by the xdist workers (tests/helpers/shared.py): its work folder. Treat
    as read-only; a test that changes files works on a copy (tests/helpers/faults.py:
    clone_run)."""
    return shared_folder(tmp_path_factory, "tiny-run", _tiny_run) / "work"
