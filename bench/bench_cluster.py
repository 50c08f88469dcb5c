"""A whole geokd run through the SLURM profile on the local single-node cluster, measured.

    python bench/bench_cluster.py run [--config config/signum_midscale.yaml] [--workdir DIR]
    python bench/bench_cluster.py table DIR [--node-cores 32]

``run`` starts the throwaway SLURM cluster of the tests (tests/helpers/slurm_cluster.py: Debian's
slurmctld, slurmd and munge; needs root), copies ``--config`` into a fresh work folder, and runs
the workflow there with ``--workflow-profile workflow/profiles/slurm`` as shipped except for
what a cluster without slurmdbd needs (``write_test_profile`` of tests/helpers/slurm_cluster.py:
``squeue`` status checks, the local partition) and ``--block-threads`` / ``--train-threads``
cores per job: every distance block and every training run is one SLURM job. It records the
wall time and Snakemake's log (``DIR/run.json``, ``DIR/snakemake.log``), then prints the table.

``table`` reads a finished work folder: per rule the jobs, their run time and peak memory from
Snakemake's benchmark files (``benchmarks/<rule>/...tsv``: ``s``, ``max_rss``), each stage's wall
time (first submission to last finish, from the timestamps of Snakemake's log), the scheduler
overhead per job (the stage's idle job-slot time: wall x slots minus the jobs' run times, per
job; slots = CPUs / cores per job, 1 for the ingest chain), the
frame pairs per core-second of the distance blocks, and from these measured figures the
projected wall time of the full SIGNUM signer protocol (10,001 sequences: bench_signum_scale)
on 1, 8 and 64 nodes of ``--node-cores`` cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

BIN = Path(sys.executable).parent
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
SNAKEFILE = ROOT / "workflow" / "Snakefile"

#: Snakemake's stage of each rule, in pipeline order
STAGES = {
    "ingest": ("synthetic_signum", "ingest_signum", "ingest_synthetic", "ingest_utd_mhad"),
    "split": ("split",),
    "distances": ("distance_block",),
    "assembly": ("distance_matrix",),
    "teacher": ("soft_labels",),
    "knn": ("knn", "knn_latency"),
    "training": ("train",),
    "report": ("summary", "dvc_metrics", "paper_tables", "report_html"),
}


def run(args: argparse.Namespace) -> Path:
    from tests.helpers.slurm_cluster import SlurmCluster, missing_requirements, write_test_profile

    reason = missing_requirements()
    if reason:
        sys.exit(f"bench_cluster: {reason}")
    work = Path(args.workdir or f"/tmp/geokd-cluster-{date.today()}").resolve()
    if work.exists() and any(work.iterdir()):
        sys.exit(f"bench_cluster: {work} exists and is not empty; give a new --workdir")
    (work / "config").mkdir(parents=True)
    config = yaml.safe_load(Path(args.config).read_text())
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with SlurmCluster(work / ".cluster") as cluster:
        profile = write_test_profile(PROFILE, work / ".profile", max_threads=cluster.cpus)
        settings = yaml.safe_load((profile / "config.yaml").read_text())
        settings["set-threads"]["distance_block"] = args.block_threads
        settings["set-threads"]["train"] = args.train_threads
        (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        cmd = [str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE), "--directory", str(work)]
        cmd += ["--workflow-profile", str(profile), *args.targets]
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        print(f"# {' '.join(cmd)}", flush=True)
        started = time.time()
        with open(work / "snakemake.log", "w") as log:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        wall = time.time() - started
    facts = {
        "date": str(date.today()),
        "host": platform.node(),
        "cpus": cluster.cpus,
        "config": str(args.config),
        "targets": args.targets,
        "block_threads": args.block_threads,
        "train_threads": args.train_threads,
        "started": started,
        "wall_s": wall,
        "returncode": done.returncode,
        "command": cmd,
    }
    (work / "run.json").write_text(json.dumps(facts, indent=1) + "\n")
    if done.returncode != 0:
        sys.exit(f"bench_cluster: the run failed (exit {done.returncode}): {work}/snakemake.log")
    return work


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")
_JOBID = re.compile(r"^\s+jobid: (\d+)")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):")
_FINISHED = re.compile(r"Finished jobid: (\d+)")


def log_jobs(text: str) -> dict[int, dict]:
    """Snakemake job id -> rule, submission time and finish time (epoch s) from its log."""
    jobs: dict[int, dict] = {}
    stamp = None
    rule = None
    for line in text.splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            stamp = stamp.timestamp()
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule:
            jobs.setdefault(int(m.group(1)), {"rule": rule, "submitted": stamp})
            rule = None
        elif m := _FINISHED.search(line):
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))]["finished"] = stamp
    return jobs


def benchmark_rows(work: Path) -> dict[str, list[dict]]:
    """Rule -> one row per benchmark file (``s``, ``max_rss`` in MB, the file)."""
    rows: dict[str, list[dict]] = {}
    for tsv in sorted((work / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(work / "benchmarks").parts[0]
        lines = tsv.read_text().splitlines()
        if len(lines) < 2:
            continue
        head, values = lines[0].split("\t"), lines[-1].split("\t")
        row = dict(zip(head, values, strict=True))
        rss = row.get("max_rss", "NA")
        rows.setdefault(rule, []).append(
            {"s": float(row["s"]), "max_rss": float(rss) if rss not in ("", "NA", "-") else 0.0}
            | {"file": str(tsv.relative_to(work))}
        )
    return rows


def block_rate(work: Path) -> tuple[float, float]:
    """(frame pairs, thread-seconds) of every distance block, from the blocks' log lines."""
    pairs = seconds = 0.0
    line = re.compile(r"([\d.e+]+) frame pairs in ([\d.]+) s")
    for log in (work / "logs").rglob("*.log"):
        if "distance_block" not in str(log):
            continue
        for m in line.finditer(log.read_text(errors="replace")):
            pairs += float(m.group(1))
            seconds += float(m.group(2))
    return pairs, seconds


def table(work: Path, node_cores: int, out=sys.stdout) -> dict:
    from bench_signum_scale import SIGNUM, signum_jobs, signum_pairs

    facts = json.loads((work / "run.json").read_text())
    jobs = log_jobs((work / "snakemake.log").read_text(errors="replace"))
    bench = benchmark_rows(work)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    print(f"# {facts['date']}  {facts['host']}: {facts['cpus']} CPUs, {facts['config']}", file=out)
    print(f"# whole run through SLURM: {facts['wall_s'] / 60:.1f} min wall", file=out)
    print(
        "| stage | rules | jobs | stage wall (min) | job run time mean / max (s) "
        "| peak RSS max (MB) | scheduler overhead per job (s) |",
        file=out,
    )
    print("|---|---|---:|---:|---:|---:|---:|", file=out)
    summary: dict = {"wall_s": facts["wall_s"], "stages": {}}
    all_overheads = []
    for stage, rules in STAGES.items():
        mine = [j for j in jobs.values() if j["rule"] in rules and j.get("finished")]
        rows = [r for rule in rules for r in bench.get(rule, [])]
        if not mine or not rows:
            continue
        wall = max(j["finished"] for j in mine) - min(j["submitted"] for j in mine)
        runs = [r["s"] for r in rows]
        # scheduler overhead: the job slots' idle time during the stage, per job (submission,
        # start-up, status polling: what the slots did not spend running this stage's jobs)
        threads = {"distances": facts["block_threads"], "training": facts["train_threads"]}
        slots = max(1, min(len(mine), facts["cpus"] // threads.get(stage, 1)))
        slots = 1 if stage == "ingest" else slots  # generate, then ingest: a chain
        over = [max(0.0, wall * slots - sum(runs)) / len(mine)]
        all_overheads += over * len(mine)
        present = sorted({j["rule"] for j in mine})
        summary["stages"][stage] = {
            "jobs": len(mine),
            "wall_s": wall,
            "run_mean_s": statistics.mean(runs),
            "run_max_s": max(runs),
            "rss_max_mb": max(r["max_rss"] for r in rows),
            "overhead_per_job_s": over[0],
        }
        s = summary["stages"][stage]
        over_txt = f"{s['overhead_per_job_s']:.0f}"
        print(
            f"| {stage} | {', '.join(present)} | {len(mine)} | {wall / 60:.1f} | "
            f"{s['run_mean_s']:.1f} / {s['run_max_s']:.1f} | {s['rss_max_mb']:.0f} | {over_txt} |",
            file=out,
        )
    pairs, thread_s = block_rate(work)
    threads = facts["block_threads"]
    rate = pairs / thread_s if thread_s else float("nan")  # frame pairs per block-second
    per_core = rate / threads
    overhead = statistics.median(all_overheads) if all_overheads else 0.0
    summary |= {"frame_pairs": pairs, "block_seconds": thread_s, "pairs_per_core_s": per_core}
    summary["overhead_median_s"] = overhead
    print(
        f"\ndistance blocks: {pairs:.3g} frame pairs in {thread_s / 60:.1f} block-minutes at "
        f"{threads} thread(s) each: {rate / 1e6:.1f} M frame pairs/s per block, "
        f"{per_core / 1e6:.1f} M per core",
        file=out,
    )
    print(f"scheduler overhead per job (median over all jobs): {overhead:.0f} s", file=out)
    print(
        "(overhead per job: the stage's wall time x its job slots (CPUs / cores per job, at most "
        "its jobs) minus the jobs' run times, divided by the jobs)",
        file=out,
    )
    # projection: the full signer protocol (10,001 sequences, 80 frames), block_size as here
    block_size = config["distances"]["block_size"]
    full_cells = signum_pairs() * 80 * 80
    full_jobs = signum_jobs(block_size)
    n_train = SIGNUM["train"]
    ds = next(iter(config["datasets"].values()))
    mid_train = len(ds["protocols"]["signer"]["train"]) * ds["synthetic_signum"]["n_signs"]
    train_stage = summary["stages"].get("training", {})
    # training scales with the training set (epochs fixed): its measured mean x size ratio
    train_s = train_stage.get("run_mean_s", 0.0) * n_train / mid_train
    n_train_jobs = train_stage.get("jobs", 0)
    assembly = summary["stages"].get("assembly", {}).get("run_max_s", 0.0)
    scale = (n_train / mid_train) ** 2
    print(
        f"\nprojection to full SIGNUM (signer protocol, 10,001 sequences x 80 frames: "
        f"{full_cells:.3g} frame pairs, {full_jobs} blocks of {block_size}); nodes of "
        f"{node_cores} cores, blocks of 1 core, {overhead:.0f} s overhead per job, "
        f"assembly x{scale:.0f} the measured {assembly:.0f} s, {n_train_jobs} training jobs "
        f"of {train_s / 60:.0f} min each (measured mean x {n_train}/{mid_train} training "
        "sequences):",
        file=out,
    )
    print("| nodes | cores | distances (h) | + assembly, training (h) |", file=out)
    print("|---:|---:|---:|---:|", file=out)
    projection = {}
    for nodes in (1, 8, 64):
        cores = nodes * node_cores
        one_block = block_size * block_size * 80 * 80 / per_core + overhead
        dist = max((full_cells / per_core + full_jobs * overhead) / cores, one_block)
        waves = math.ceil(n_train_jobs * facts["train_threads"] / cores) if n_train_jobs else 0
        total = dist + assembly * scale + waves * (train_s + overhead)
        projection[nodes] = {"distances_h": dist / 3600, "total_h": total / 3600}
        print(f"| {nodes} | {cores} | {dist / 3600:.2f} | {total / 3600:.2f} |", file=out)
    summary["projection"] = projection
    (work / "table.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the workflow through SLURM, then print the table")
    r.add_argument("--config", default=str(ROOT / "config" / "signum_midscale.yaml"))
    r.add_argument("--workdir", help="a new folder (default /tmp/geokd-cluster-<date>)")
    r.add_argument("--block-threads", type=int, default=1, help="cores per block job [1]")
    r.add_argument("--train-threads", type=int, default=1, help="cores per training job [1]")
    r.add_argument("--node-cores", type=int, default=32)
    r.add_argument("targets", nargs="*", default=["results/report.html"])
    t = sub.add_parser("table", help="the table of a finished work folder")
    t.add_argument("workdir", type=Path)
    t.add_argument("--node-cores", type=int, default=32)
    args = ap.parse_args(argv)
    work = run(args) if args.command == "run" else args.workdir
    table(Path(work), args.node_cores)


if __name__ == "__main__":
    main()
