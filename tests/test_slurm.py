"""The SLURM profile, and the workflow on a real single-node SLURM cluster (marker ``slurm``).

The cluster (tests/helpers/slurm_cluster.py) uses Debian's munge and Slurm packages and needs
root; without them the ``slurm`` tests skip and say why. Stopping it cancels its jobs and waits
for every process of them and of its daemons (issue 27).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from geokd.distances.shards import plan_blocks
from geokd.settings import train_rule_name
from tests.helpers import slurm_cluster
from tests.helpers.dvc import UP_TO_DATE, copy_tree, git, tracked_files
from tests.helpers.dvc import run as run_in
from tests.helpers.processes import started_in
from tests.helpers.slurm_cluster import (
    PARTITION,
    SLURM_CONF,
    SlurmCluster,
    left_by_a_dead_cluster,
    missing_requirements,
    write_test_profile,
)
from tests.helpers.workflow import BIN, ROOT, TINY, make_workdir, snakemake

PROFILE = ROOT / "workflow" / "profiles" / "slurm"

# TINY with one protocol, one seed and 6-row blocks: 14 jobs (7 of them distance blocks).
CONFIG = copy.deepcopy(TINY)
CONFIG["datasets"]["tiny"]["protocols"] = {"paper": {"train": [1, 2], "test": [3, 4]}}
CONFIG["distances"]["block_size"] = 6
CONFIG["training"]["seeds"] = [0]
RESULTS = Path("results/tiny/paper")
COMPARED = [  # deterministic outputs: bytewise equal between a local and a SLURM run
    RESULTS / "distances/procrustes/train-train.npy",
    RESULTS / "distances/procrustes/test-train.npy",
    RESULTS / "teacher/softmax.parquet",
    RESULTS / "knn/procrustes.json",
]
#: one training and one run of the label-budget study (subject 1 labelled) as SLURM jobs too
TARGETS = [
    *COMPARED,
    RESULTS / "models/transformer/seed0/metrics.json",
    RESULTS / "budgets/s1.json",
]


def run_snakemake(workdir: Path, *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    """Snakemake on ``workdir`` without --cores (the profile decides), stopped after
    ``timeout`` (its SLURM jobs cancelled: tests/helpers/processes.py)."""
    return snakemake(workdir, *args, cores=None, check=False, timeout=timeout)


# -- the profile itself (no cluster needed) ----------------------------------------------------


def test_a_dead_test_clusters_slurm_conf_is_not_kept():
    """Which slurm.conf a killed test run left behind: a test cluster's whose pytest pid is
    gone or unknown; not a live test cluster's, not a site's."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert left_by_a_dead_cluster(f"# geokd test cluster (pid {gone.pid})\nClusterName=x\n")
    assert left_by_a_dead_cluster("# geokd test cluster\nClusterName=x\n")  # no pid
    assert not left_by_a_dead_cluster(f"# geokd test cluster (pid {os.getpid()})\n")
    assert not left_by_a_dead_cluster("ClusterName=site\nSlurmctldHost=head\n")


def test_a_test_session_removes_only_a_dead_test_clusters_slurm_conf(tmp_path, monkeypatch):
    """What every test session does at its start (tests/conftest.py), on a stand-in file."""
    conf = tmp_path / "slurm.conf"
    monkeypatch.setattr(slurm_cluster, "SLURM_CONF", conf)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not slurm_cluster.remove_a_dead_clusters_conf()  # no file
    for text, kept in [
        (f"# geokd test cluster (pid {gone.pid})\nClusterName=x\n", False),
        (f"# geokd test cluster (pid {os.getpid()})\nClusterName=x\n", True),
        ("ClusterName=site\nSlurmctldHost=head\n", True),
    ]:
        conf.write_text(text)
        assert slurm_cluster.remove_a_dead_clusters_conf() is not kept
        assert conf.exists() is kept and (not kept or conf.read_text() == text)


@pytest.mark.workflow
@pytest.mark.parametrize("flag", ["--profile", "--workflow-profile"])
def test_profile_loads_and_plans_the_report(tmp_path, flag):
    work = make_workdir(tmp_path, TINY)
    done = run_snakemake(work, flag, str(PROFILE), "-n", "results/report.html", timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"slurm_partition={PARTITION}" in out and "report_html" in out


@pytest.mark.workflow
def test_profile_names_only_existing_rules_and_comments_every_entry(tmp_path):
    text = (PROFILE / "config.yaml").read_text()
    settings = yaml.safe_load(text)
    assert settings["executor"] == "slurm"
    assert {"slurm_partition", "mem_mb", "runtime"} <= set(settings["default-resources"])
    work = make_workdir(tmp_path, TINY)
    done = run_snakemake(work, "--list-rules", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = set(done.stdout.split())
    named = set(settings["set-resources"]) | set(settings["set-threads"])
    assert named <= rules, f"not rules of the workflow: {named - rules}"  # a typo does nothing
    lines = text.splitlines()
    for i, line in enumerate(lines):  # top-level keys and rule entries each carry a comment
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key = line.strip().split(":")[0]
        above = lines[i - 1].lstrip().startswith("#")
        below = i + 1 < len(lines) and lines[i + 1].lstrip().startswith("#")
        if not line.startswith(" "):
            assert above, f"top-level entry without a comment: {line!r}"
        elif key in settings["set-resources"]:
            assert above or below, f"set-resources entry without a comment: {line!r}"


# -- the real cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node cluster for the module; afterwards its jobs are cancelled and
    its job steps and daemons stopped and waited for (nothing may have to be killed)."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    running = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield running
    finally:
        killed = running.stop()
    assert killed == [], f"the cluster did not stop cleanly; killed: {killed}"


@pytest.fixture(scope="module")
def test_profile(cluster, tmp_path_factory):
    # at most half the node per job, so that two jobs run side by side
    return write_test_profile(
        PROFILE, tmp_path_factory.mktemp("profile"), max(1, cluster.cpus // 2)
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie left for init to reap counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


@pytest.mark.slurm
def test_cluster_stops_its_daemons_and_restores_the_config(tmp_path):
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    sentinel = b"# not a real config: must survive the test cluster\n"
    wrote_sentinel = False
    try:
        for round_ in ("as found", "over a file"):
            if round_ == "over a file" and not SLURM_CONF.exists():
                SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
                SLURM_CONF.write_bytes(sentinel)
                wrote_sentinel = True
            before = SLURM_CONF.read_bytes() if SLURM_CONF.exists() else None
            if before is not None and left_by_a_dead_cluster(before.decode(errors="replace")):
                before = None  # a dead test cluster's file (a killed run): removed, not restored
            cluster = SlurmCluster(tmp_path / round_.replace(" ", "_")).start()
            try:
                pids = cluster.pids()
                assert len(pids) == 3 and all(_alive(p) for p in pids)
                assert "geokd test cluster" in SLURM_CONF.read_text()
                info = subprocess.run(
                    ["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True
                )
                assert info.stdout.split() == [f"{PARTITION}*", "idle"]
            finally:
                cluster.stop()
            assert not any(_alive(p) for p in pids)
            after = SLURM_CONF.read_bytes() if SLURM_CONF.exists() else None
            assert after == before
    finally:
        if wrote_sentinel:
            SLURM_CONF.unlink()


@pytest.mark.slurm
def test_stopping_the_cluster_cancels_its_jobs_and_waits_for_their_processes(tmp_path):
    """A job still running when the cluster stops: stop() cancels it and returns only once the
    job's step manager and processes have ended, then the daemons and their children."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    work = tmp_path / "job"
    work.mkdir()
    cluster = SlurmCluster(tmp_path / "cluster").start()
    try:
        daemons = [psutil.Process(p) for p in cluster.pids()]
        children = [c for d in daemons for c in d.children(recursive=True)]
        submitted = subprocess.run(
            ["sbatch", "--parsable", "-D", str(work), "-o", str(work / "%j.log"),
             "--wrap", "sleep 600"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        jobid = submitted.stdout.strip().split(";")[0]
        end = time.monotonic() + 60
        while time.monotonic() < end and not [p for p in started_in(work) if "sleep" in p.name()]:
            time.sleep(0.2)
        sleeper = [p for p in started_in(work) if "sleep" in p.name()]
        assert sleeper, f"job {jobid} did not start:\n{cluster.logs()}"
        steps = cluster.steps()
        assert any(p.name() == "slurmstepd" for p in steps) and sleeper[0] in steps
    finally:
        started = time.monotonic()
        killed = cluster.stop()
    assert killed == []
    assert time.monotonic() - started < 60
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in steps)
    assert started_in(work) == []
    for p in [*daemons, *children]:
        assert not (p.is_running() and p.status() != psutil.STATUS_ZOMBIE), p


@pytest.mark.slurm
def test_workflow_on_slurm_equals_a_local_run(cluster, test_profile, tmp_path):
    local = make_workdir(tmp_path / "local", CONFIG)
    snakemake(local, *map(str, COMPARED))  # the reference: what is compared, nothing more

    work = make_workdir(tmp_path / "slurm", CONFIG)
    started = time.monotonic()
    done = run_snakemake(work, "--workflow-profile", str(test_profile), *map(str, TARGETS))
    wall = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{out}\n{cluster.logs()}"
    print(f"SLURM run: {wall:.1f} s")

    for path in TARGETS:
        assert (work / path).is_file(), path
    for path in COMPARED:
        assert (work / path).read_bytes() == (local / path).read_bytes(), path

    # every job went through SLURM, with the profile's resources
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    jobs = _slurm_jobs(run_id)
    test_threads = yaml.safe_load((test_profile / "config.yaml").read_text())["set-threads"][
        "distance_block"
    ]
    assert test_threads == max(1, min(4, cluster.cpus // 2))
    rules = [job["rule"] for job in jobs]
    n_blocks = len(plan_blocks(12, 12, 6, symmetric=True)) + len(
        plan_blocks(12, 12, 6, symmetric=False)
    )
    assert rules.count("distance_block") == n_blocks == 7
    assert sorted(set(rules)) == sorted(
        {"ingest_synthetic", "split", "distance_block", "distance_matrix"}
        | {"soft_labels", "knn", train_rule_name([0]), "budget_subset"}
    )
    assert len(rules) == out.count("has been submitted with SLURM jobid")
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    for job in jobs:
        if job["rule"] == "distance_block":
            # set-threads (capped for the test) and block_runtime: 5 + ceil(36 / (1500 * t))
            assert job["cpus"] == test_threads and job["minutes"] == 6
        if job["rule"] == train_rule_name([0]):
            # workflow/rules/train.smk: 60 minutes + 30 per seed of the group, 4000 MB
            assert job["minutes"] == 90 and job["memory"] == "4000M"
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == len(jobs)


def _slurm_jobs(run_id: str) -> list[dict]:
    """The jobs of one Snakemake run (job name = run ID): rule, state, resources."""
    done = subprocess.run(
        ["squeue", "-h", "--states=all", "--name", run_id, "-o", "%i|%T|%k|%C|%l|%m"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    jobs = []
    for line in done.stdout.split():
        jobid, state, comment, cpus, limit, memory = line.split("|")
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        h, m, s = ["0", *limit.split(":")][-3:]
        minutes = 60 * int(h.split("-")[-1]) + int(m) + int(s) // 60
        jobs.append(
            {"id": jobid, "state": state, "rule": rule, "cpus": int(cpus)}
            | {"minutes": minutes, "memory": memory}
        )
    return jobs


@pytest.mark.slurm
def test_a_failing_job_fails_the_run_and_keeps_its_logs(cluster, test_profile, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a1_s1_t1_skeleton.mat").write_bytes(b"not a MATLAB file")
    config = {
        "datasets": {
            "real": {
                "source": "utd_mhad",
                "raw_dir": str(raw),
                "protocols": {"paper": {"train": [1], "test": [2]}},
            }
        }
    }
    work = make_workdir(tmp_path, config)
    started = time.monotonic()
    done = run_snakemake(
        work, "--workflow-profile", str(test_profile), "data/interim/real/sequences.parquet"
    )
    wall = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert wall < 120, f"the failure took {wall:.0f} s to notice"
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", out), out
    error = (work / "logs/ingest_utd_mhad/real.log").read_text()
    assert "geokd: error:" in error and "a1_s1_t1_skeleton.mat" in error
    slurm_log = next((work / ".snakemake/slurm_logs/rule_ingest_utd_mhad").rglob("*.log"))
    assert "Error in rule ingest_utd_mhad" in slurm_log.read_text()
    assert not (work / "data/interim/real/sequences.parquet").exists()


# -- SIGNUM mid-scale, reduced: DVC drives, SLURM runs -------------------------------------------

MIDSCALE = ROOT / "config" / "signum_midscale.yaml"


def reduced_midscale() -> dict:
    """config/signum_midscale.yaml with 4 signs x 25 signers of 16 frames (56 train, 16 val,
    28 test sequences: 7 blocks of 32), one seed, two students, two epochs, and no label-budget
    study (its 74 subsets of the 14 training signers would be 74 more SLURM jobs, some 10
    minutes; DVC runs the study's stage in tests/test_dvc.py's round trip)."""
    config = yaml.safe_load(MIDSCALE.read_text())
    ds = config["datasets"]["signum_midscale"]
    ds["synthetic_signum"].update(n_signs=4, min_frames=16, max_frames=16)
    config["distances"]["block_size"] = 32
    config["knn"].update(k_max=5, latency_queries=2)
    config["training"].update(seeds=[0], models=["transformer", "distilled"])
    config["training"]["train"].update(epochs=2, patience=0)
    config["training"]["student"].update(max_frames=8, d_model=16, n_layers=1, ff_dim=32)
    config["budgets"] = {"enabled": False}
    return config


@pytest.mark.slow
@pytest.mark.slurm
def test_signum_midscale_reduced_through_dvc_on_slurm_equals_a_local_run(
    cluster, test_profile, tmp_path, monkeypatch
):
    """`SNAKEMAKE_PROFILE=<slurm profile> dvc repro` on the generated SIGNUM pipeline: every
    stage's Snakemake submits its jobs to SLURM; the outputs equal a local run byte for byte,
    DVC then has nothing to do, and `dvc push` + a fresh clone's pull bring every tracked file
    back (the generated raw .npy files and manifest included)."""
    config = reduced_midscale()
    results = Path("results/signum_midscale/signer")
    compared = [
        Path("data/interim/signum_midscale/sequences.parquet"),
        results / "split.tsv",
        *[results / f"distances/hand/{m}.npy" for m in ("train-train", "val-train", "test-train")],
        results / "teacher/softmax.parquet",
        results / "teacher/nngk.parquet",
        results / "knn/hand.json",
    ]
    local = make_workdir(tmp_path / "local", config)
    snakemake(local, *map(str, compared))  # the reference: what is compared, nothing more

    repo, remote = tmp_path / "repo", tmp_path / "remote"
    copy_tree(repo)  # with __pycache__: numba's kernel caches
    name = "config/signum_midscale.yaml"
    (repo / name).write_text(yaml.safe_dump(config, sort_keys=False))
    run_in(repo, BIN / "geokd", "dvc-yaml", name)
    (repo / "dvc.lock").unlink(missing_ok=True)
    git(repo, "init", "-q")
    (repo / ".git" / "info" / "exclude").write_text("/.venv\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "scratch copy")
    run_in(repo, BIN / "dvc", "remote", "modify", "--local", "demo", "url", remote)

    monkeypatch.setenv("SNAKEMAKE_PROFILE", str(test_profile))  # what docs/dvc.md tells users
    out = run_in(repo, BIN / "dvc", "repro", timeout=1500)
    monkeypatch.delenv("SNAKEMAKE_PROFILE")
    submitted = out.count("has been submitted with SLURM jobid")
    # 7 blocks, 3 matrices, ingest x2, split, 2 soft labels, knn x2, 2 trainings, 4 report jobs
    assert submitted >= 20, out[-4000:]

    for path in compared:
        assert (repo / path).read_bytes() == (local / path).read_bytes(), path
    assert UP_TO_DATE in run_in(repo, BIN / "dvc", "status")

    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc repro")
    expected = tracked_files(repo)
    assert "data/raw/signum_midscale/manifest.csv" in expected
    assert any(p.endswith("models/distilled/seed0/model.pt") for p in expected)
    run_in(repo, BIN / "dvc", "push")
    clone = tmp_path / "clone"
    run_in(tmp_path, "git", "clone", "-q", repo, clone)
    (clone / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    run_in(clone, BIN / "dvc", "remote", "modify", "--local", "demo", "url", remote)
    run_in(clone, BIN / "dvc", "pull")
    assert tracked_files(clone) == expected
    assert UP_TO_DATE in run_in(clone, BIN / "dvc", "status")
