"""Provenance facts recorded in checkpoints, metrics and summaries."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

PACKAGES = ("geokd", "numpy", "scipy", "numba", "torch", "pandas", "pyarrow", "snakemake")


def git_revision() -> str:
    """``git rev-parse HEAD`` of the source tree, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide the results."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
