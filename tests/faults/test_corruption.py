"""Corrupted artifacts: a damaged block, matrix, soft-label file or checkpoint is detected by
its checksum sidecar, reported with its path, and refused (or recomputed); never used.

Unit level: every reader and every subcommand that consumes the artifact, on nine kinds of
damage. Workflow level: a bit-flipped matrix stops the jobs that read it, and after
``geokd verify --delete`` the workflow recomputes it, byte-identical to the first run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from geokd.checksum import verify_tree
from geokd.cli import main
from geokd.distances.shards import load_matrix, read_npy_checked
from geokd.errors import InputError
from geokd.models.checkpoint import load_checkpoint
from geokd.models.teacher import read_soft_labels, soft_labels_metadata
from tests.helpers.faults import (
    PROTOCOL,
    TARGETS,
    TRAIN_SETTINGS,
    assert_same_results,
    clone_run,
    executed_jobs,
    snakemake,
    snapshot,
)


def _flip(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(where * (len(data) - 1))] ^= 0x10
    path.write_bytes(bytes(data))


def _side(path: Path) -> Path:
    return Path(f"{path}.json")


CORRUPTIONS = {
    "truncated to half": lambda p, o: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "truncated to 0 bytes": lambda p, o: p.write_bytes(b""),
    "one bit flipped in the middle": lambda p, o: _flip(p, 0.5),
    "one bit flipped in the last byte": lambda p, o: _flip(p, 1.0),
    "garbage appended": lambda p, o: p.write_bytes(p.read_bytes() + b"\0garbage"),
    "replaced by another artifact": lambda p, o: shutil.copyfile(o, p),
    "sidecar deleted": lambda p, o: _side(p).unlink(),
    "sidecar garbage": lambda p, o: _side(p).write_bytes(b"\x00\xff not json"),
    "sidecar of another artifact": lambda p, o: shutil.copyfile(_side(o), _side(p)),
}

#: artifact -> (project key, key of another artifact of its kind, its readers)
ARTIFACTS = {
    "distance block": ("block", "block2", [read_npy_checked]),
    "distance matrix": ("tt", "et", [load_matrix]),
    "soft labels": ("soft", "soft2", [read_soft_labels, soft_labels_metadata]),
    "checkpoint": ("ckpt", "ckpt2", [load_checkpoint]),
}


def _damaged_copy(project, tmp_path, artifact, corruption) -> tuple[Path, dict]:
    """A copy of the project's files in tmp_path with one artifact damaged."""
    key, other, _ = ARTIFACTS[artifact]
    root = tmp_path / "p"
    shutil.copytree(project["root"], root)
    moved = {k: root / v.relative_to(project["root"]) for k, v in project.items() if k != "root"}
    CORRUPTIONS[corruption](moved[key], moved[other])
    return moved[key], moved


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_readers_refuse_a_damaged_artifact_naming_it(
    project, tmp_path, artifact, corruption, ledger
):
    path, _ = _damaged_copy(project, tmp_path, artifact, corruption)
    for reader in ARTIFACTS[artifact][2]:
        ledger.fault()
        with pytest.raises(InputError) as err:
            reader(path)
        assert err.value.where in (str(path), str(_side(path)))
        assert "rerun" in err.value.problem or "sidecar" in err.value.problem
    _, damaged = verify_tree(path.parent)
    assert path in [p for p, _ in damaged], "geokd verify does not report it"


def _consumer_argv(p: dict, artifact: str, out: Path) -> list:
    """The subcommand that reads ``artifact`` (as its rule runs it), writing to ``out``."""
    blocks = sorted((p["tt"].parent / "train-train").glob("block_*.npy"))
    return {
        "distance block": [
            "distances",
            "assemble",
            p["store"],
            p["split"],
            out,
            *blocks,
            "--query",
            "train",
            "--reference",
            "train",
            "--block-size",
            8,
        ],
        "distance matrix": ["teacher", p["tt"], p["split"], out, out.with_suffix(".json")],
        "soft labels": [
            "train",
            p["store"],
            p["split"],
            out,
            "--mode",
            "distilled",
            "--soft-labels",
            p["soft"],
            "--settings",
            TRAIN_SETTINGS,
        ],
    }[artifact]


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("artifact", ["distance block", "distance matrix", "soft labels"])
def test_subcommands_refuse_a_damaged_input_and_write_nothing(
    project, tmp_path, capsys, artifact, corruption, ledger
):
    path, moved = _damaged_copy(project, tmp_path, artifact, corruption)
    out = tmp_path / "out" / "result.bin"
    capsys.readouterr()
    ledger.fault()
    rc = main([str(a) for a in _consumer_argv(moved, artifact, out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("geokd: error: ") and path.name in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.faults
@pytest.mark.workflow
def test_a_corrupted_matrix_stops_the_workflow_then_is_recomputed(tmp_path, reference_run, ledger):
    work = clone_run(reference_run["work"], tmp_path)
    matrix = work / PROTOCOL / "distances/procrustes/train-train.npy"
    _flip(matrix, 0.7)
    ledger.fault()
    # the teacher and the metric students read the train x train matrix
    keep = {
        k: v
        for k, v in snapshot(work).items()
        if "/teacher/" not in k and "/models/metric/" not in k
    }
    # the damaged (hence newer) matrix makes Snakemake rerun its readers: they refuse it
    done = snakemake(work, *TARGETS, check=False)
    assert done.returncode != 0
    log = (work / "logs/soft_labels/tiny/paper/softmax.log").read_text()
    assert f"geokd: error: {matrix.relative_to(work)}: checksum mismatch" in log
    del keep[str(matrix.relative_to(work))]
    ledger.intact(keep, work)  # nothing but the jobs reading the matrix was touched
    # geokd verify finds it; --delete removes it; the workflow recomputes it
    verify = main(["verify", str(work / "results")])
    assert verify == 2
    assert main(["verify", "--delete", str(work / "results")]) == 0
    assert not matrix.exists()
    done = snakemake(work, *TARGETS)
    rules = {rule for rule, _ in executed_jobs(done.stdout)}
    assert {"distance_block", "distance_matrix", "soft_labels", "summary"} <= rules
    assert_same_results(work, reference_run["files"])
