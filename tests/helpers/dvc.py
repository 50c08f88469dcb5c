"""DVC in the tests: the command runner (the venv on PATH, no analytics), scratch git
repositories holding a copy of the project, the files DVC tracks, and readers of dvc.yaml and of
a Snakemake dry run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

import yaml

from geokd.settings import resolve_all, train_rule_name
from tests.helpers.processes import run as run_command

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: What a clone holds that the pipeline needs (copied with __pycache__: numba's kernel caches).
TREE = [
    "workflow",
    "src/geokd",
    "config/config.yaml",
    "dvc.yaml",
    "dvc.lock",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "Makefile",
    "data/README.md",
    "results/README.md",
]

UP_TO_DATE = "Data and pipelines are up to date."


def env() -> dict[str, str]:
    """The venv first on PATH (dvc.yaml runs `snakemake`), no DVC analytics."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def run(cwd: Path, *cmd: str | Path, timeout: int = 600) -> str:
    """Run ``cmd`` in ``cwd`` (tests/helpers/processes.py: stopped with everything it started
    if the wait ends early); its output, or AssertionError with the tail of it."""
    done = run_command(cmd, cwd=cwd, env=env(), timeout=timeout)
    if done.returncode != 0:
        tail = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        raise AssertionError(f"{cmd} failed in {cwd}:\n{tail}")
    return done.stdout + done.stderr


def git(repo: Path, *args: str) -> str:
    return run(repo, "git", "-c", "user.name=geokd", "-c", "user.email=geokd@example.org", *args)


def copy_tree(repo: Path) -> Path:
    """A copy of the project's :data:`TREE` in ``repo``."""
    for rel in TREE:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, repo / rel)
        elif src.exists():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    return repo


def tracked_files(repo: Path) -> dict[str, str]:
    """SHA-256 of every file DVC tracks (outputs and raw data)."""
    found = {}
    for top in ("data", "results"):
        for path in sorted((repo / top).rglob("*")):
            if path.is_file() and path.name not in {"README.md", ".gitignore"}:
                found[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def covered(path: str, outs: list[str]) -> bool:
    return any(path == out or path.startswith(out + "/") for out in outs)


def dotted(config: dict, key: str):
    node = config
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"{key!r} is not in config/config.yaml"
        node = node[part]
    return node


def rule_files() -> dict[str, str]:
    """Rule name -> the workflow/rules/*.smk file that defines it."""
    found = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for name in re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M):
            found[name] = f"workflow/rules/{smk.name}"
        if "train_rule_name(seeds)" in text:  # a rule per group of seeds of any config
            for config in (ROOT / "config").glob("*.yaml"):
                for s in resolve_all(yaml.safe_load(config.read_text())).values():
                    found |= {train_rule_name(g): f"workflow/rules/{smk.name}"
                              for g in s.training.seed_groups()}  # fmt: skip
    return found


def dry_run_jobs(out: str) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of every job a `snakemake --dry-run` lists."""
    jobs = []
    blocks = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)+)", out, re.M)
    for rule, body in blocks:
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
        if "output" in fields:
            inputs = fields["input"].split(", ") if "input" in fields else []
            jobs.append((rule, inputs, fields["output"].split(", ")))
    return jobs
