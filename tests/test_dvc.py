"""DVC over the Snakemake workflow (dvc.yaml, docs/dvc.md).

Fast: DVC reads the pipeline, every param is a key of config/config.yaml, every stage lists the
rules and geokd modules it runs, and each stage's targets and outs match the workflow's jobs.
Slow: in a scratch git repository on a small config, `dvc repro`, `dvc push`, then `make pull`
(dvc pull + snakemake --touch) in a fresh clone and in place after deleting the outputs and the
cache: every file comes back byte for byte, and both DVC and Snakemake have nothing to do.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers.dvc import (
    BIN,
    ROOT,
    UP_TO_DATE,
    copy_tree,
    covered,
    dotted,
    dry_run_jobs,
    git,
    rule_files,
    run,
    tracked_files,
)

PACKAGE = ROOT / "src" / "geokd"
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = PIPELINE["stages"]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def stage_command(stage: str) -> tuple[list[str], list[str]]:
    """(targets, allowed rules) of `snakemake --cores all TARGET... --allowed-rules RULE...`."""
    words = shlex.split(STAGES[stage]["cmd"])
    assert words[:3] == ["snakemake", "--cores", "all"], words
    cut = words.index("--allowed-rules")
    return words[3:cut], words[cut + 1 :]


def stage_outs(stage: str) -> list[str]:
    """Every output path of a stage: outs, metrics and plots (a path, or {path: options})."""
    spec = STAGES[stage]
    entries = [*spec.get("outs", []), *spec.get("metrics", []), *spec.get("plots", [])]
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def test_dvc_reads_the_pipeline_and_orders_the_stages():
    dot = run(ROOT, BIN / "dvc", "dag", "--dot")
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', dot))
    for edge in [
        ("ingest", "split"),
        ("split", "distances"),
        ("distances", "teacher"),
        ("distances", "knn"),
        ("teacher", "training"),
        ("training", "report"),
        ("knn", "report"),
    ]:
        assert edge in edges, (edge, sorted(edges))


def test_every_param_is_a_key_of_the_config():
    for stage, spec in STAGES.items():
        for entry in spec.get("params", []):
            assert isinstance(entry, dict) and list(entry) == ["config/config.yaml"], stage
            for key in entry["config/config.yaml"] or []:
                dotted(CONFIG, key)


def test_every_dep_exists_and_each_stage_lists_its_rules_and_code():
    """Each stage depends on its rule files, common.smk and the geokd package (a directory:
    any module can shape a stage's outputs), and its data deps are earlier stages' outs."""
    defined = rule_files()
    for stage, spec in STAGES.items():
        deps = set(spec["deps"])
        code = {d for d in deps if d.startswith(("src/", "workflow/"))}
        for dep in code:
            assert (ROOT / dep).exists(), (stage, dep)
        assert "src/geokd" in code, stage
        assert not [d for d in code if d.startswith("src/geokd/")], (stage, "name the package")
        _, rules = stage_command(stage)
        for rule in rules:
            assert rule in defined, (stage, rule)
        wanted = {"workflow/rules/common.smk"} | {defined[r] for r in rules}
        assert wanted <= code, (stage, sorted(wanted - code))
        # data deps are outputs of earlier stages
        for dep in deps - code:
            assert any(covered(dep, stage_outs(s)) for s in STAGES if s != stage), (stage, dep)


@pytest.mark.workflow
def test_stage_targets_and_outs_match_the_workflow_jobs(tmp_path):
    """A dry run of the default config lists every job: each belongs to one stage, writes only
    inside that stage's outs, and is a target of the stage or feeds one of its jobs."""
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    out = run(
        tmp_path,
        BIN / "snakemake",
        "--snakefile",
        ROOT / "workflow" / "Snakefile",
        "--directory",
        tmp_path,
        "--cores",
        "1",
        "--dry-run",
    )
    jobs = dry_run_jobs(out)
    assert len(jobs) > 20, out[-3000:]
    stage_of = {rule: s for s in STAGES for rule in stage_command(s)[1]}
    assert len(stage_of) == sum(len(stage_command(s)[1]) for s in STAGES), "a rule in two stages"
    for rule, _, _ in jobs:
        assert rule in stage_of, f"no DVC stage runs rule {rule}"
    for stage in STAGES:
        targets, _ = stage_command(stage)
        mine = [(i, o) for r, i, o in jobs if stage_of[r] == stage]
        consumed = {path for inputs, _ in mine for path in inputs}
        produced = {path for _, outputs in mine for path in outputs}
        assert set(targets) <= produced, (stage, sorted(set(targets) - produced))
        for _, outputs in mine:
            assert set(outputs) & (set(targets) | consumed), f"{stage} builds none of {outputs}"
            for path in outputs:
                assert covered(path, stage_outs(stage)), f"{path} is not an out of {stage}"


# The slow round trip ------------------------------------------------------------------------


def small_config() -> dict:
    """The default config, smaller: same dataset, protocols and seeds (dvc.yaml names them)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    synthetic = config["datasets"]["synthetic"]
    synthetic["synthetic"].update(n_classes=3, n_subjects=4, min_frames=12, max_frames=20)
    synthetic["synthetic"].update(n_trials=2, seed=7)
    synthetic["protocols"] = {
        "paper": {"train": [1, 2], "test": [3, 4]},
        "cross_subject": {"train": [1, 3], "test": [2, 4]},
    }
    config["distances"]["block_size"] = 12
    config["knn"].update(k_max=5, latency_queries=1)
    config["training"]["train"].update(epochs=1, batch_size=8)
    config["training"]["student"].update(d_model=16, n_heads=2, n_layers=1, ff_dim=32)
    return config


def pull_and_check(repo: Path, remote: Path, expected: dict[str, str]) -> None:
    (repo / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    run(repo, BIN / "dvc", "remote", "modify", "--local", "demo", "url", remote)
    # -o: the venv is the test's own; never (re)install it from here
    run(repo, "make", "-o", ".venv/.installed", "pull")
    assert tracked_files(repo) == expected
    dry = run(repo, BIN / "snakemake", "--cores", "1", "--dry-run")
    assert "Nothing to be done" in dry, dry[-3000:]
    assert UP_TO_DATE in run(repo, BIN / "dvc", "status")


@pytest.mark.slow
@pytest.mark.workflow
def test_repro_push_pull_round_trip(tmp_path):
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    copy_tree(repo)
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(small_config(), sort_keys=False))
    git(repo, "init", "-q")
    # the venv link below: `.venv/` in .gitignore matches folders, not links
    (repo / ".git" / "info" / "exclude").write_text("/.venv\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "scratch copy")
    (repo / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    run(repo, BIN / "dvc", "remote", "modify", "--local", "demo", "url", remote)

    # raw data: `dvc add` a folder; only its .dvc file goes to git
    raw = repo / "data" / "raw" / "signum"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(raw / f"sample_{i}.npy", rng.normal(size=(10, 225)).astype(np.float32))
    run(repo, BIN / "dvc", "add", "data/raw/signum")
    assert git(repo, "status", "--porcelain", "--untracked-files=all", "data").split() == [
        "??",
        "data/raw/signum.dvc",
    ]

    run(repo, BIN / "dvc", "repro")
    assert UP_TO_DATE in run(repo, BIN / "dvc", "status")
    dry = run(repo, BIN / "snakemake", "--cores", "1", "--dry-run")
    assert "Nothing to be done" in dry, dry[-3000:]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    shown = run(repo, BIN / "dvc", "metrics", "show")
    assert "paper" in shown and "distilled_accuracy" in shown and "knn_1nn_procrustes" in shown
    plots = run(repo, BIN / "dvc", "plots", "show", "--json")
    assert "training_curves.json" in plots and "distilled_test_accuracy" in plots, plots[:2000]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc repro")
    expected = tracked_files(repo)
    assert "results/report.html" in expected and "data/raw/signum/sample_2.npy" in expected
    assert any(p.endswith("models/distilled/seed2/model.pt") for p in expected)

    run(repo, BIN / "dvc", "push")

    # a fresh clone: no outputs, no cache, no Snakemake metadata
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", repo, clone)
    pull_and_check(clone, remote, expected)

    # in place, after deleting the outputs, the raw data and the cache
    for path in [*repo.joinpath("results").iterdir(), repo / "data" / "interim", raw]:
        if path.name != "README.md":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / ".venv").unlink()
    pull_and_check(repo, remote, expected)
