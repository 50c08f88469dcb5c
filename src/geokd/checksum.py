"""SHA-256 helpers for provenance and integrity checks, and checksum sidecars.

An artifact ``<path>`` that must never be used silently when damaged (distance blocks and
matrices, soft labels, checkpoints) is written together with ``<path>.json``, its sidecar:
JSON with at least ``sha256`` (of the file's bytes) and ``size`` (bytes). Readers call
:func:`verify_sidecar` (or :func:`read_verified`), which raises
:class:`~geokd.errors.InputError` naming the artifact when the sidecar is missing or
unreadable, or when the file is truncated or altered.

A distance matrix or block can have a matching checksum and still be wrong (written by other
means, or by a bug): :func:`check_distances` checks what its sidecar promises (finite,
non-negative, and for a symmetric matrix exactly symmetric with a zero diagonal); the
distance readers and :func:`verify_tree` call it on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

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


#: Rows of a symmetric matrix compared with their columns at a time (bounds the temporary
#: boolean array to about 4 MiB whatever the matrix size).
_SYMMETRY_CHUNK = 1 << 22


def is_distance_sidecar(sidecar: dict) -> bool:
    """Whether a sidecar describes a distance matrix (``row_ids``) or block (``block``)."""
    return "row_ids" in sidecar or "block" in sidecar


def _symmetric_claim(sidecar: dict) -> str | None:
    """What must be symmetric with a zero diagonal by the sidecar's word: ``"a train x train
    matrix"``, ``"diagonal block (0, 0) of a symmetric matrix"``, or None."""
    q, r = sidecar.get("query_split"), sidecar.get("reference_split")
    if "block" in sidecar:
        block = sidecar["block"]
        if sidecar.get("symmetric") is True and len(block) == 2 and block[0] == block[1]:
            return f"diagonal block ({block[0]}, {block[1]}) of a symmetric matrix"
        return None
    if sidecar.get("symmetric") is True or (q is not None and q == r):
        return f"a {q or 'query'} x {r or q or 'query'} matrix"
    return None


def check_distances(path: str | os.PathLike, D: np.ndarray, sidecar: dict) -> None:
    """:class:`InputError` naming ``path`` and the first bad entry unless ``D`` keeps the
    distance contract its sidecar promises.

    Every entry finite and ``>= 0``; where the sidecar says symmetric (a matrix with
    ``symmetric: true`` or equal query and reference splits, a diagonal block of such a
    matrix) square, with an exactly zero diagonal and ``D[i, j] == D[j, i]`` bit for bit: the
    kernel writes one value per pair and mirrors it (``geokd.distances``), so no tolerance is
    needed. Entries are named by their matrix indices (a block's offset by its ``rows`` and
    ``cols``). Cost: a few vectorised passes over ``D``, no copy of it.
    """
    D = np.asarray(D)
    if D.ndim != 2:
        raise InputError(path, f"a distance array must be 2-D, got shape {D.shape}; {RECOMPUTE}")
    r0 = int((sidecar.get("rows") or [0])[0])
    c0 = int((sidecar.get("cols") or [0])[0])

    def at(i: int, j: int) -> str:
        return f"D[{i + r0}, {j + c0}] = {float(D[i, j])!r}"

    def first(mask: np.ndarray) -> tuple[int, int]:
        i, j = np.unravel_index(int(np.argmax(mask)), mask.shape)
        return int(i), int(j)

    finite = np.isfinite(D)
    if not finite.all():
        i, j = first(~finite)
        raise InputError(path, f"{at(i, j)}: distances must be finite; {RECOMPUTE}")
    del finite
    if D.size and D.min() < 0:
        i, j = first(D < 0)
        raise InputError(path, f"{at(i, j)}: distances must be non-negative; {RECOMPUTE}")
    what = _symmetric_claim(sidecar)
    if what is None:
        return
    n = D.shape[0]
    if D.shape != (n, n):
        raise InputError(path, f"{what} must be square, got shape {D.shape}; {RECOMPUTE}")
    diagonal = np.flatnonzero(np.diagonal(D))
    if diagonal.size:
        i = int(diagonal[0])
        raise InputError(
            path,
            f"{at(i, i)}: {what} must have a zero diagonal (each sequence's distance to "
            f"itself); {RECOMPUTE}",
        )
    step = max(1, _SYMMETRY_CHUNK // max(n, 1))
    for lo in range(0, n, step):
        bad = D[lo : lo + step] != D[:, lo : lo + step].T  # rows lo.. against their columns
        if bad.any():
            i, j = first(bad)
            i += lo
            raise InputError(
                path, f"{at(i, j)} but {at(j, i)}: {what} must be symmetric; {RECOMPUTE}"
            )


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
    a sidecar whose artifact is gone, or a distance matrix or block that breaks the distance
    contract (:func:`check_distances`).
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
            data, sidecar = read_verified(path)
            if path.suffix == ".npy" and is_distance_sidecar(sidecar):
                check_distances(path, _npy_array(path, data), sidecar)
        except InputError as exc:
            damaged.append((path, exc.problem))
    return artifacts, sorted(damaged)


def _npy_array(path: Path, data: bytes) -> np.ndarray:
    import io

    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable .npy file ({exc}); {RECOMPUTE}") from exc


def _has_checksum(side: Path) -> bool:
    if not side.is_file():
        return False
    try:
        return "sha256" in json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return False
