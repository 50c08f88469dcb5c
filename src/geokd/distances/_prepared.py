"""Prepared (normalised) sequence sets and the one pair-planning path of every backend."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

#: precisions of the frame costs, every backend
PRECISIONS = ("float64", "float32")


def precision_name(dtype) -> str:
    """The precision, "float64" or "float32", of a dtype-like: a name, a numpy or a torch
    type; else ValueError."""
    try:
        name = np.dtype(dtype).name
    except TypeError:  # torch.float32 and the like
        name = str(dtype).replace("torch.", "")
    if name not in PRECISIONS:
        raise ValueError(f"dtype must be one of {PRECISIONS} (or their types), got {dtype!r}")
    return name


@dataclass(frozen=True)
class PreparedSequences:
    """Sequences normalised once for one metric, in the kernels' two layouts.

    Make one with :func:`prepare`; pass it anywhere a list of sequences is accepted to skip
    the validation and normalisation (e.g. many :func:`knn_query` calls on one training set).
    """

    metric: str
    K: int
    Kp: int  # K padded with zero landmarks to a multiple of 4 (per group)
    G: int  # landmark groups (hands) with their own rotation
    RW: int  # values per prepared frame: 3K + extras
    lengths: np.ndarray  # (N,) int64
    rows: np.ndarray  # (sum T * RW,) frame-major
    roff: np.ndarray  # (N,) first frame of each sequence in rows
    tiles: np.ndarray  # flat lane-major tiles, see geokd.distances._kernels
    toff: np.ndarray  # (N,) start of each sequence in tiles
    params: np.ndarray  # (4,) s1, s2, s3, delta

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def dtype(self) -> str:
        """Precision of the prepared frames: "float64" or "float32"."""
        return self.rows.dtype.name

    @property
    def geo(self) -> tuple[int, int, int]:
        """(RW, K, G), as the kernels take it."""
        return (self.RW, self.Kp, self.G)


def concat(a: PreparedSequences, b: PreparedSequences) -> PreparedSequences:
    """One prepared set holding a's sequences then b's."""
    if a.dtype != b.dtype:
        raise ValueError(f"references prepared in {b.dtype}, queries in {a.dtype}")
    if a.K != b.K or a.metric != b.metric or not np.array_equal(a.params, b.params):
        raise ValueError(
            f"references: K = {b.K} landmarks ({b.metric}) but queries have "
            f"K = {a.K} ({a.metric}), or different metric parameters"
        )
    frames = int(a.lengths.sum())
    cat = np.concatenate
    return PreparedSequences(
        a.metric,
        a.K,
        a.Kp,
        a.G,
        a.RW,
        cat([a.lengths, b.lengths]),
        cat([a.rows, b.rows]),
        cat([a.roff, b.roff + frames]),
        cat([a.tiles, b.tiles]),
        cat([a.toff, b.toff + a.tiles.size]),
        a.params,
    )


#: progress=True: the pairs run in this many chunks of about equal work (frame pairs)
PROGRESS_CHUNKS = 50


def with_progress(run, min_chunk: int = 1):
    """``run`` in chunks of about equal work (frame pairs), a tqdm bar counting the pairs.

    The values are those of one ``run`` call (each pair's distance depends on that pair only;
    a batched backend may round differently).
    ``min_chunk``: pairs per chunk at least (keeps every thread busy within a chunk). Called
    with at least one pair (matrix_from_pairs).
    """
    from tqdm.auto import tqdm

    def chunked(P: PreparedSequences, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        work = np.cumsum(P.lengths[ia] * P.lengths[ib])
        n_chunks = max(1, min(PROGRESS_CHUNKS, ia.size // max(min_chunk, 1)))
        cuts = np.searchsorted(work, work[-1] * np.arange(1, n_chunks) / n_chunks)
        bounds = np.unique(np.concatenate([[0], cuts, [ia.size]]).astype(np.int64))
        out = np.empty(ia.size)
        with tqdm(total=int(ia.size), unit="pair", desc="cdist", unit_scale=True) as bar:
            for lo, hi in pairwise(bounds):
                out[lo:hi] = run(P, ia[lo:hi], ib[lo:hi])
                bar.update(int(hi - lo))
        return out

    return chunked


def matrix_from_pairs(
    Q: PreparedSequences, R: PreparedSequences | None, run, progress: bool = False
) -> np.ndarray:
    """The one code path of every backend: list the sequence pairs, run them, place the values.

    ``R is None``: the symmetric (n, n) matrix from the upper-triangle pairs (mirrored, zero
    diagonal); else the (nq, nr) matrix of all pairs. ``run(P, ia, ib)`` returns the distances
    of pairs ``(ia[p], ib[p])`` of the prepared set ``P`` (int64 index arrays). ``progress``:
    run them in chunks under a progress bar (:func:`with_progress`; the same values).
    """
    if progress:
        run = with_progress(run, min_chunk=64)
    if R is None:
        n = len(Q)
        ia, ib = np.triu_indices(n, k=1)
        out = np.zeros((n, n))
        if ia.size:
            d = run(Q, ia.astype(np.int64), ib.astype(np.int64))
            out[ia, ib] = d
            out[ib, ia] = d
        return out
    nq, nr = len(Q), len(R)
    if not (nq and nr):
        return np.zeros((nq, nr))
    ia, ib = np.divmod(np.arange(nq * nr, dtype=np.int64), nr)
    return run(concat(Q, R), ia, ib + nq).reshape(nq, nr)
