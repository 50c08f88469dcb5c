"""Concurrency: two workflows on one results folder, and concurrent writers of one file."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from geokd.atomic import write_text
from tests.helpers.faults import (
    PROTOCOL,
    TARGETS,
    assert_same_results,
    clone_run,
    executed_jobs,
    running_jobs,
    snakemake,
    start,
    wait_for,
)


@pytest.mark.faults
@pytest.mark.workflow
def test_a_second_snakemake_on_the_same_folder_is_refused(tmp_path, reference_run, ledger):
    # the first run recomputes everything after the matrices (6 jobs in 3 waves), so it holds
    # the lock for several times what the second needs to start
    drop = [str(PROTOCOL / d) for d in ("teacher", "knn", "models", "summary.json")]
    work = clone_run(reference_run["work"], tmp_path, drop=tuple(drop))
    first = start(work, *TARGETS)
    wait_for(lambda: running_jobs(first, "python -m geokd"), first)
    second = snakemake(work, *TARGETS, check=False, timeout=300)
    ledger.fault()
    assert second.returncode != 0
    assert "LockException" in second.stdout and "cannot be locked" in second.stdout
    assert executed_jobs(second.stdout) == []  # it started nothing
    assert first.wait(timeout=600) == 0, (work / "run.log").read_text()
    assert_same_results(work, reference_run["files"])


def _writer(path, label, n):
    for i in range(n):
        write_text(path, json.dumps({"writer": label, "i": i, "pad": "x" * 50_000}))


def _reader(path, n, bad):
    for _ in range(n):
        try:
            json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except ValueError:
            bad.value += 1


def test_concurrent_writers_never_expose_a_partial_file(tmp_path, ledger):
    path = tmp_path / "shared.json"
    ctx = multiprocessing.get_context("fork")
    bad = ctx.Value("i", 0)
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in "ab"]
    procs.append(ctx.Process(target=_reader, args=(path, 400, bad)))
    t0 = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    ledger.fault()
    assert [p.exitcode for p in procs] == [0, 0, 0] and time.monotonic() - t0 < 60
    assert bad.value == 0, "a reader saw a partial file"
    assert json.loads(path.read_text())["i"] == 39
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporaries left
