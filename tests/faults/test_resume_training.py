"""Resumable training: a killed training goes on from its last saved state, same bytes.

Issue 15, item 8: a killed long training restarted at epoch 1. Now every
``training.train.resume_every`` epochs the run saves its whole state (model, optimiser,
scheduler, every RNG state, the loop's history and best epoch) in ``<run>/.resume.partial``
(:mod:`geokd.models.resume`); a rerun of the same settings, inputs and code continues from it
and ends with the bytes of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from geokd.models import train as train_module
from geokd.models.config import StudentConfig, TrainConfig
from geokd.models.resume import RESUME_NAME
from geokd.models.runs import run_training, run_trainings
from tests.helpers.faults import BIN, settings_file

#: what must be the same bytes as the uninterrupted run (timings.json holds measured times)
SAME = ("model.pt", "model.pt.json", "history.json", "metrics.json")
OUTPUTS = (*SAME, "timings.json")
STUDENT = StudentConfig(d_model=8, n_heads=2, n_layers=1, ff_dim=16)
#: shuffling, dropout, augmentation, a held-out validation set (best epoch, early stopping)
TRAIN = TrainConfig(
    epochs=9,
    batch_size=4,
    resume_every=2,
    val_fraction=0.25,
    patience=6,
    eval_every=1,
    num_threads=1,
    progress=False,
)
AUGMENTED = replace(STUDENT, augment_rotate=10.0, augment_scale=0.1, augment_frame_drop=0.1)


class Killed(Exception):
    """Stands for the kill: raised by the epoch hook after an epoch."""


def _run(project, out: Path, mode: str, cfg: TrainConfig = TRAIN, scfg=STUDENT) -> dict:
    return run_training(
        project["store"],
        project["split"],
        project["soft"] if mode == "distilled" else None,
        out,
        mode,
        0,
        cfg,
        scfg,
        distances_path=project["tt"] if mode == "metric" else None,
    )


def _kill_after(monkeypatch, epoch: int) -> None:
    def hook(e: int) -> None:
        if e == epoch:
            raise Killed

    monkeypatch.setattr(train_module, "_epoch_finished", hook)


def _record_epochs(monkeypatch) -> list[int]:
    seen: list[int] = []
    monkeypatch.setattr(train_module, "_epoch_finished", seen.append)
    return seen


def _assert_same(out: Path, reference: Path) -> None:
    differ = [n for n in SAME if (out / n).read_bytes() != (reference / n).read_bytes()]
    assert not differ, f"not byte-identical to the uninterrupted run: {differ}"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS), "resume state left behind"


@pytest.mark.parametrize(
    "mode, scfg",
    [
        ("transformer", AUGMENTED),
        ("distilled", STUDENT),
        ("metric", STUDENT),
        ("nngk", replace(STUDENT, nngk_k=3)),
    ],
)
def test_a_run_killed_after_an_epoch_resumes_to_the_same_bytes(
    tmp_path, project, monkeypatch, capsys, ledger, mode, scfg
):
    reference = tmp_path / "uninterrupted"
    _run(project, reference, mode, scfg=scfg)
    assert not (reference / RESUME_NAME).exists()

    out = tmp_path / "run"
    _kill_after(monkeypatch, 7)  # states saved after epochs 2, 4 and 6
    with pytest.raises(Killed):
        _run(project, out, mode, scfg=scfg)
    ledger.fault()
    assert [p.name for p in out.iterdir()] == [RESUME_NAME], "a killed run wrote outputs"

    seen = _record_epochs(monkeypatch)
    capsys.readouterr()
    _run(project, out, mode, scfg=scfg)
    assert f"resuming from epoch 6 of 9: {out / RESUME_NAME}" in capsys.readouterr().err
    assert seen == [7, 8, 9]
    _assert_same(out, reference)


def test_a_killed_group_of_seeds_resumes_and_each_seed_has_its_own_bytes(
    tmp_path, project, monkeypatch, capsys, ledger
):
    """Batched training (several seeds in one job): the group's state is in the first seed's
    folder; the resumed group ends with, for every seed, the bytes of that seed trained alone
    and uninterrupted (fixed-length inputs, one thread: no frame drop)."""
    scfg = replace(STUDENT, resampling="linear", max_frames=8, dropout=0.2, augment_rotate=10.0,
                   augment_scale=0.1)  # fmt: skip
    seeds = [0, 1, 2]
    outs = [tmp_path / "group" / f"seed{s}" for s in seeds]
    _kill_after(monkeypatch, 7)
    with pytest.raises(Killed):
        run_trainings(
            project["store"], project["split"], project["soft"], outs, "distilled", seeds,
            TRAIN, scfg,
        )  # fmt: skip
    ledger.fault()
    assert [p.name for p in outs[0].iterdir()] == [RESUME_NAME], "a killed run wrote outputs"
    assert not any(o.exists() for o in outs[1:])
    seen = _record_epochs(monkeypatch)
    capsys.readouterr()
    run_trainings(
        project["store"], project["split"], project["soft"], outs, "distilled", seeds, TRAIN,
        scfg,
    )  # fmt: skip
    assert f"resuming from epoch 6 of 9: {outs[0] / RESUME_NAME}" in capsys.readouterr().err
    assert seen == [7, 8, 9]
    monkeypatch.setattr(train_module, "_epoch_finished", lambda e: None)
    for seed, out in zip(seeds, outs, strict=True):
        alone = tmp_path / "alone" / f"seed{seed}"
        run_training(
            project["store"], project["split"], project["soft"], alone, "distilled", seed,
            TRAIN, scfg,
        )  # fmt: skip
        _assert_same(out, alone)


def test_a_state_of_other_settings_or_a_damaged_one_is_ignored(
    tmp_path, project, monkeypatch, capsys, ledger
):
    changed = replace(TRAIN, lr=2e-3)
    reference = tmp_path / "uninterrupted"
    _run(project, reference, "transformer", changed)

    for damage, message in (
        (None, "saved by a run of other settings, inputs or code"),
        ("flip", "damaged (checksum mismatch)"),
        ("truncate", "damaged (checksum mismatch)"),
    ):
        out = tmp_path / f"run-{damage}"
        _kill_after(monkeypatch, 5)
        with pytest.raises(Killed):
            _run(project, out, "transformer", TRAIN if damage is None else changed)
        ledger.fault()
        state = out / RESUME_NAME
        data = bytearray(state.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0x10
        elif damage == "truncate":
            data = data[: len(data) // 2]
        state.write_bytes(bytes(data))
        seen = _record_epochs(monkeypatch)
        capsys.readouterr()
        _run(project, out, "transformer", changed)
        err = capsys.readouterr().err
        assert f"ignoring {state}: {message}; starting at epoch 1" in err, err
        assert seen == list(range(1, 10))
        _assert_same(out, reference)


def test_resume_every_zero_saves_nothing(tmp_path, project, monkeypatch):
    out = tmp_path / "run"
    _kill_after(monkeypatch, 7)
    with pytest.raises(Killed):
        _run(project, out, "transformer", replace(TRAIN, resume_every=0))
    assert not out.exists() or not list(out.iterdir())


# ---------------------------------------------------------------------------------------------
# A real kill of a `python -m geokd train` process, and what Snakemake does with the state
# ---------------------------------------------------------------------------------------------

LONG = {
    "train": {"epochs": 120, "batch_size": 4, "resume_every": 10, "val_fraction": 0.25},
    "student": {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16, "dropout": 0.1},
}


def _train_cmd(project, out: Path) -> list[str]:
    args = (project["store"], project["split"], out, "--threads", 1)
    settings = str(settings_file(LONG))
    return [sys.executable, "-m", "geokd", "train", *map(str, args), "--settings", settings]


@pytest.mark.faults
def test_a_sigkilled_training_process_resumes_to_the_same_bytes(tmp_path, project, ledger):
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(_train_cmd(project, reference), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(project, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        state = out / RESUME_NAME
        end = time.monotonic() + 300
        first = None
        while time.monotonic() < end and proc.poll() is None:
            if state.exists():
                first = first or state.stat().st_mtime_ns
                if state.stat().st_mtime_ns != first:  # saved at least twice: epoch >= 20
                    break
            time.sleep(0.01)
        assert proc.poll() is None, "the training ended before the kill"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    ledger.fault()
    assert not [n for n in OUTPUTS if (out / n).exists()], "the killed run wrote outputs"

    done = subprocess.run(_train_cmd(project, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if "resuming from epoch" in x)
    epoch = int(line.split("resuming from epoch ")[1].split()[0])
    assert epoch >= 20 and line.endswith(f" of 120: {out / RESUME_NAME}"), line
    _assert_same(out, reference)


SNAKEFILE = """
rule all:
    input: "out/a.txt", "out/b.txt"

rule job:
    input: "in.txt"
    output: "out/a.txt", "out/b.txt"
    shell:
        "if [ -e out/{name} ]; then cp out/{name} out/a.txt; echo b > out/b.txt; "
        "else mkdir -p out; echo state > out/{name}; echo partial > out/a.txt; "
        "if [ -e fail ]; then exit 1; fi; sleep 120; fi"
"""


@pytest.mark.faults
@pytest.mark.workflow
def test_snakemake_keeps_the_state_when_it_reruns_a_killed_or_failed_job(tmp_path):
    """The state file is not an output: Snakemake removes a killed (incomplete) or failed
    job's outputs before the rerun, never the other files of their folder."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE).format(name=RESUME_NAME))
    (tmp_path / "in.txt").write_text("input")
    cmd = [str(BIN / "snakemake"), "--cores", "1", "--directory", str(tmp_path)]
    cmd += ["--snakefile", str(tmp_path / "Snakefile")]
    state = tmp_path / "out" / RESUME_NAME

    # killed: Snakemake and its job die; the rerun (--rerun-incomplete) finds the state
    run = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    end = time.monotonic() + 120
    while not (tmp_path / "out" / "a.txt").exists() and time.monotonic() < end:
        assert run.poll() is None
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    time.sleep(0.5)
    assert subprocess.run([*cmd, "--unlock"], capture_output=True).returncode == 0
    done = subprocess.run([*cmd, "--rerun-incomplete"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "a.txt").read_text() == "state\n"  # the job saw the state

    # failed: Snakemake removes the outputs of the failed job, not the state
    (tmp_path / "out" / "b.txt").unlink()
    state.unlink()
    (tmp_path / "fail").touch()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode != 0
    assert not (tmp_path / "out" / "a.txt").exists(), "Snakemake kept a failed job's output"
    assert state.read_text() == "state\n"
    (tmp_path / "fail").unlink()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "a.txt").read_text() == "state\n"
