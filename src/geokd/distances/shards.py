"""Distance matrices in shards: plan blocks, compute one block, assemble the matrix.

A matrix pairs a query split with a reference split of one protocol (``train`` x ``train``,
``test`` x ``train``, ...). It is tiled into square blocks of ``block_size`` rows and columns;
block ``(bi, bj)`` covers query rows ``bi*B : (bi+1)*B`` and reference columns
``bj*B : (bj+1)*B``. A symmetric matrix (query split == reference split) computes only the
upper-triangle blocks ``bi <= bj``; assembly mirrors them.

Every block ``.npy`` has a JSON sidecar with its position, shape, whether its matrix is
symmetric, and SHA-256; assembly checks every block (present, right shape, checksum, and the
distance contract: finite, non-negative, a diagonal block of a symmetric matrix exactly
symmetric with a zero diagonal) before it writes the matrix ``.npy`` (float64) and its
sidecar: shape, the sequence ids of rows and columns in order, the metric and its parameters,
a hash of those parameters and of the inputs, and the matrix's SHA-256. Every load of a block
or matrix checks the contract again (:func:`geokd.checksum.check_distances`). Once the matrix
is written, assembly removes the temporary files that killed block writers on this host left
in the block folder (:func:`remove_stale_block_temporaries`).

Memory: assembly streams the matrix to its file in strips of rows (about 16 MiB each), so it
never holds the matrix (a 10,001 x 10,001 float64 matrix is 800 MB); readers verify a
matrix by streaming it and then memory-map it (:func:`load_matrix`). ``bench/README.md``
("Assembly memory at full scale") has the measured peaks.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import remove_stale_temporaries, write_many
from ..checksum import (
    check_distances,
    open_verified,
    read_npy_array,
    sha256_bytes,
    sidecar_bytes,
    sidecar_path,
    write_npy_streamed,
)
from ..data.resample import resample
from ..data.splits import read_split
from ..data.store import load_sequences
from ..errors import InputError
from .config import DistanceConfig


@dataclass(frozen=True)
class MatrixSpec:
    """What a distance matrix is: splits, metric, the metric's parameters, the precision of
    the frame costs (``float64``, or ``float32``: :func:`geokd.distances.cdist`'s dtype) and
    the frame budget (sequences resampled to ``frames`` frames before DTW; None: all)."""

    query_split: str
    reference_split: str
    metric: str = "procrustes"
    window: int | None = DistanceConfig.window
    metric_params: dict = field(default_factory=dict)
    precision: str = DistanceConfig.precision
    frames: int | None = DistanceConfig.frames

    @property
    def symmetric(self) -> bool:
        return self.query_split == self.reference_split

    def __str__(self) -> str:
        """For logs: "train x test procrustes (window 10) float32 (32 frames)"."""
        window = "" if self.window is None else f" (window {self.window})"
        precision = "" if self.precision == "float64" else f" {self.precision}"
        frames = "" if self.frames is None else f" ({self.frames} frames)"
        q, r = self.query_split, self.reference_split
        return f"{q} x {r} {self.metric}{window}{precision}{frames}"

    def params_hash(self) -> str:
        fields = asdict(self)  # options added later keep the hash of matrices made before them:
        for key, unset in (("precision", "float64"), ("frames", None)):
            if fields[key] == unset:
                del fields[key]
        blob = json.dumps(fields, sort_keys=True).encode()
        return sha256_bytes(blob)[:16]


_log = logging.getLogger("geokd.distances")


def n_blocks(n: int, block_size: int) -> int:
    """Number of blocks of ``block_size`` covering ``n`` items (at least 1)."""
    if block_size < 1:
        raise ValueError(f"block size must be >= 1, got {block_size}")
    return max(1, -(-n // block_size))


def plan_blocks(
    n_query: int, n_ref: int, block_size: int, symmetric: bool
) -> list[tuple[int, int]]:
    """The (bi, bj) blocks to compute; only ``bi <= bj`` for a symmetric matrix."""
    nq, nr = n_blocks(n_query, block_size), n_blocks(n_ref, block_size)
    return [(i, j) for i in range(nq) for j in range(nr) if not symmetric or i <= j]


def split_ids(split_table: str | os.PathLike, split: str) -> list[str]:
    """Sequence ids of one split, in split-table order."""
    table = read_split(split_table)
    ids = table.loc[table["split"] == split, "sequence_id"].astype(str).tolist()
    if not ids:
        raise InputError(split_table, f"split '{split}' has no sequences")
    return ids


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def write_npy_with_sidecar(path: str | os.PathLike, array: np.ndarray, sidecar: dict) -> dict:
    """Write ``array`` as .npy and ``<path>.json`` (with the .npy's SHA-256 and size) as one
    atomic unit (:func:`geokd.atomic.atomic_paths`: both files are on disk before either is
    renamed, the sidecar last), so a present sidecar describes a complete matrix and a
    failed write leaves the previous pair untouched.

    The bytes are built in memory (about twice ``array``): for blocks and small arrays.
    Assembly streams the matrix instead, to the same bytes (:func:`assemble`).
    """
    data = _npy_bytes(array)
    fields = {**sidecar, "shape": list(array.shape), "dtype": "float64"}
    side = sidecar_bytes(data, fields)
    write_many({path: data, sidecar_path(path): side})
    return json.loads(side)


def _read_checked(path: str | os.PathLike, mmap: bool) -> tuple[np.ndarray, dict, tuple]:
    """:func:`read_npy_checked` plus the identity of the file that was checked."""
    with open_verified(path) as (fh, sidecar):
        array = read_npy_array(path, fh, mmap=mmap)
        identity = _identity(fh)
    if list(array.shape) != sidecar.get("shape"):
        raise InputError(path, f"shape {array.shape} != sidecar shape {sidecar.get('shape')}")
    check_distances(path, array, sidecar)
    return array, sidecar, identity


def _identity(fh) -> tuple[int, ...]:
    """Device, inode, size and modification time of an open file: another file renamed onto
    its path, or a change in place, gives another identity."""
    st = os.fstat(fh.fileno())
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def read_npy_checked(path: str | os.PathLike, *, mmap: bool = True) -> tuple[np.ndarray, dict]:
    """Read a .npy written by :func:`write_npy_with_sidecar`, verifying its sidecar.

    The file is opened once, its size and SHA-256 checked by streaming it, and the same open
    file then memory-mapped read-only (``mmap=True``: pages are read as they are used, nothing
    is copied) or read into a writable array (``mmap=False``); a file renamed onto ``path``
    in the meantime is never seen (:func:`geokd.checksum.open_verified`). Copy a mapped
    array before changing it.

    Raises :class:`InputError` naming the file when it or its sidecar is missing or corrupt,
    the size, checksum or shape does not match, or the values break the distance contract
    that the sidecar promises (:func:`geokd.checksum.check_distances`: finite, non-negative,
    exactly symmetric with a zero diagonal where the sidecar says symmetric), naming the
    first bad entry.
    """
    return _read_checked(path, mmap)[:2]


def select_sequences(
    store: str | os.PathLike, ids: Sequence[str], frames: int | None = DistanceConfig.frames
) -> list[np.ndarray]:
    """The store's sequences with these ids, in this order, as the distances compare them:
    resampled in time to ``frames`` frames (linear, :func:`geokd.data.resample.resample`)
    where a frame budget is set (``distances.frames``); InputError for an unknown id."""
    sequences, meta = load_sequences(store)
    index = {sid: i for i, sid in enumerate(meta["sequence_id"].astype(str))}
    missing = [sid for sid in ids if sid not in index]
    if missing:
        raise InputError(store, f"{len(missing)} split id(s) not in the store, e.g. {missing[:3]}")
    chosen = [sequences[index[sid]] for sid in ids]
    return chosen if frames is None else [resample(seq, frames, "linear") for seq in chosen]


def block_minutes(block_size: int, threads: int, attempt: int = 1) -> int:
    """The run time limit of one distance-block job in minutes (the workflow's ``runtime``):
    ``block_size**2`` pairs at 1500 pairs per thread-minute (300-frame sequences: about 2.8x
    margin on a Zen 1 core in float64, 19x on a Zen 5 core; docs/cluster.md) plus 5 minutes,
    times the attempt number (a retry gets more)."""
    return attempt * (5 + -(-(block_size**2) // (1500 * max(1, threads))))


def write_block(
    out: str | os.PathLike,
    values: np.ndarray,
    spec: MatrixSpec,
    block: tuple[int, int],
    block_size: int,
) -> dict:
    """Write block ``(bi, bj)`` of the matrix ``spec`` (its values) with the sidecar that
    :func:`assemble` checks (position, rows, columns, settings); returns the sidecar."""
    bi, bj = block
    sidecar = {
        "block": [bi, bj],
        "block_size": block_size,
        "rows": [bi * block_size, bi * block_size + values.shape[0]],
        "cols": [bj * block_size, bj * block_size + values.shape[1]],
        "params_hash": spec.params_hash(),
        "symmetric": spec.symmetric,
    }
    return write_npy_with_sidecar(out, values, sidecar)


def compute_block(
    store: str | os.PathLike,
    split_table: str | os.PathLike,
    out: str | os.PathLike,
    spec: MatrixSpec,
    block: tuple[int, int],
    block_size: int,
    n_jobs: int | None = None,
    *,
    backend: str = "cpu",
) -> np.ndarray:
    """Compute block ``(bi, bj)`` of the matrix ``spec`` and write it with its sidecar;
    ``backend``: :func:`geokd.distances.cdist`'s (``cpu``, ``torch``, ``cuda``, ``auto``); the
    precision is the spec's."""
    from ._cdist import cdist

    q_ids = split_ids(split_table, spec.query_split)
    r_ids = split_ids(split_table, spec.reference_split)
    bi, bj = block
    if (bi, bj) not in plan_blocks(len(q_ids), len(r_ids), block_size, spec.symmetric):
        raise InputError(out, f"block {block} is not part of the plan for block size {block_size}")
    q_sel = q_ids[bi * block_size : (bi + 1) * block_size]
    r_sel = r_ids[bj * block_size : (bj + 1) * block_size]
    wanted = list(dict.fromkeys([*q_sel, *r_sel]))
    seqs = dict(zip(wanted, select_sequences(store, wanted, spec.frames), strict=True))
    kwargs = dict(
        metric=spec.metric,
        window=spec.window,
        n_jobs=n_jobs,
        backend=backend,
        dtype=spec.precision,
        **spec.metric_params,
    )
    cells = sum(len(seqs[q]) * len(seqs[r]) for q in q_sel for r in r_sel)
    if spec.symmetric and bi == bj:
        cells //= 2  # the upper triangle
    t0 = time.perf_counter()
    if spec.symmetric and bi == bj:
        values = cdist([seqs[s] for s in q_sel], **kwargs)
    else:
        values = cdist([seqs[s] for s in q_sel], [seqs[s] for s in r_sel], **kwargs)
    seconds = time.perf_counter() - t0
    write_block(out, values, spec, block, block_size)
    for written in (Path(out), sidecar_path(out)):  # never exit 0 without both on disk
        if not written.is_file():
            raise OSError(errno.ENOENT, "written, but not on disk afterwards", str(written))
    # after the write: a failed write prints its one error line only
    _log.info(
        "block (%d, %d) of %s: %d x %d sequences, %.3g frame pairs in %.2f s "
        "(%.3g frame pairs/s, %s backend)",
        bi, bj, spec, len(q_sel), len(r_sel), cells, seconds, cells / max(seconds, 1e-9), backend,
    )  # fmt: skip
    return values


@dataclass(frozen=True)
class _Block:
    """A checked block: its file (and that file's identity), position, rows and columns."""

    path: Path
    identity: tuple[int, ...]
    block: tuple[int, int]
    rows: tuple[int, int]
    cols: tuple[int, int]

    def values(self) -> np.ndarray:
        """The block, memory-mapped again; :class:`InputError` if its file has changed since
        it was checked."""
        try:
            fh = open(self.path, "rb")
        except OSError as exc:
            raise InputError(self.path, f"unreadable ({exc.strerror or exc})") from exc
        with fh:
            if _identity(fh) != self.identity:
                raise InputError(self.path, "replaced or changed during assembly; rerun it")
            return read_npy_array(self.path, fh)


def _checked_blocks(
    blocks: Sequence[str | os.PathLike], spec: MatrixSpec, block_size: int, shape: tuple
) -> list[_Block]:
    """Every block checked (in the given order) against the plan and the contract."""
    params_hash = spec.params_hash()
    checked = []
    for path in map(Path, blocks):
        if not path.exists():
            raise InputError(path, f"missing distance block; {_RECOMPUTE_BLOCK}")
        values, side, identity = _read_checked(path, mmap=True)
        if not all(isinstance(side.get(k), list) for k in ("block", "rows", "cols")):
            raise InputError(path, "not a distance block (its sidecar has no block position)")
        # older block sidecars do not say whether their matrix is symmetric: the plan does
        check_distances(path, values, {**side, "symmetric": spec.symmetric})
        if side.get("block_size") != block_size or side.get("params_hash") != params_hash:
            raise InputError(path, "block computed with other settings; recompute it")
        (r0, r1), (c0, c1) = side["rows"], side["cols"]
        if values.shape != (r1 - r0, c1 - c0) or r1 > shape[0] or c1 > shape[1]:
            raise InputError(path, f"block shape {values.shape} does not fit the matrix")
        checked.append(_Block(path, identity, tuple(side["block"]), (r0, r1), (c0, c1)))
        del values  # unmapped before the next block is mapped
    return checked


def _rows(blocks: list[_Block], lo: int, hi: int, n_cols: int, symmetric: bool) -> np.ndarray:
    """Rows ``lo:hi`` of the matrix from its blocks (a symmetric matrix's lower triangle
    mirrored from the blocks above it); NaN where no block reaches (a hole)."""
    rows = np.full((hi - lo, n_cols), np.nan)
    for block in blocks:
        (r0, r1), (c0, c1) = block.rows, block.cols
        a, b = max(r0, lo), min(r1, hi)  # the block's own rows in the strip
        m, n = (max(c0, lo), min(c1, hi)) if symmetric else (0, 0)  # its mirrored rows
        if a >= b and m >= n:
            continue
        values = block.values()
        if a < b:
            rows[a - lo : b - lo, c0:c1] = values[a - r0 : b - r0]
        if m < n:
            rows[m - lo : n - lo, r0:r1] = values[:, m - c0 : n - c0].T
        del values  # unmapped before the next block is mapped
    return rows


#: Bytes of matrix rows that assembly holds at a time.
_STRIP_BYTES = 16 << 20


def _strips(out, blocks: list[_Block], shape: tuple, symmetric: bool) -> Iterator[np.ndarray]:
    """The matrix in strips of rows, top to bottom; :class:`InputError` at a hole."""
    step = max(1, _STRIP_BYTES // (8 * max(shape[1], 1)))
    for lo in range(0, shape[0], step):
        rows = _rows(blocks, lo, min(lo + step, shape[0]), shape[1], symmetric)
        if not np.isfinite(rows).all():
            raise InputError(out, "assembled matrix has holes (blocks do not cover it)")
        yield rows
        del rows  # before the next strip is built


def assemble(
    split_table: str | os.PathLike,
    blocks: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    spec: MatrixSpec,
    block_size: int,
    store_sha256: str = "",
    *,
    in_memory: bool = False,
) -> np.ndarray:
    """Check every block and write the full matrix with its sidecar; returns the matrix
    (read-only, memory-mapped from the written file).

    The matrix is written in strips of rows (:data:`_STRIP_BYTES`), hashed as it is written
    (:func:`geokd.checksum.write_npy_streamed`): memory stays near one strip plus one block
    whatever the matrix size. ``in_memory``: the former way (the whole matrix in memory,
    then :func:`write_npy_with_sidecar`: about twice the matrix), kept as the reference that
    the streaming writer equals byte for byte (tests and ``bench/bench_assemble.py``).
    """
    q_ids = split_ids(split_table, spec.query_split)
    r_ids = split_ids(split_table, spec.reference_split)
    shape = (len(q_ids), len(r_ids))
    plan = plan_blocks(*shape, block_size, spec.symmetric)
    checked = _checked_blocks(blocks, spec, block_size, shape)
    done = {b.block for b in checked}
    missing = [b for b in plan if b not in done]
    if missing:
        names = [f"block_{bi}_{bj}.npy" for bi, bj in missing[:3]]
        raise InputError(
            out, f"{len(missing)} block(s) missing (not given), e.g. {names}; {_RECOMPUTE_BLOCK}"
        )
    ids_hash = sha256_bytes(json.dumps([q_ids, r_ids]).encode())[:16]
    sidecar = {
        "query_split": spec.query_split,
        "reference_split": spec.reference_split,
        "row_ids": q_ids,
        "col_ids": r_ids,
        "metric": spec.metric,
        "window": spec.window,
        "metric_params": spec.metric_params,
        "precision": spec.precision,
        **({} if spec.frames is None else {"frames": spec.frames}),
        "symmetric": spec.symmetric,
        "config_hash": sha256_bytes(f"{spec.params_hash()}:{ids_hash}:{store_sha256}".encode())[
            :16
        ],
        "store_sha256": store_sha256,
    }
    if in_memory:
        matrix = _rows(checked, 0, shape[0], shape[1], spec.symmetric)
        if not np.isfinite(matrix).all():
            raise InputError(out, "assembled matrix has holes (blocks do not cover it)")
        write_npy_with_sidecar(out, matrix, sidecar)
    else:
        fields = {**sidecar, "shape": list(shape), "dtype": "float64"}
        strips = _strips(out, checked, shape, spec.symmetric)
        matrix = write_npy_streamed(out, shape, strips, fields)
    for folder in dict.fromkeys(Path(b).parent for b in blocks):
        remove_stale_block_temporaries(folder)
    return matrix


#: What to do about a missing block.
_RECOMPUTE_BLOCK = (
    "a block job failed or was killed before writing, or the block was deleted; rerun the "
    "workflow (Snakemake computes the missing blocks of a missing matrix), or compute it "
    "with `geokd distances block`"
)


def remove_stale_block_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (``.block_<i>_<j>.npy[.json].<host>-<pid>.*.tmp``) that
    killed block writers on this host left in ``folder``; returns the removed paths.

    :mod:`geokd.atomic` removes a killed writer's temporaries at the next write of the same
    file, but a block that is never written again (finished blocks, blocks of an older plan)
    keeps them: assembly sweeps its block folders. Temporaries of live processes and of
    other hosts (a shared file system) are kept (:func:`geokd.atomic.remove_stale_temporaries`).
    """
    folder = Path(folder)
    targets = set()
    for tmp in folder.glob(".block_*.tmp"):
        target = tmp.name[1 : -len(".tmp")].rsplit(".", 2)[0]  # .<target>.<host>-<pid>.<x>.tmp
        targets.add(target)
    removed: list[Path] = []
    for target in sorted(targets):
        removed += remove_stale_temporaries(folder / target)
    return removed


def load_matrix(path: str | os.PathLike, *, mmap: bool = True) -> tuple[np.ndarray, dict]:
    """Load an assembled matrix with its sidecar (ids of rows and columns), checked
    (:func:`read_npy_checked`): read-only and memory-mapped, or (``mmap=False``) a writable
    array in memory."""
    return read_npy_checked(path, mmap=mmap)


def matrix_pairs(protocol: dict) -> list[tuple[str, str]]:
    """The (query, reference) matrices of a protocol: train-train, [val-train], test-train."""
    pairs = [("train", "train")]
    if protocol.get("val"):
        pairs.append(("val", "train"))
    pairs.append(("test", "train"))
    return pairs


def planned_blocks(
    split_table: str | os.PathLike, query: str, reference: str, block_size: int
) -> list[tuple[int, int]]:
    """The blocks of the (query x reference) matrix of a split table."""
    n_query = len(split_ids(split_table, query))
    n_ref = len(split_ids(split_table, reference))
    return plan_blocks(n_query, n_ref, block_size, query == reference)


def load_aligned(
    matrix_path: str | os.PathLike,
    split_table: str | os.PathLike,
    query: str,
    reference: str,
    *,
    mmap: bool = True,
) -> tuple[np.ndarray, dict, pd.DataFrame, pd.DataFrame]:
    """Load a (query x reference) matrix (:func:`load_matrix`), its sidecar, and the
    split-table rows of its rows and of its columns.

    Raises :class:`InputError` naming the matrix when its row or column ids are not the
    split table's ``query`` / ``reference`` ids in order.
    """
    D, sidecar = load_matrix(matrix_path, mmap=mmap)
    table = read_split(split_table)
    parts = []
    for key, split in (("row_ids", query), ("col_ids", reference)):
        part = table[table["split"] == split].reset_index(drop=True)
        want = part["sequence_id"].astype(str).tolist()
        got = [str(s) for s in sidecar.get(key) or []]
        if got != want:
            raise InputError(
                matrix_path,
                f"{key} ({len(got)}) are not the '{split}' ids of {split_table} ({len(want)}) "
                "in order: the matrix belongs to another split table",
            )
        parts.append(part)
    return D, sidecar, parts[0], parts[1]
