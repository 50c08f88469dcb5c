"""SHA-256 helpers for provenance and integrity checks, and checksum sidecars.

An artifact ``<path>`` that must never be used silently when damaged (distance blocks and
matrices, soft labels, checkpoints) is written together with ``<path>.json``, its sidecar:
JSON with at least ``sha256`` (of the file's bytes) and ``size`` (bytes). Readers call
:func:`verify_sidecar` (or :func:`read_verified`, or :func:`open_verified` for large files:
it streams them and hands the checked open file on, e.g. to :func:`read_npy_array`, which
memory-maps a ``.npy``), which raise :class:`~geokd.errors.InputError` naming the artifact
when the sidecar is missing or unreadable, or when the file is truncated or altered.

A distance matrix or block can have a matching checksum and still be wrong (written by other
means, or by a bug): :func:`check_distances` checks what its sidecar promises (finite,
non-negative, and for a symmetric matrix exactly symmetric with a zero diagonal); the
distance readers and :func:`verify_tree` call it on every load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import paths
from .atomic import atomic_paths
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
    """The sidecar of an artifact: ``<path>.json`` (:func:`geokd.paths.sidecar`)."""
    return Path(paths.sidecar(os.fspath(path)))


def sidecar_bytes(data: bytes, fields: dict | None = None) -> bytes:
    """The sidecar of ``data`` as JSON bytes: ``fields`` plus ``sha256`` and ``size``."""
    return sidecar_of_digest(sha256_bytes(data), len(data), fields)


def sidecar_of_digest(sha256: str, size: int, fields: dict | None = None) -> bytes:
    """:func:`sidecar_bytes` of a file written in pieces, from its SHA-256 and size."""
    return json_text({**(fields or {}), "sha256": sha256, "size": size}).encode()


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


def _check_size(path: str | os.PathLike, actual: int, sidecar: dict) -> None:
    size = sidecar.get("size")
    if isinstance(size, int) and actual != size:
        raise InputError(
            path, f"truncated or corrupted: {actual} bytes, its sidecar says {size}; {RECOMPUTE}"
        )


def _check_digest(path: str | os.PathLike, digest: str, sidecar: dict) -> None:
    if digest != sidecar["sha256"]:
        raise InputError(path, f"checksum mismatch: the file is corrupted; {RECOMPUTE}")


def check_bytes(path: str | os.PathLike, data: bytes, sidecar: dict) -> None:
    """:class:`InputError` naming ``path`` unless ``data`` matches the sidecar's checksum."""
    _check_size(path, len(data), sidecar)
    _check_digest(path, sha256_bytes(data), sidecar)


#: Bytes hashed per read when an open file is checked (:func:`open_verified`).
_HASH_CHUNK = 4 << 20


@contextlib.contextmanager
def open_verified(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, dict]]:
    """Artifact ``path`` opened once and checked against its sidecar, with the sidecar.

    The same checks as :func:`read_verified` (size, then SHA-256), streamed in 4 MiB chunks:
    memory does not grow with the file. Whoever reads or maps the yielded open file sees the
    bytes that were checked even if ``path`` is replaced meanwhile (writers rename a new file
    onto it, :mod:`geokd.atomic`). The file is closed on exit.
    """
    sidecar = read_sidecar(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(path, f"unreadable ({exc.strerror or exc})") from exc
    with fh:
        try:
            _check_size(path, os.fstat(fh.fileno()).st_size, sidecar)
            digest, buf = hashlib.sha256(), bytearray(_HASH_CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                digest.update(view[:n])
            del view
        except OSError as exc:
            raise InputError(path, f"unreadable ({exc.strerror or exc})") from exc
        _check_digest(path, digest.hexdigest(), sidecar)
        fh.seek(0)
        yield fh, sidecar


def read_npy_array(path: str | os.PathLike, fh: BinaryIO, *, mmap: bool = True) -> np.ndarray:
    """The array of the open ``.npy`` file ``fh`` (``path`` names it in errors).

    ``mmap``: a read-only memory map of the file (pages are read when touched; nothing is
    copied), else a writable array read into memory (one copy). :class:`InputError` naming
    ``path`` when the file is not a readable ``.npy`` file (as :func:`numpy.load` refuses
    it, object arrays included); a checked artifact (:func:`open_verified`) is not modified
    in place by geokd (writes rename new files), so its map stays valid.
    """
    fmt = np.lib.format
    try:
        fh.seek(0)
        version = fmt.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(fh)
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        offset, order = fh.tell(), "F" if fortran_order else "C"
        nbytes = math.prod(shape) * dtype.itemsize
        if os.fstat(fh.fileno()).st_size - offset < nbytes:
            raise EOFError(f"the file holds fewer than the {nbytes} data bytes of its header")
        if mmap and nbytes:
            mapped = np.memmap(fh, dtype=dtype, mode="r", shape=shape, order=order, offset=offset)
            return mapped.view(np.ndarray)  # a plain array; the map lives as long as it
        data = bytearray(nbytes)
        if fh.readinto(data) != nbytes:
            raise EOFError("the file ended early")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable .npy file ({exc}); {RECOMPUTE}") from exc


def write_npy_streamed(
    path: str | os.PathLike,
    shape: tuple[int, int],
    strips: Iterable[np.ndarray],
    fields: dict | None = None,
) -> np.ndarray:
    """Write a float64 ``.npy`` of ``shape`` from its rows, strip by strip, and its sidecar
    (``fields`` plus ``sha256`` and ``size``) as one atomic unit.

    ``strips`` yields C-contiguous float64 arrays of whole rows, top to bottom. The bytes
    are those :func:`numpy.save` and :func:`sidecar_bytes` give for the whole array, hashed
    as they are written: memory holds one strip. Both files are on disk before either is
    renamed, the sidecar last (:func:`geokd.atomic.atomic_paths`); an exception (from
    ``strips`` too) leaves no file and the previous pair untouched. Returns the array,
    memory-mapped read-only from the file written (:func:`read_npy_array`).
    """
    header = npy_header(shape)
    digest = hashlib.sha256(header)
    with contextlib.ExitStack() as stack:
        with atomic_paths(path, sidecar_path(path)) as (tmp, tmp_side):
            with open(tmp, "wb") as fh:  # closed (flushed) in here: a failure names ``path``
                fh.write(header)
                for strip in strips:
                    data = memoryview(np.ascontiguousarray(strip, dtype=np.float64)).cast("B")
                    fh.write(data)
                    digest.update(data)
                    del data, strip  # freed before the next strip is made
                size = fh.tell()
            expected = len(header) + 8 * math.prod(shape)
            if size != expected:
                raise ValueError(
                    f"{path}: strips gave {size} bytes, shape {shape} needs {expected}"
                )
            tmp_side.write_bytes(sidecar_of_digest(digest.hexdigest(), size, fields))
            written = stack.enter_context(open(tmp, "rb"))  # still this file after the rename
        return read_npy_array(path, written)


def npy_header(shape: tuple[int, ...], dtype: np.dtype | type = np.float64) -> bytes:
    """The header :func:`numpy.save` writes for a C-order array of ``shape`` and ``dtype``
    (format 1.0, or 2.0 where the header does not fit): the file is this plus the values."""
    import io

    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    d["shape"] = tuple(int(n) for n in shape)
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, d)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


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
    """Check artifact ``path`` against its sidecar; return the sidecar (module docstring).
    Streams the file (:func:`open_verified`)."""
    with open_verified(path) as (_, sidecar):
        return sidecar


#: Entries checked at a time (rows of a matrix compared with their columns, or checked finite
#: and non-negative): bounds the temporary boolean arrays to about 4 MiB whatever the size.
_CHECK_CHUNK = 1 << 22


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
    ``cols``). Cost: a few vectorised passes over ``D`` in chunks of rows (a memory-mapped
    ``D`` is read, never copied whole; temporaries stay near 4 MiB of booleans).
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

    n_rows = max(1, _CHECK_CHUNK // max(D.shape[1], 1))
    negative = None  # the first negative entry; a non-finite one anywhere is reported first
    for lo in range(0, D.shape[0], n_rows):  # row chunks: no whole-matrix temporary
        part = D[lo : lo + n_rows]
        finite = np.isfinite(part)
        if not finite.all():
            i, j = first(~finite)
            raise InputError(path, f"{at(i + lo, j)}: distances must be finite; {RECOMPUTE}")
        if negative is None and part.size and part.min() < 0:
            i, j = first(part < 0)
            negative = (i + lo, j)
    if negative is not None:
        raise InputError(path, f"{at(*negative)}: distances must be non-negative; {RECOMPUTE}")
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
    step = max(1, _CHECK_CHUNK // max(n, 1))
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
            with open_verified(path) as (fh, sidecar):
                if path.suffix == ".npy" and is_distance_sidecar(sidecar):
                    check_distances(path, read_npy_array(path, fh), sidecar)
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
