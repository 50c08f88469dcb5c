"""Stale and lost results: what must make the workflow recompute, and what must not.

- Raw files edited in place (UTD-MHAD ``.mat``, SIGNUM ``.npy`` behind its manifest; same
  name, same times, new content) rerun ingest and exactly what depends on it; an unchanged
  or merely touched raw folder reruns nothing.
- A change of the geokd code or of a rule's command reruns the jobs; an unchanged copy of
  the project, or a comment-only change, reruns nothing.
- A deleted or damaged model or soft-label file is noticed and recomputed (byte-identical),
  and ``geokd verify --delete`` says only what the next run does.
- Every path in a rule's command is quoted (a raw folder with a space runs), and every rule's
  shell ``exec``s its step: killing a job's process leaves no step running.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import psutil
import pytest
import scipy.io

from geokd.cli import main
from tests.helpers.faults import (
    BIN,
    PROTOCOL,
    ROOT,
    TARGETS,
    clone_run,
    executed_jobs,
    kill_run,
    make_workdir,
    snakemake,
    snapshot,
    start,
    wait_for,
)

RULES = ROOT / "workflow" / "rules"
MODELS = PROTOCOL / "models"


def _flip(path: Path, where: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    data[int(where * (len(data) - 1))] ^= 0x10
    path.write_bytes(bytes(data))


def _overwrite_in_place(path: Path, data: bytes) -> None:
    """Rewrite ``path``'s bytes in the same inode, then put back its and its folder's times:
    only the content (and the inode's change time, which nobody can set) differs."""
    st, folder = path.stat(), path.parent.stat()
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns


def _jobs(done: subprocess.CompletedProcess) -> list[str]:
    """The rules of the jobs a run executed (or planned); the training rules, one per group of
    seeds trained at once (``train_seeds0_1``, ...), count as ``train``."""
    return sorted(
        "train" if rule.startswith("train_seeds") else rule
        for rule, _ in executed_jobs(done.stdout)
    )


def _nothing_to_do(work: Path, *targets: str, **kw) -> None:
    done = snakemake(work, "-n", *targets, **kw)
    assert "Nothing to be done" in done.stdout, _jobs(done)


# ---------------------------------------------------------------------------------------------
# The rules' commands (read from workflow/rules/*.smk)
# ---------------------------------------------------------------------------------------------


def shell_commands() -> dict[str, str]:
    """Rule name -> its shell command (the concatenated string literals after ``shell:``)."""
    found = {}
    for smk in sorted(RULES.glob("*.smk")):
        rule, lines, in_shell = None, [], False
        for line in [*smk.read_text().splitlines(), ""]:
            head = re.match(r"^(?:rule|checkpoint) (\w+):", line)
            if in_shell and not line.startswith(" " * 8):
                found[rule] = "".join(ast.literal_eval(s.strip()) for s in lines)
                in_shell, lines = False, []
            if head:
                rule = head.group(1)
            elif line.strip() == "shell:":
                in_shell = True
            elif in_shell:
                lines.append(line)
    return found


def test_every_rule_execs_its_step(ledger):
    """The job's shell becomes the step (no shell left to kill while the step runs on)."""
    commands = shell_commands()
    assert len(commands) >= 14, sorted(commands)
    ledger.bad_input(len(commands))
    bad = {r: c for r, c in commands.items() if not c.startswith("exec python -m geokd ")}
    assert not bad, bad


def test_every_path_in_a_command_is_quoted(ledger):
    """Each {input...}/{output...}/{log...}/{params...} field carries :q (shell-quoted);
    only wildcards (constrained to [\\w.-]) and the thread count go in bare."""
    commands = shell_commands()
    ledger.bad_input(len(commands))
    bare = {}
    for rule, cmd in commands.items():
        fields = re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", cmd)
        unquoted = [
            f
            for f in fields
            if not f.endswith(":q") and not f.startswith(("wildcards.", "threads"))
        ]
        if unquoted:
            bare[rule] = unquoted
    assert not bare, bare


# ---------------------------------------------------------------------------------------------
# Raw files (UTD-MHAD and SIGNUM): a content change reruns ingest and what follows, only that
# ---------------------------------------------------------------------------------------------


def _utd_config(raw: Path) -> dict:
    return {
        "datasets": {
            "real": {
                "source": "utd_mhad",
                "raw_dir": str(raw),
                "protocols": {"p": {"train": [1, 2], "test": [3]}},
            }
        }
    }


@pytest.mark.faults
@pytest.mark.workflow
def test_a_raw_folder_with_a_space_in_its_name_runs(fake_utd, tmp_path, ledger):
    raw = tmp_path / "raw data" / "utd mhad"
    shutil.copytree(fake_utd, raw)
    work = make_workdir(tmp_path, _utd_config(raw))
    ledger.bad_input()
    done = snakemake(work, "results/real/p/split.tsv", check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (work / "data/interim/real/sequences.parquet").is_file()


@pytest.mark.faults
@pytest.mark.workflow
def test_a_utd_mhad_file_edited_in_place_reruns_ingest_and_what_follows(fake_utd, tmp_path, ledger):
    work = make_workdir(tmp_path, _utd_config(fake_utd))
    target = "results/real/p/split.tsv"
    snakemake(work, target)
    store = work / "data/interim/real/sequences.parquet"
    before = store.read_bytes()
    _nothing_to_do(work, target)
    # a touched file (new time, same bytes) is no change
    mat = fake_utd / "a1_s2_t1_skeleton.mat"
    os.utime(mat)
    _nothing_to_do(work, target)
    # new content under the same name, times put back
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"d_skel": np.random.default_rng(99).normal(size=(20, 3, 7))})
    _overwrite_in_place(mat, buf.getvalue())
    ledger.fault()
    dry = snakemake(work, "-n", target)
    assert _jobs(dry) == ["ingest_utd_mhad", "split"], dry.stdout[-3000:]
    done = snakemake(work, target)
    assert _jobs(done) == ["ingest_utd_mhad", "split"]
    assert store.read_bytes() != before
    _nothing_to_do(work, target)


@pytest.mark.faults
@pytest.mark.workflow
def test_a_signum_sample_edited_in_place_reruns_ingest_and_what_follows(tmp_path, ledger):
    from geokd.data.signum_synthetic import write_synthetic_signum
    from geokd.settings import SignumSyntheticConfig

    raw = tmp_path / "signum"
    cfg = SignumSyntheticConfig(n_signs=2, n_signers=25, min_frames=6, max_frames=9)
    write_synthetic_signum(raw, cfg)
    config = {
        "datasets": {
            "sig": {
                "source": "signum",
                "manifest": str(raw / "manifest.csv"),
                "protocols": {"signer": {"train": list(range(1, 11)), "test": [11, 12, 13]}},
            }
        }
    }
    work = make_workdir(tmp_path, config)
    target = "results/sig/signer/split.tsv"
    snakemake(work, target)
    store = work / "data/interim/sig/sequences.parquet"
    before = store.read_bytes()
    _nothing_to_do(work, target)
    rel = (raw / "manifest.csv").read_text().splitlines()[1].split(",")[0]
    sample = raw / rel
    array = np.load(sample)
    buf = io.BytesIO()
    np.save(buf, array + 0.01)
    _overwrite_in_place(sample, buf.getvalue())
    ledger.fault()
    dry = snakemake(work, "-n", target)
    assert _jobs(dry) == ["ingest_signum", "split"], dry.stdout[-3000:]
    snakemake(work, target)
    assert store.read_bytes() != before
    _nothing_to_do(work, target)


# ---------------------------------------------------------------------------------------------
# Code: a change of geokd or of a rule's command reruns; an unchanged project does not
# ---------------------------------------------------------------------------------------------


def _project_copy(root: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("workflow", "src"):
        shutil.copytree(ROOT / part, root / part, ignore=ignore)
    return root


def _dry_run_with(project: Path, work: Path) -> subprocess.CompletedProcess:
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(project / "workflow" / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        "2",
        "-n",
        *TARGETS,
    ]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    return done


@pytest.mark.faults
@pytest.mark.workflow
def test_a_code_change_reruns_and_an_unchanged_project_does_not(tmp_path, reference_run, ledger):
    work = clone_run(reference_run["work"], tmp_path)
    project = _project_copy(tmp_path / "project")
    # the same code and rules elsewhere: nothing to do
    assert "Nothing to be done" in _dry_run_with(project, work).stdout
    # comments and docstrings do not shape results
    settings = project / "src/geokd/settings.py"
    original = settings.read_text()
    settings.write_text(original.replace('"""', '"""A reworded docstring. ', 1) + "\n# a note\n")
    assert "Nothing to be done" in _dry_run_with(project, work).stdout
    # a code change in a top-level module (imported by every stage) reruns every job
    settings.write_text(original + "\nCODE_CHANGE_PROBE = 1\n")
    ledger.fault()
    rules = set(_jobs(_dry_run_with(project, work)))
    assert {"ingest_synthetic", "split", "distance_matrix", "train", "summary"} <= rules, rules
    settings.write_text(original)
    assert "Nothing to be done" in _dry_run_with(project, work).stdout
    # a change in a stage's package reruns that stage and the later ones, not the earlier ones
    for module, first, untouched in (
        ("models/teacher.py", {"soft_labels", "train", "knn", "summary"}, {"distance_matrix"}),
        ("report/tables.py", {"summary"}, {"train", "soft_labels", "distance_matrix"}),
    ):
        path = project / "src/geokd" / module
        before = path.read_text()
        path.write_text(before + "\nCODE_CHANGE_PROBE = 1\n")
        ledger.fault()
        rules = set(_jobs(_dry_run_with(project, work)))
        assert first <= rules and not untouched & rules, (module, rules)
        path.write_text(before)
    # an edited rule command reruns that rule and what follows it
    splits = project / "workflow/rules/splits.smk"
    text = splits.read_text()
    assert text.count('2>&1"') == 1
    splits.write_text(text.replace('2>&1"', '2>&1 "'))
    ledger.fault()
    rules = set(_jobs(_dry_run_with(project, work)))
    assert {"split", "train", "summary"} <= rules and "ingest_synthetic" not in rules, rules


# ---------------------------------------------------------------------------------------------
# Lost or damaged models and soft labels are recomputed; verify says what the run does
# ---------------------------------------------------------------------------------------------


def _same_as_reference(work: Path, reference: dict[str, bytes]) -> None:
    """Every file of the reference run is there with the same bytes (the default target
    builds the report and tables besides)."""
    got = snapshot(work)
    differ = [rel for rel, data in reference.items() if got.get(rel) != data]
    assert not differ, f"not byte-identical to the uninterrupted run: {differ}"


@pytest.mark.faults
@pytest.mark.workflow
def test_a_lost_model_or_soft_label_file_is_recomputed(tmp_path, reference_run, ledger, capsys):
    """With the default target (`snakemake`, rule all), as the docs and `verify` say."""
    work = clone_run(reference_run["work"], tmp_path)
    snakemake(work)  # the report and tables, which the reference run did not ask for
    _nothing_to_do(work)
    model = work / MODELS / "transformer/seed0/model.pt"
    soft = work / PROTOCOL / "teacher/softmax.parquet"
    # a deleted model: its training job runs again
    model.unlink()
    ledger.fault()
    done = snakemake(work)
    assert {"train", "summary"} <= set(_jobs(done)), _jobs(done)
    _same_as_reference(work, reference_run["files"])
    # a damaged model: the summary refuses it, naming it; verify --delete; the rerun redoes it
    _flip(model)
    ledger.fault()
    keep = {k: v for k, v in snapshot(work).items() if k != str(model.relative_to(work))}
    done = snakemake(work, check=False)
    assert done.returncode != 0
    log = (work / "logs/summary/tiny/paper.log").read_text()
    assert f"geokd: error: {model.relative_to(work)}: checksum mismatch" in log, log
    ledger.intact({k: v for k, v in keep.items() if "summary" not in k}, work)
    capsys.readouterr()
    assert main(["verify", "--delete", str(work / "results")]) == 0
    said = capsys.readouterr()
    assert "1 damaged" in said.out and str(model) in said.err, said
    assert not model.exists()
    done = snakemake(work)
    assert {"train", "summary"} <= set(_jobs(done)), _jobs(done)
    _same_as_reference(work, reference_run["files"])
    # deleted soft labels (their dependents exist): recomputed, and what reads them
    soft.unlink()
    ledger.fault()
    done = snakemake(work)
    rules = _jobs(done)
    assert {"soft_labels", "train", "summary"} <= set(rules), rules
    _same_as_reference(work, reference_run["files"])
    _nothing_to_do(work)


# ---------------------------------------------------------------------------------------------
# A job's process is its step: killing it leaves nothing running
# ---------------------------------------------------------------------------------------------


def _steps(pattern: str, work: Path) -> list[psutil.Process]:
    """Live Python processes in ``work`` whose command line contains ``pattern``."""
    found = []
    for p in psutil.process_iter():
        try:
            cmd = " ".join(p.cmdline())
            if pattern in cmd and "python" in Path(p.exe()).name and Path(p.cwd()) == work:
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.mark.faults
@pytest.mark.workflow
def test_killing_a_job_leaves_no_step_running(tmp_path, reference_run, ledger):
    """SIGKILL to the process Snakemake started for a training job (the job's shell, were
    there one): no trainer may run on, orphaned, to write outputs later."""
    drop = (str(MODELS), str(PROTOCOL / "summary.json"), str(PROTOCOL / "timings.json"))
    work = clone_run(reference_run["work"], tmp_path, drop=drop)
    proc = start(work, *TARGETS, cores=1)
    try:
        step = wait_for(lambda: _steps("-m geokd train ", work), proc)[0]
        job = step
        while job.ppid() != proc.pid:  # up to the process Snakemake started for the job
            job = job.parent()
        job.send_signal(signal.SIGKILL)
        ledger.fault()
        _, alive = psutil.wait_procs([step], timeout=10)
        assert not alive, f"the step outlived its job: {step.cmdline()}"
        # the shell exec'd the step: the job's process was the step itself
        assert job.pid == step.pid
    finally:
        if proc.poll() is None:
            kill_run(proc, work)
        for left in _steps("-m geokd ", work):
            left.kill()
