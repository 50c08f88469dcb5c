"""Provenance facts recorded in checkpoints, metrics and summaries."""

from __future__ import annotations

import ast
import hashlib
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


#: The pipeline's stages in the order they import each other: a stage's results may depend
#: on the code of its own package, of the stages before it and of the top-level modules.
CODE_STAGES = ("data", "distances", "models", "report")


def _code_bytes(path: Path) -> bytes:
    """A module as its syntax tree without docstrings (comments, formatting and docstrings do
    not count); any other file as its bytes."""
    if path.suffix != ".py":
        return path.read_bytes()
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def code_hash(package: str | Path, stage: str) -> str:
    """SHA-256 of the code that can shape the results of ``stage`` (:data:`CODE_STAGES`): the
    package's top-level modules and the stage packages up to ``stage``, ``__pycache__`` left
    out, paths relative (the same code elsewhere has the same hash). The workflow passes it as
    the param ``code`` of each rule of that stage, so a code change reruns exactly the jobs of
    the stages it can reach."""
    if stage not in CODE_STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {CODE_STAGES}")
    root = Path(package)
    reach = CODE_STAGES[: CODE_STAGES.index(stage) + 1]
    files = [p for p in root.iterdir() if p.is_file()]
    for sub in reach:
        files += [p for p in (root / sub).rglob("*") if p.is_file()]
    digest = hashlib.sha256()
    for path in sorted(f for f in files if "__pycache__" not in f.parts):
        data = _code_bytes(path)
        digest.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
