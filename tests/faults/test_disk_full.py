"""Disk full and read-only output folders: one clear error, the previous outputs intact.

Every subcommand that writes is run twice into one folder: once normally (the "previous good
output"), then, with other settings, on a file system that refuses the write:

- disk full, for real: a small tmpfs filled to the last byte (ENOSPC), where mounting is
  permitted; everywhere: a file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored, so writes
  fail with EFBIG) in a subprocess;
- read-only: a read-only bind mount of the folder (EROFS; root included), where mounting is
  permitted; everywhere: the subcommand run as an unprivileged user (``setpriv``) on a folder
  it may not write (EACCES; chmod alone does not stop root).

The refused run must exit with status 1 and one line ``geokd: error: <output>: <cause>``,
and leave every previous output byte-identical and no temporary file.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from geokd.checksum import verify_sidecar
from geokd.cli import main
from tests.helpers.faults import (
    FAULTS,
    PROTOCOL,
    TARGETS,
    TRAIN_SETTINGS,
    assert_same_results,
    fill,
    make_workdir,
    read_only,
    settings_file,
    snakemake,
    snapshot,
    summarize_argv,
    tmpfs,
)


def _writers(p: dict, out: Path) -> dict[str, tuple[list, list, list[Path]]]:
    """name -> (first argv, second argv with other settings, output files)."""
    blocks = sorted((p["tt"].parent / "train-train").glob("block_*.npy"))
    report = [
        "report",
        out / "report.html",
        "--dataset",
        f"tiny={p['store']}",
        "--split",
        f"tiny/paper={p['split']}",
        "--results",
        f"tiny/paper={p['root']}",
    ]
    summarize = summarize_argv(p, out)
    return {
        "ingest synthetic": (
            ["ingest", "synthetic", out / "s.parquet", "--n-classes", 2, "--seed", 1],
            ["ingest", "synthetic", out / "s.parquet", "--n-classes", 3, "--seed", 2],
            [out / "s.parquet"],
        ),
        "split": (
            ["split", p["store"], out / "split.tsv", "--train", 1, 2, "--test", 3, 4],
            ["split", p["store"], out / "split.tsv", "--train", 1, "--test", 2, 3, 4],
            [out / "split.tsv"],
        ),
        "distances block": (
            [
                "distances",
                "block",
                p["store"],
                p["split"],
                out / "b.npy",
                "--block",
                0,
                0,
                "--query",
                "train",
                "--reference",
                "train",
                "--block-size",
                8,
            ],
            [
                "distances",
                "block",
                p["store"],
                p["split"],
                out / "b.npy",
                "--block",
                0,
                0,
                "--query",
                "train",
                "--reference",
                "train",
                "--block-size",
                8,
                "--metric",
                "euclidean",
            ],
            [out / "b.npy", out / "b.npy.json"],
        ),
        "distances assemble": (
            [
                "distances",
                "assemble",
                p["store"],
                p["split"],
                out / "m.npy",
                *blocks,
                "--query",
                "train",
                "--reference",
                "train",
                "--block-size",
                8,
            ],
            [
                "distances",
                "assemble",
                p["store"],
                p["split"],
                out / "m.npy",
                *blocks,
                "--query",
                "train",
                "--reference",
                "train",
                "--block-size",
                8,
            ],
            [out / "m.npy", out / "m.npy.json"],
        ),
        "teacher": (
            ["teacher", p["tt"], p["split"], out / "t.parquet", out / "t.json"],
            ["teacher", p["tt"], p["split"], out / "t.parquet", out / "t.json", "--method", "nngk"],
            [out / "t.parquet", out / "t.parquet.json", out / "t.json"],
        ),
        "knn": (
            ["knn", p["et"], p["split"], out / "knn.json", "--k-max", 3],
            ["knn", p["et"], p["split"], out / "knn.json", "--k-max", 2],
            [out / "knn.json"],
        ),
        "knn-latency": (
            ["knn-latency", p["store"], p["split"], out / "lat.json", "--n-queries", 1],
            ["knn-latency", p["store"], p["split"], out / "lat.json", "--n-queries", 2],
            [out / "lat.json"],
        ),
        "train": (
            [
                "train",
                p["store"],
                p["split"],
                out / "run",
                "--seed",
                0,
                "--threads",
                1,
                "--settings",
                TRAIN_SETTINGS,
            ],
            [
                "train",
                p["store"],
                p["split"],
                out / "run",
                "--seed",
                1,
                "--threads",
                1,
                "--settings",
                TRAIN_SETTINGS,
            ],
            [
                out / "run" / n
                for n in (
                    "model.pt",
                    "model.pt.json",
                    "history.json",
                    "metrics.json",
                    "timings.json",
                )
            ],
        ),
        "summarize": (
            summarize,
            [*summarize, "--settings", settings_file({"x": 1})],
            [out / "summary.json", out / "timings.json"],
        ),
        "tables": (
            ["tables", out / "tables", "--summary", f"tiny/paper={p['summary']}"],
            ["tables", out / "tables", "--summary", f"tiny/other={p['summary']}"],
            [
                out / "tables" / n
                for n in ("accuracy.csv", "accuracy.tex", "inference.csv", "inference.tex")
            ],
        ),
        "report": (report, report, [out / "report.html"]),
    }


#: The subcommands that write; the slow ones (more than a second) run in the faults pass.
WRITERS = [
    pytest.param(name, marks=pytest.mark.faults) if name in ("report", "train") else name
    for name in _writers(
        {
            k: Path(k)
            for k in (
                "store",
                "split",
                "tt",
                "et",
                "soft",
                "knn",
                "latency",
                "models",
                "summary",
                "root",
            )
        },
        Path("out"),
    )
]


def _run(argv, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


def _prepare(project, out: Path, name: str, capsys):
    first, second, outputs = _writers(project, out)[name]
    rc, err = _run(first, capsys)
    assert rc == 0, err
    return second, outputs, {p: p.read_bytes() for p in outputs}


def _check_refused(rc, err, outputs, before, cause: str):
    assert rc == 1, err
    # progress lines (a training's epochs) may come first; then exactly one error line, last
    errors = [line for line in err if line.startswith("geokd: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    assert all(line.startswith("geokd: epoch ") for line in err[:-1]), err
    err = errors
    named = err[0][len("geokd: error: ") :]
    assert any(named.startswith(f"{p}: ") for p in outputs), err
    assert cause in err[0], err
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
    folders = {p.parent for p in outputs}
    assert not [t for f in folders for t in f.glob(".*.tmp")], "temporary files left"


@pytest.mark.parametrize("name", WRITERS)
def test_disk_full_leaves_previous_outputs_intact(project, tmp_path, capsys, name, ledger):
    with tmpfs(tmp_path / "small", "8m") as out:
        second, outputs, before = _prepare(project, out, name, capsys)
        filler = fill(out)
        ledger.fault()
        rc, err = _run(second, capsys)
        _check_refused(rc, err, outputs, before, "No space left on device")
        filler.unlink()
        ledger.intact({str(p.relative_to(out)): b for p, b in before.items()}, out)


@pytest.mark.parametrize("name", WRITERS)
def test_read_only_folder_leaves_previous_outputs_intact(project, tmp_path, capsys, name, ledger):
    out = tmp_path / "out"
    out.mkdir()
    second, outputs, before = _prepare(project, out, name, capsys)
    with read_only(out):
        ledger.fault()
        rc, err = _run(second, capsys)
    _check_refused(rc, err, outputs, before, "Read-only file system")
    ledger.intact({str(p.relative_to(out)): b for p, b in before.items()}, out)


def _file_size_limit(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return preexec


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed: cannot drop root")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _shared_copy(project) -> tuple[Path, dict]:
    """The project copied into a fresh folder that every user may read (pytest's own temporary
    folders are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="geokd-faults-"))
    root.chmod(0o755)
    shutil.copytree(project["root"], root / "p")
    for path in [root / "p", *(root / "p").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    moved = {
        k: root / "p" / v.relative_to(project["root"]) for k, v in project.items() if k != "root"
    }
    moved["root"] = root / "p"
    return root, moved


@pytest.mark.faults
@pytest.mark.parametrize("name", ["ingest synthetic", "distances assemble", "teacher", "train"])
@pytest.mark.parametrize("fault", ["file size limit", "no write permission"])
def test_refused_writes_in_a_subprocess(project, capsys, name, fault, ledger):
    root, shared = _shared_copy(project)
    try:
        out = root / "out"
        out.mkdir(mode=0o755)
        second, outputs, before = _prepare(shared, out, name, capsys)
        prefix, kw = [], {}
        if fault == "file size limit":
            kw["preexec_fn"] = _file_size_limit(min(len(b) for b in before.values()) // 2)
            cause = "File too large"
        else:
            prefix = _unprivileged()
            if not prefix:
                out.chmod(0o555)
            cause = "Permission denied"
        ledger.fault()
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "geokd", *map(str, second)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=root,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            **kw,
        )
        out.chmod(0o755)
        _check_refused(done.returncode, done.stderr.strip().splitlines(), outputs, before, cause)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.faults
@pytest.mark.workflow
def test_the_disk_fills_during_a_workflow_run(tmp_path, reference_run, ledger):
    """results/ on a tmpfs with 96 KiB left: the run stops at the first job that cannot write,
    every file it wrote is complete; with space freed the rerun ends byte-identical."""
    work = make_workdir(tmp_path, FAULTS)
    with tmpfs(work / "results", "2m") as results:
        filler = fill(results)
        os.truncate(filler, max(0, filler.stat().st_size - 96 * 1024))
        ledger.fault()
        done = snakemake(work, *TARGETS, check=False)
        assert done.returncode != 0
        logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log"))
        assert "No space left on device" in logs
        lines = [ln for ln in logs.splitlines() if "No space left on device" in ln]
        assert all(ln.startswith("geokd: error: results/") for ln in lines), lines
        # what the run wrote is complete and correct, the rest is missing, nothing partial
        written = snapshot(work)
        assert written and not list(results.rglob(".*.tmp"))
        reference = reference_run["files"]
        for rel, data in written.items():
            if rel in reference:
                assert data == reference[rel], rel
            elif "/block_" in rel:  # temporary, so not in the finished reference run
                verify_sidecar(work / rel.removesuffix(".json"))
            else:
                assert rel == "results/filler", rel
        assert str(PROTOCOL / "summary.json") not in written
        filler.unlink()
        snakemake(work, *TARGETS)
        assert_same_results(work, reference)
