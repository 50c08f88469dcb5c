"""SHA-256 helpers for provenance and integrity checks, and checksum sidecars.

An artifact ``<path>`` that must never be used silently when damaged (distance blocks and
matrices, soft labels, checkpoints) is written together with ``<path>.json``, its sidecar:
JSON with at least ``sha256`` (of the file's bytes) and ``size`` (bytes). Readers call
:func:`verify_sidecar` (or :func:`read_verified`), which raises
:class:`~geokd.errors.InputError` naming the artifact when the sidecar is missing or
unreadable, or when the file is truncated or altered.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import InputError
from .jsonfile import json_text

#: How a reader says what to do about a damaged artifact.
RECOMPUTE = "delete it (and its .json sidecar) and rerun the workflow to recompute it"


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of an artifact: ``<path>.json``."""
    return Path(f"{path}.json")


def sidecar_bytes(data: bytes, fields: dict | None = None) -> bytes:
    """The sidecar of ``data`` as JSON bytes: ``fields`` plus ``sha256`` and ``size``."""
    sidecar = {**(fields or {}), "sha256": sha256_bytes(data), "size": len(data)}
    return json_text(sidecar).encode()


def read_sidecar(path: str | os.PathLike) -> dict:
    """The sidecar of artifact ``path`` as a dict; :class:`InputError` naming ``path`` when
    the artifact or its sidecar is missing, or the sidecar is not a JSON object."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.exists():
        raise InputError(path, "missing")
    if not side.exists():
        raise InputError(
            path, f"missing checksum sidecar {side.name} (incomplete or foreign file); {RECOMPUTE}"
        )
    try:
        sidecar = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(side, f"corrupt checksum sidecar ({exc}); {RECOMPUTE}") from exc
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("sha256"), str):
        raise InputError(side, f"corrupt checksum sidecar (no sha256); {RECOMPUTE}")
    return sidecar


def check_bytes(path: str | os.PathLike, data: bytes, sidecar: dict) -> None:
    """:class:`InputError` naming ``path`` unless ``data`` matches the sidecar's checksum."""
    size = sidecar.get("size")
    if isinstance(size, int) and len(data) != size:
        raise InputError(
            path, f"truncated or corrupted: {len(data)} bytes, its sidecar says {size}; {RECOMPUTE}"
        )
    if sha256_bytes(data) != sidecar["sha256"]:
        raise InputError(path, f"checksum mismatch: the file is corrupted; {RECOMPUTE}")


def read_verified(path: str | os.PathLike) -> tuple[bytes, dict]:
    """The bytes of artifact ``path`` and its sidecar, checked (module docstring)."""
    sidecar = read_sidecar(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"unreadable ({exc.strerror or exc})") from exc
    check_bytes(path, data, sidecar)
    return data, sidecar


def verify_sidecar(path: str | os.PathLike) -> dict:
    """Check artifact ``path`` against its sidecar; return the sidecar (module docstring)."""
    return read_verified(path)[1]


#: Files geokd always writes with a checksum sidecar (checked even where it is missing).
SIDECAR_SUFFIXES = (".npy", ".pt")


def _is_artifact(path: Path) -> bool:
    if path.suffix in SIDECAR_SUFFIXES:
        return True
    return path.suffix == ".parquet" and path.parent.name == "teacher"


def verify_tree(*roots: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Check every checksummed artifact under ``roots`` (folders or single files).

    An artifact is a file with a sidecar holding ``sha256``, or a file geokd always writes
    with one (``*.npy``, ``*.pt``, ``teacher/*.parquet``). Returns the artifacts found and
    the damaged ones with the problem: missing or corrupt sidecar, size or checksum mismatch,
    or a sidecar whose artifact is gone.
    """
    found: set[Path] = set()
    damaged: list[tuple[Path, str]] = []
    for root in map(Path, roots):
        if not root.exists():
            raise InputError(root, "no such file or folder")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                continue  # a writer's temporary file, never read
            if path.suffix == ".json" and _is_artifact(path.with_suffix("")):
                if not path.with_suffix("").exists():
                    damaged.append((path, "sidecar without its file (the file was deleted)"))
                continue
            if _is_artifact(path) or _has_checksum(sidecar_path(path)):
                found.add(path)
    artifacts = sorted(found)
    for path in artifacts:
        try:
            verify_sidecar(path)
        except InputError as exc:
            damaged.append((path, exc.problem))
    return artifacts, sorted(damaged)


def _has_checksum(side: Path) -> bool:
    if not side.is_file():
        return False
    try:
        return "sha256" in json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return False
