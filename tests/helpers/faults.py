"""The fault-injection suite's helpers (its fixtures are in tests/faults/conftest.py; see
docs/reliability.md).

- The ledger: every test records the faults it injects and the bad inputs it tries, and
  checks that the artifacts a fault must not touch are still the same bytes; the session
  prints the totals ("faults injected", "bad inputs tried", "artifacts lost").
- Workflow helpers: a small config (``FAULTS``), Snakemake runs (blocking or started in the
  background), killing a run with SIGKILL, cloning a finished run, and snapshots of the
  results (every file but the measured times) for byte-for-byte comparison.
- Settings files and the ``geokd`` command line in-process, for the unit-level faults.
- Full and read-only file systems (real ones where mounting is permitted).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers.ledger import LEDGER as LEDGER  # for the fault tests
from tests.helpers.ledger import Ledger as Ledger
from tests.helpers.workflow import TINY, snakemake_command
from tests.helpers.workflow import make_workdir as make_workdir  # for the fault tests
from tests.helpers.workflow import snakemake as run_snakemake

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


#: One protocol, one seed, one teacher: 15 distance blocks (block size 4 on 12 x 12 train and
#: 12 x 12 test sequences: 6 upper-triangle + 9 blocks) and two training jobs.
FAULTS = {
    "datasets": {
        "tiny": {
            "source": "synthetic",
            "synthetic": copy.deepcopy(TINY["datasets"]["tiny"]["synthetic"]),
            "protocols": {"paper": {"train": [1, 2], "test": [3, 4]}},
        }
    },
    "distances": {"block_size": 4},
    "knn": {"k_max": 5, "latency_queries": 2},
    "teacher": {"methods": ["softmax"]},
    "training": {
        "seeds": [0],
        "train": {"epochs": 3, "batch_size": 8},
        "student": {"d_model": 16, "n_heads": 2, "n_layers": 1, "ff_dim": 32},
    },
}


PROTOCOL = Path("results/tiny/paper")


#: What the runs ask for: as ``rule all``, the summary and every matrix (Snakemake recomputes
#: a missing intermediate file only when something asked for needs it).
TARGETS = (
    str(PROTOCOL / "summary.json"),
    str(PROTOCOL / "distances/procrustes/train-train.npy"),
    str(PROTOCOL / "distances/procrustes/test-train.npy"),
)


#: Files holding measured times: they differ from run to run by nature.
TIMINGS = ("timings.json", "latency_")


def smk_command(work: Path, *args: str, cores: int = 2) -> list[str]:
    return snakemake_command(work, *args, cores=cores)


def snakemake(
    work: Path, *args: str, cores: int = 2, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run Snakemake to the end; output in ``.stdout`` (stderr merged)."""
    return run_snakemake(work, *args, cores=cores, check=check, timeout=timeout, merge_stderr=True)


def start(work: Path, *args: str, cores: int = 2, log: str = "run.log") -> subprocess.Popen:
    """Start Snakemake in the background, in its own process group (jobs included)."""
    out = open(work / log, "w")
    return subprocess.Popen(
        smk_command(work, *args, cores=cores),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(
    condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 300
) -> object:
    """Poll ``condition`` every 20 ms until it is truthy; fail if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before the fault point")
        time.sleep(0.02)
    raise AssertionError("fault point not reached in time")


def running_jobs(proc: subprocess.Popen, pattern: str) -> list[psutil.Process]:
    """Descendants of ``proc`` whose command line contains ``pattern``."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for kid in kids:
        try:
            if pattern in " ".join(kid.cmdline()):
                found.append(kid)
        except psutil.Error:
            continue
    return found


def processes_in(work: Path) -> list[psutil.Process]:
    """Live processes whose working directory is ``work`` (Snakemake and its jobs)."""
    found = []
    for p in psutil.process_iter():
        try:
            if Path(p.cwd()) == work and p.pid != os.getpid():
                found.append(p)
        except psutil.Error:
            continue
    return found


def kill_run(proc: subprocess.Popen, work: Path, whole_group: bool = True) -> None:
    """SIGKILL Snakemake (and with ``whole_group`` every job) at once; wait until they are
    gone. Without ``whole_group`` only Snakemake dies and its running jobs go on."""
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if whole_group:
        end = time.monotonic() + 30
        while (left := processes_in(work)) and time.monotonic() < end:
            for p in left:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.1)
        assert not processes_in(work), "processes survived the kill"


def incomplete_marker(work: Path, rel: str) -> Path:
    """Snakemake's marker of an output whose job started but was not recorded as finished."""
    name = base64.urlsafe_b64encode(rel.encode()).decode()
    return work / ".snakemake" / "incomplete" / name


def executed_jobs(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a Snakemake run's output announces."""
    jobs, rule = [], None
    for line in stdout.splitlines():
        s = line.strip()
        if s.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")) and s.endswith(
            ":"
        ):
            rule = s.split()[1].rstrip(":")
            jobs.append((rule, {}))
        elif s.startswith("wildcards:") and rule is not None:
            pairs = (kv.split("=", 1) for kv in s[len("wildcards:") :].split(", "))
            jobs[-1] = (rule, {k.strip(): v.strip() for k, v in pairs})
    return jobs


def snapshot(work: Path, include_timings: bool = False) -> dict[str, bytes]:
    """Every file under data/ and results/ (relative path -> bytes), measured times left out."""
    files = {}
    for top in ("data", "results"):
        for path in sorted((work / top).rglob("*")):
            if not path.is_file():
                continue
            if not include_timings and path.name.startswith(TIMINGS):
                continue
            files[str(path.relative_to(work))] = path.read_bytes()
    return files


def assert_same_results(work: Path, reference: dict[str, bytes]) -> None:
    """The run in ``work`` holds exactly the reference's files, byte for byte."""
    got = snapshot(work)
    assert sorted(got) == sorted(reference), set(got) ^ set(reference)
    differ = [rel for rel in reference if got[rel] != reference[rel]]
    assert not differ, f"not byte-identical to the uninterrupted run: {differ}"


def clone_run(src: Path, root: Path, drop: tuple[str, ...] = ()) -> Path:
    """Copy a finished run (files, times and Snakemake's metadata), without ``drop`` paths."""
    work = root / "work"
    shutil.copytree(src, work, symlinks=True, ignore=shutil.ignore_patterns("*.log", "locks"))
    (work / ".snakemake" / "locks").mkdir(exist_ok=True)
    for rel in drop:
        target = work / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    return work


def faults_config(**changes) -> dict:
    """A deep copy of FAULTS with top-level sections replaced."""
    config = copy.deepcopy(FAULTS)
    config.update(changes)
    return config


_SETTINGS_DIR = Path(tempfile.mkdtemp(prefix="geokd-settings-"))


_SETTINGS_DIR.chmod(0o755)  # readable by the unprivileged user of test_disk_full.py


def settings_file(values: dict | str) -> Path:
    """A ``--settings`` file holding ``values`` (a dict, or text written as given)."""
    text = values if isinstance(values, str) else json.dumps(values)
    path = _SETTINGS_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    path.write_text(text)
    return path


TRAIN_SETTINGS = settings_file(
    {
        "train": {"epochs": 1, "batch_size": 8},
        "student": {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16},
    }
)


def cli(*argv: object) -> int:
    """``geokd`` in-process; raises when the command fails."""
    from geokd.cli import main

    rc = main([str(a) for a in argv])
    if rc != 0:
        raise AssertionError(f"geokd {' '.join(map(str, argv))} failed with {rc}")
    return rc


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m"):
    """A small tmpfs mounted on ``path`` (created); skips the test where mounting is not
    permitted (not root, or a container without CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); RLIMIT_FSIZE tests run")
    try:
        yield path
    finally:
        _umount(path)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` with one file until ENOSPC; return that file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def read_only(path: Path):
    """Make the folder ``path`` read-only for everybody, root included, with a read-only bind
    mount of it onto itself; skips the test where mounting is not permitted."""
    done = _mount("--bind", str(path), str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip()})")
    try:
        ro = _mount("-o", "remount,bind,ro", str(path))
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({ro.stderr.strip()})")
        yield path
    finally:
        _umount(path)


def summarize_argv(p: dict, out: Path, **over) -> list:
    """`geokd summarize` argv over the project fixture's step files into ``out``; ``over``
    replaces the values of options (e.g. ``{"--knn": [bad_file]}``)."""
    args = {
        "--knn": [p["knn"]],
        "--teacher": [p["soft"].with_suffix(".json")],
        "--latency": [p["latency"]],
        "--run": sorted(p["models"].glob("*/seed0/metrics.json")),
        "--run-timings": sorted(p["models"].glob("*/seed0/timings.json")),
        **over,
    }
    argv = [
        "summarize",
        out / "summary.json",
        "--timings-out",
        out / "timings.json",
        "--dataset",
        "tiny",
        "--protocol",
        "paper",
        "--store",
        p["store"],
    ]
    for option, values in args.items():
        argv += [option, *values]
    return argv


def project_paths(root: Path) -> dict[str, Path]:
    """The files of the tiny project (:func:`build_project`) in ``root``."""
    p = {
        "root": root,
        "store": root / "sequences.parquet",
        "split": root / "split.tsv",
        "tt": root / "distances" / "train-train.npy",
        "et": root / "distances" / "test-train.npy",
        "soft": root / "teacher" / "softmax.parquet",
        "soft2": root / "teacher" / "nngk.parquet",
        "knn": root / "knn" / "procrustes.json",
        "latency": root / "knn" / "latency_procrustes.json",
        "models": root / "models",
        "summary": root / "summary.json",
    }
    p["block"] = p["tt"].parent / "train-train" / "block_0_0.npy"
    p["block2"] = p["tt"].parent / "train-train" / "block_0_1.npy"
    p["ckpt"] = p["models"] / "distilled" / "seed0" / "model.pt"
    p["ckpt2"] = p["models"] / "transformer" / "seed0" / "model.pt"
    return p


def build_project(root: Path) -> None:
    """Store, split, blocks, matrices, soft labels, KNN, two students and a summary of a tiny
    synthetic dataset in ``root``, each written by its ``geokd`` subcommand."""
    p = project_paths(root)
    cli(
        "ingest",
        "synthetic",
        p["store"],
        "--n-classes",
        3,
        "--n-subjects",
        4,
        "--n-trials",
        2,
        "--min-frames",
        6,
        "--max-frames",
        10,
        "--seed",
        3,
    )
    cli("split", p["store"], p["split"], "--train", 1, 2, "--test", 3, 4)
    from geokd.distances.shards import planned_blocks

    for query, out in (("train", p["tt"]), ("test", p["et"])):
        blocks = []
        for bi, bj in planned_blocks(p["split"], query, "train", 8):
            block = out.parent / out.stem / f"block_{bi}_{bj}.npy"
            cli(
                "distances",
                "block",
                p["store"],
                p["split"],
                block,
                "--block",
                bi,
                bj,
                "--query",
                query,
                "--reference",
                "train",
                "--block-size",
                8,
                "--threads",
                1,
            )
            blocks.append(block)
        cli(
            "distances",
            "assemble",
            p["store"],
            p["split"],
            out,
            *blocks,
            "--query",
            query,
            "--reference",
            "train",
            "--block-size",
            8,
        )
    for method, out in (("softmax", p["soft"]), ("nngk", p["soft2"])):
        cli("teacher", p["tt"], p["split"], out, out.with_suffix(".json"), "--method", method)
    cli("knn", p["et"], p["split"], p["knn"], "--k-max", 3)
    cli("knn-latency", p["store"], p["split"], p["latency"], "--n-queries", 1)
    runs = []
    for mode in ("transformer", "distilled"):
        out = p["models"] / mode / "seed0"
        extra = ["--soft-labels", p["soft"]] if mode == "distilled" else []
        cli(
            "train",
            p["store"],
            p["split"],
            out,
            "--mode",
            mode,
            "--threads",
            1,
            "--settings",
            TRAIN_SETTINGS,
            *extra,
        )
        runs.append(out)
    cli(
        "summarize",
        p["summary"],
        "--timings-out",
        root / "timings.json",
        "--dataset",
        "tiny",
        "--protocol",
        "paper",
        "--store",
        p["store"],
        "--knn",
        p["knn"],
        "--teacher",
        p["soft"].with_suffix(".json"),
        "--latency",
        p["latency"],
        "--run",
        *(r / "metrics.json" for r in runs),
        "--run-timings",
        *(r / "timings.json" for r in runs),
    )
