"""Orphaned steps: a geokd step dies with its parent and never commits once orphaned.

Issue 15, item 4: killing a job's shell wrapper left the Python step running; it finished
later and atomically replaced a newer run's outputs with the abandoned run's. Now the step
asks the kernel for SIGKILL when its parent dies (:mod:`geokd.lifeline`), and the commit of
:mod:`geokd.atomic` refuses when the step's parent pid has changed since it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from geokd import atomic, lifeline
from tests.helpers.faults import cli, settings_file

LINUX = sys.platform.startswith("linux")
#: a training long enough to be killed in its middle (a few hundred epochs of a tiny model)
LONG_TRAINING = settings_file(
    {
        "train": {"epochs": 3000, "batch_size": 4, "resume_every": 0},
        "student": {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16},
    }
)
OUTPUTS = ("model.pt", "model.pt.json", "history.json", "metrics.json", "timings.json")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("orphans")
    store, split = root / "sequences.parquet", root / "split.tsv"
    cli(
        *("ingest", "synthetic", store, "--n-classes", 3, "--n-subjects", 4),
        *("--n-trials", 2, "--min-frames", 6, "--max-frames", 10, "--seed", 3),
    )
    cli("split", store, split, "--train", 1, 2, "--test", 3, 4)
    return {"store": store, "split": split}


def _train_command(data: dict[str, Path], out: Path, settings: Path = LONG_TRAINING) -> str:
    args = [data["store"], data["split"], out, "--threads", 1, "--settings", settings]
    return f"{sys.executable} -m geokd train " + " ".join(f"'{a}'" for a in args)


def _child_step(shell: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    """The ``python -m geokd`` child of ``shell``, once it has started."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for kid in psutil.Process(shell.pid).children():
            try:
                if "geokd" in " ".join(kid.cmdline()):
                    return kid
            except psutil.Error:
                continue
        assert shell.poll() is None, "the shell ended before its step started"
        time.sleep(0.02)
    raise AssertionError("the step did not start")


def _kill(proc: psutil.Process) -> None:
    try:
        proc.kill()
        proc.wait(timeout=30)
    except psutil.NoSuchProcess:
        pass


@pytest.mark.faults
@pytest.mark.skipif(not LINUX, reason="the parent-death signal is Linux only")
def test_a_step_dies_with_its_killed_shell_and_writes_nothing(tmp_path, data, ledger):
    """``bash -c 'python -m geokd train ...; true'`` (bash stays the step's parent): SIGKILL
    to bash kills the training step at once; it writes none of its outputs."""
    out = tmp_path / "run"
    shell = subprocess.Popen(
        ["bash", "-c", _train_command(data, out) + "; true"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    step = _child_step(shell)
    try:
        time.sleep(4)  # imports done, training under way
        assert step.is_running(), shell.stderr.read().decode()
        os.kill(shell.pid, signal.SIGKILL)
        shell.wait(timeout=30)
        ledger.fault()
        try:
            step.wait(timeout=10)
        except psutil.TimeoutExpired:
            pytest.fail("the orphaned step is still running 10 s after its shell was killed")
        assert not [n for n in OUTPUTS if (out / n).exists()], "the orphan wrote outputs"
    finally:
        _kill(step)
    time.sleep(0.5)
    assert not [n for n in OUTPUTS if (out / n).exists()], "the orphan wrote outputs"


@pytest.mark.faults
def test_a_step_run_by_a_shell_still_finishes(tmp_path, data):
    """The guard does not disturb a normal run: a step under a live shell (as a workflow job,
    with and without ``exec``) ends normally and writes every output."""
    short = settings_file(
        {
            "train": {"epochs": 2, "batch_size": 8},
            "student": {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16},
        }
    )
    for prefix, suffix, name in (("", "; true", "child"), ("exec ", "", "exec")):
        out = tmp_path / name
        done = subprocess.run(
            ["bash", "-c", prefix + _train_command(data, out, short) + suffix],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert all((out / n).exists() for n in OUTPUTS)


@pytest.mark.skipif(not LINUX, reason="prctl is Linux only")
def test_arm_sets_the_parent_death_signal_in_a_geokd_process():
    code = (
        "import ctypes, sys; from geokd import lifeline; armed = lifeline.arm(); "
        "v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); "
        "print(armed, v.value)"
    )
    env = {k: v for k, v in os.environ.items() if k != lifeline.ENV_ALLOW}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["True", str(int(signal.SIGKILL))], done.stderr
    env[lifeline.ENV_ALLOW] = "1"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["False", "0"], done.stderr


def test_arm_is_a_no_op_when_the_parent_is_init(monkeypatch):
    monkeypatch.setattr(lifeline, "_armed", None)
    monkeypatch.delenv(lifeline.ENV_ALLOW, raising=False)
    monkeypatch.setattr(lifeline.os, "getppid", lambda: 1)
    called = []
    monkeypatch.setattr(lifeline, "_set_parent_death_signal", lambda sig: called.append(sig))
    assert lifeline.arm() is False
    assert not called and lifeline._armed is None and lifeline.orphaned() is None


def _orphan(monkeypatch) -> int:
    """Pretend this process was armed under a parent that has since gone."""
    gone = os.getppid() + 1_000_000  # not our parent
    monkeypatch.setattr(lifeline, "_armed", (os.getpid(), gone))
    return gone


def test_the_commit_refuses_when_orphaned(tmp_path, monkeypatch, ledger):
    target, sidecar = tmp_path / "model.pt", tmp_path / "model.pt.json"
    target.write_bytes(b"the newer run's model")
    sidecar.write_bytes(b"the newer run's sidecar")
    gone = _orphan(monkeypatch)
    ledger.fault()
    with pytest.raises(lifeline.OrphanedError, match=f"pid {gone}") as err:
        atomic.write_many({target: b"the orphan's model", sidecar: b"the orphan's sidecar"})
    assert str(target) in str(err.value)
    ledger.intact(
        {"model.pt": b"the newer run's model", "model.pt.json": b"the newer run's sidecar"},
        tmp_path,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.json"]
    # a new target is not created either
    with pytest.raises(lifeline.OrphanedError):
        atomic.write_text(tmp_path / "new.json", "{}")
    assert not (tmp_path / "new.json").exists()


def test_the_commit_goes_ahead_when_current_unarmed_or_forked(tmp_path, monkeypatch):
    monkeypatch.setattr(lifeline, "_armed", (os.getpid(), os.getppid()))
    atomic.write_text(tmp_path / "a", "current")
    monkeypatch.setattr(lifeline, "_armed", None)
    atomic.write_text(tmp_path / "b", "not armed")
    monkeypatch.setattr(lifeline, "_armed", (os.getpid() + 1_000_000, 1))  # a forked worker
    atomic.write_text(tmp_path / "c", "worker")
    assert [(tmp_path / n).read_text() for n in "abc"] == ["current", "not armed", "worker"]


def test_an_orphaned_subcommand_exits_with_one_line_and_writes_nothing(
    tmp_path, data, monkeypatch, capsys
):
    from geokd.cli import main

    _orphan(monkeypatch)
    out = tmp_path / "split.tsv"
    rc = main(["split", str(data["store"]), str(out), "--train", "1", "2", "--test", "3", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"geokd: error: {out}: not written")
    assert not list(tmp_path.iterdir())
