"""The Snakemake workflow in the tests: the one runner, work folders and the tiny config.

:func:`snakemake` runs ``snakemake --snakefile workflow/Snakefile --directory WORK`` through
:func:`tests.helpers.processes.run`: in a session of its own, stopped with its jobs (SIGINT,
so that a SLURM run cancels its jobs) when the wait ends early.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.processes import run

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAKEFILE = ROOT / "workflow" / "Snakefile"

#: the catalog's `.test/` config (3 classes x 4 subjects x 2 trials, two protocols, two seeds)
TINY = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())


def make_workdir(root: Path, config: dict) -> Path:
    """``root/work`` with ``config`` as its config/config.yaml."""
    work = root / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def snakemake_command(work: Path, *args: str, cores: int | str | None = 2) -> list[str]:
    """The command line; ``cores=None`` leaves --cores out (a profile decides)."""
    cmd = [str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE), "--directory", str(work)]
    if cores is not None:
        cmd += ["--cores", str(cores)]
    return [*cmd, *args]


def snakemake(
    work: Path,
    *args: str,
    cores: int | str | None = 2,
    check: bool = True,
    timeout: float = 600,
    merge_stderr: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake on ``work`` to its end (stderr into stdout with ``merge_stderr``); with
    ``check`` a failed run raises AssertionError with its output."""
    cmd = snakemake_command(work, *args, cores=cores)
    done = run(cmd, timeout=timeout, merge_stderr=merge_stderr)
    if check and done.returncode != 0:
        err = "" if merge_stderr else f"\n{done.stderr}"
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}{err}")
    return done
