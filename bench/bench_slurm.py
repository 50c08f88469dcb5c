"""Scheduling overhead per job on a local single-node SLURM cluster
(tests/helpers/slurm_cluster.py).

    python bench/bench_slurm.py [--n-jobs 20] [--repeats 10] [--geokd]

Needs Debian's slurmctld, slurmd, slurm-client and munge, and root (the cluster writes
/etc/slurm/slurm.conf and puts the old one back). Measures:

(a) SLURM alone: ``sbatch --wrap true``, one job at a time, submit -> COMPLETED in squeue;
(b) Snakemake + snakemake-executor-plugin-slurm: N independent no-op jobs (``touch``) through
    the executor, against the same workflow run locally; from squeue: queue wait and time held
    on the node per job (the jobstep wrapper: two Snakemake start-ups and srun);
(c) with --geokd: the tiny geokd workflow of tests/test_slurm.py (14 jobs), local vs SLURM.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.helpers.slurm_cluster import (  # noqa: E402
    PARTITION,
    SlurmCluster,
    missing_requirements,
    write_test_profile,
)

BIN = Path(sys.executable).parent
NOOP = """\
rule all:
    input:
        expand("out/{i}.txt", i=range(int(config["n"]))),


rule noop:
    output:
        "out/{i}.txt",
    resources:
        mem_mb=100,
        runtime=5,
    shell:
        "touch {output}"
"""
# the plugin's status settings for a cluster without slurmdbd (see docs/cluster.md)
SLURM_ARGS = [
    "--executor",
    "slurm",
    "--jobs",
    "100",
    "--default-resources",
    f"slurm_partition={PARTITION}",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]


def run(cmd: list[str], timeout: float = 1200) -> float:
    """Wall seconds of ``cmd``; raises with its output if it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def squeue_times(name: str | None = None) -> list[dict]:
    """Submit, start and end time (s, 1 s resolution) of every job, or of one job name."""
    cmd = ["squeue", "-h", "--states=all", "-o", "%i|%T|%V|%S|%e"]
    if name:
        cmd += ["--name", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    jobs = []
    for line in out.split():
        jobid, state, *stamps = line.split("|")
        t = [datetime.fromisoformat(s).timestamp() for s in stamps]
        jobs.append({"id": jobid, "state": state, "submit": t[0], "start": t[1], "end": t[2]})
    return jobs


def bench_sbatch(workdir: Path, repeats: int) -> list[float]:
    """Seconds from sbatch to COMPLETED for ``repeats`` no-op jobs, one at a time."""
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jobid = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "-p",
                PARTITION,
                "--mem",
                "10",
                "-o",
                "/dev/null",
                "--wrap=true",
            ],
            capture_output=True,
            text=True,
            cwd=workdir,
            check=True,
        ).stdout.strip()
        while True:
            state = subprocess.run(
                ["squeue", "-h", "--states=all", "-j", jobid, "-o", "%T"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            if state in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.05)
        latencies.append(time.perf_counter() - t0)
        assert state == "COMPLETED", state
    return latencies


def bench_noop(workdir: Path, n: int, cores: int) -> dict:
    """N no-op jobs: local wall, SLURM wall, queue wait and node time per job."""
    (workdir / "Snakefile").write_text(NOOP)
    (workdir / "config.yaml").write_text(f"n: {n}\n")
    common = [str(BIN / "snakemake"), "-s", str(workdir / "Snakefile"), "--workflow-profile"]
    common += ["none", "--configfile", str(workdir / "config.yaml")]
    local = run([*common, "-d", str(workdir / "local"), "--cores", str(cores)])
    slurm_dir = workdir / "slurm"
    slurm = run([*common, "-d", str(slurm_dir), *SLURM_ARGS])
    log = max((slurm_dir / ".snakemake" / "log").glob("*.snakemake.log"), key=os.path.getmtime)
    run_id = next(
        line.split(": ", 1)[1].strip()
        for line in log.read_text().splitlines()
        if line.startswith("SLURM run ID:")
    )
    jobs = squeue_times(run_id)
    assert len(jobs) == n and all(j["state"] == "COMPLETED" for j in jobs), jobs
    return {
        "local": local,
        "slurm": slurm,
        "wait": [j["start"] - j["submit"] for j in jobs],
        "held": [j["end"] - j["start"] for j in jobs],
    }


def bench_geokd(workdir: Path, cores: int) -> dict:
    """The tiny workflow of tests/test_slurm.py, local and through the test profile."""
    from tests.test_slurm import CONFIG, PROFILE, TARGETS
    from tests.test_workflow import make_workdir

    targets = list(map(str, TARGETS))
    snakefile = ["--snakefile", str(ROOT / "workflow" / "Snakefile")]
    local = make_workdir(workdir / "local", CONFIG)
    t_local = run(
        [str(BIN / "snakemake"), *snakefile, "-d", str(local), "--cores", str(cores), *targets]
    )
    profile = write_test_profile(PROFILE, workdir / "profile", max(1, cores // 2))
    remote = make_workdir(workdir / "slurm", CONFIG)
    cmd = [
        str(BIN / "snakemake"),
        *snakefile,
        "-d",
        str(remote),
        "--workflow-profile",
        str(profile),
    ]
    t_slurm = run(cmd + targets)
    return {"local": t_local, "slurm": t_slurm, "jobs": 14}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-jobs", type=int, default=20, help="no-op jobs in (b) [20]")
    ap.add_argument("--repeats", type=int, default=10, help="sbatch jobs in (a) [10]")
    ap.add_argument("--geokd", action="store_true", help="also (c): the tiny geokd workflow")
    args = ap.parse_args(argv)
    reason = missing_requirements()
    if reason:
        sys.exit(f"bench_slurm: {reason}")
    with tempfile.TemporaryDirectory(prefix="geokd-bench-slurm-") as tmp:
        root = Path(tmp)
        with SlurmCluster(root / "cluster") as cluster:
            cores = cluster.cpus
            print(f"# {date.today()}  {platform.node()}: {cores} CPUs, load {os.getloadavg()}")
            lat = bench_sbatch(root, args.repeats)
            print(
                f"(a) sbatch no-op, submit -> COMPLETED: median {statistics.median(lat):.2f} s, "
                f"min {min(lat):.2f} s, max {max(lat):.2f} s ({args.repeats} jobs, one at a time)"
            )
            (root / "noop").mkdir()
            r = bench_noop(root / "noop", args.n_jobs, cores)
            n = args.n_jobs
            print(
                f"(b) {n} no-op Snakemake jobs: local {r['local']:.1f} s, SLURM {r['slurm']:.1f} s"
                f" -> {(r['slurm'] - r['local']) / n:.2f} s wall per job extra with {cores} "
                f"jobs at a time ({(r['slurm'] - r['local']) * cores / n:.1f} slot-seconds)"
            )
            print(
                f"    per job on the node (jobstep + srun + Snakemake): median "
                f"{statistics.median(r['held']):.0f} s, max {max(r['held']):.0f} s; queue wait "
                f"median {statistics.median(r['wait']):.0f} s (1 s resolution)"
            )
            if args.geokd:
                (root / "geokd").mkdir()
                g = bench_geokd(root / "geokd", cores)
                print(
                    f"(c) tiny geokd workflow ({g['jobs']} jobs): local {g['local']:.1f} s, "
                    f"SLURM {g['slurm']:.1f} s -> {(g['slurm'] - g['local']) / g['jobs']:.1f} s "
                    "wall per job extra"
                )
            print(f"# load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
