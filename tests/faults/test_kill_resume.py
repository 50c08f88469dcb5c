"""Kill and resume: SIGKILL the workflow mid-run, rerun, get the uninterrupted run's bytes.

The resume procedure is the documented one (docs/reliability.md): ``snakemake --unlock``
(the killed run's lock stays behind) and the same command again; the default profile's
``rerun-incomplete: true`` reruns the jobs that were running.
"""

from __future__ import annotations

import time

import psutil
import pytest

from geokd.checksum import verify_sidecar
from geokd.distances.shards import planned_blocks
from geokd.errors import InputError
from tests.helpers.faults import (
    FAULTS,
    PROTOCOL,
    TARGETS,
    assert_same_results,
    clone_run,
    executed_jobs,
    incomplete_marker,
    kill_run,
    make_workdir,
    processes_in,
    running_jobs,
    snakemake,
    start,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.workflow]

DISTANCES = PROTOCOL / "distances" / "procrustes"
MODELS = PROTOCOL / "models"
#: What training and everything after it write (with their Snakemake metadata kept).
AFTER_TEACHER = (str(MODELS), str(PROTOCOL / "summary.json"), str(PROTOCOL / "timings.json"))


def _finished_blocks(work) -> tuple[set[tuple[str, int, int]], int]:
    """Blocks on disk that pass their checksum, and how many of them Snakemake still marks
    incomplete (the job wrote them, Snakemake died before recording it)."""
    done, marked = set(), 0
    for side in (work / DISTANCES).glob("*/block_*.npy.json"):
        npy = side.with_suffix("")
        try:
            verify_sidecar(npy)
        except InputError:
            continue
        bi, bj = npy.stem.split("_")[1:]
        done.add((npy.parent.name, int(bi), int(bj)))
        marked += incomplete_marker(work, str(npy.relative_to(work))).exists()
    return done, marked


def _resume(work):
    unlock = snakemake(work, "--unlock")
    assert unlock.returncode == 0
    return snakemake(work, *TARGETS)


def test_kill_during_distance_shards_then_resume(tmp_path, reference_run, ledger):
    work = make_workdir(tmp_path, FAULTS)
    proc = start(work, *TARGETS)
    # the fault point: some blocks finished, no matrix assembled yet
    wait_for(
        lambda: (
            len(list((work / DISTANCES).glob("*/block_*.npy.json"))) >= 3
            and not list((work / DISTANCES).glob("*.npy"))
        ),
        proc,
    )
    kill_run(proc, work)
    ledger.fault()
    assert not list((work / DISTANCES).glob("*.npy")), "a matrix appeared before the kill"
    finished, _ = _finished_blocks(work)
    assert finished, "no finished block to keep"

    # a plain rerun refuses: the lock of the killed run is still there
    locked = snakemake(work, *TARGETS, check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout
    done = _resume(work)
    rerun = {
        (w["query"] + "-" + w["reference"], int(w["bi"]), int(w["bj"]))
        for rule, w in executed_jobs(done.stdout)
        if rule == "distance_block"
    }
    assert not rerun & finished, f"finished blocks were recomputed: {sorted(rerun & finished)}"
    split = work / PROTOCOL / "split.tsv"
    plan = {
        (f"{q}-{r}", bi, bj)
        for q, r in (("train", "train"), ("test", "train"))
        for bi, bj in planned_blocks(split, q, r, FAULTS["distances"]["block_size"])
    }
    assert rerun | finished == plan
    assert_same_results(work, reference_run["files"])
    assert not list(work.rglob(".*.tmp")), "temporary files left behind"


def test_kill_during_training_then_resume(tmp_path, reference_run, ledger):
    work = clone_run(reference_run["work"], tmp_path, drop=AFTER_TEACHER)
    # the fault point: a training job has used 60 % of the CPU time it took in the reference
    # run (past start-up, into the epochs; CPU time hardly depends on the machine's load)
    (bench,) = (reference_run["work"] / "benchmarks/train/tiny/paper/transformer").glob(
        "seeds*.tsv"
    )
    header, row = (line.split("\t") for line in bench.read_text().splitlines()[:2])
    cpu = float(dict(zip(header, row, strict=True)).get("cpu_time", 2.0))
    proc = start(work, *TARGETS)

    def _training() -> bool:
        for job in running_jobs(proc, "geokd train"):
            try:
                if sum(job.cpu_times()[:2]) > 0.6 * cpu:
                    return True
            except psutil.Error:  # it just ended
                continue
        return False

    wait_for(_training, proc)
    kill_run(proc, work)
    ledger.fault()
    for run in (work / MODELS).glob("*/seed*"):  # all of a run's files, or none of them
        names = sorted(p.name for p in run.iterdir())
        assert names in (
            [],
            ["history.json", "metrics.json", "model.pt", "model.pt.json", "timings.json"],
        ), names
    done = _resume(work)
    assert any(r.startswith("train_seeds") for r, _ in executed_jobs(done.stdout))
    assert_same_results(work, reference_run["files"])


def test_snakemake_killed_its_running_job_dies_too_then_resume(tmp_path, reference_run, ledger):
    """Only Snakemake dies (a lost login session): its running training job dies with it
    (geokd.lifeline: the parent-death signal) and writes nothing, so no orphan can commit
    stale outputs later, over a newer run's; the rerun trains again."""
    work = clone_run(reference_run["work"], tmp_path, drop=AFTER_TEACHER)
    proc = start(work, *TARGETS, cores=1)
    jobs = wait_for(lambda: running_jobs(proc, "geokd train"), proc)
    time.sleep(1.0)  # the job has started (geokd.lifeline: a parent gone within ~50 ms of the
    # step's start is not noticed), and training takes longer than this
    kill_run(proc, work, whole_group=False)
    ledger.fault()
    for job in jobs:
        try:
            job.wait(timeout=30)
        except psutil.TimeoutExpired:
            pytest.fail(f"the training job {job.pid} outlived Snakemake by 30 s")
    assert not processes_in(work)
    written = list((work / MODELS).glob("*/seed*/metrics.json"))
    assert not written, f"an orphaned job wrote outputs: {written}"
    done = _resume(work)
    rerun = {rule for rule, _ in executed_jobs(done.stdout)}
    assert any(r.startswith("train_seeds") for r in rerun), rerun
    assert_same_results(work, reference_run["files"])


def test_nothing_to_do_after_the_reference_run(reference_run):
    done = snakemake(reference_run["work"], "-n", *TARGETS)
    assert "Nothing to be done" in done.stdout
