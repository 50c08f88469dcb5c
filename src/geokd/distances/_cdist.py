"""Procrustes-DTW distances between landmark sequences (the teacher's distance matrix).

A sequence is a float array of shape (T, K, 3): T frames of K landmarks in 3-D.

Frame costs (``metric``)
------------------------
``"procrustes"`` (default)
    Centre each frame X, Y (K, 3) on its mean over landmarks, divide by its Frobenius norm,
    find the PROPER rotation Q (det +1) minimising ||X^ - Y^ Q||_F and return the SUM over the
    K landmarks of the Euclidean norms of the rows of X^ - Y^ Q. Symmetric; invariant to
    translation, scale and rotation of either frame. (The frame is first divided by its largest
    centred coordinate, so no magnitude from 1e-300 to 1e300 under- or overflows.) A *degenerate*
    frame, whose largest centred |coordinate| is <= 1e-12 times its largest raw |coordinate|
    (e.g. all landmarks at one point), normalises to all zeros:
    its cost against Y^ is then sum_k ||Y^_k|| (0 between two degenerate frames) and the
    rotation is irrelevant. When the optimal rotation is not unique (e.g. a collinear frame
    against a non-collinear one) the cost is that of the rotation returned by a Jacobi
    eigen-solve of Horn's key matrix (deterministic, but a property of the solver).
``"paper"``
    The original code's cost, "as published", for comparison tables only: normalisation by
    Frobenius norm + 1e-15, M = X0^T Y0 = U S V^T, R = U V^T (the sign of V^T's last row
    flipped when det < 0), cost = sum of row norms of X0 - Y0 R. R is the INVERSE of the optimal
    rotation (defect 1 of the paper notes), so this cost is not rotation invariant.
``"euclidean"``
    No alignment: sum over landmarks of the Euclidean distances of the raw frames.
``"hand"``
    Wrist-anchored variant, for hands of 21 landmarks (MediaPipe order, wrist = landmark 0).
    Per hand: subtract the wrist from every landmark, divide by the Frobenius norm of the
    anchored frame (degenerate -> zeros, as above), find the proper rotation Q minimising
    ||X^ - Y^ Q||_F, then cost = f1/s1 + f2/s2 + max(0, f3 - delta)^2/s3 with
    f1 = ||X^ - Y^ Q||_F (the residual norm, not squared), f2 = angle(Q)^2 (radians, in
    [0, pi]), f3 = distance between the two RAW wrists. Defaults s1=0.5111, s2=1.6964,
    s3=0.1191, delta=0.2044. K must be 21 * H: H hands of 21 landmarks each (K = 42: both
    hands, each with its own rotation), the cost is summed over the hands. If either anchored
    frame is degenerate the rotation is the identity (f2 = 0).

DTW
---
Classic DTW with steps (1, 0), (0, 1), (1, 1), no normalisation:
D[0][0] = c(0, 0), D[i][j] = c(i, j) + min(D[i-1][j], D[i][j-1], D[i-1][j-1]),
distance = D[m-1][n-1] (the original's D[m, n] with its padded first row and column).
Optional Sakoe-Chiba band ``window`` (frames; None = no band, the default): cell (i, j) is
allowed iff |i - j| <= max(window, |m - n|), so (0, 0) and (m-1, n-1) are always inside and
a path always exists; a window >= max(m, n) is the same as no window. Symmetric in A and B.

Implementation: numba kernels (:mod:`geokd.distances._kernels`), closed-form rotations (QCP/Horn
quaternions, Jacobi fallback), all cores in parallel over sequence pairs, in float64 or, with
``dtype="float32"``, about twice as fast, within 6e-6 relative on real data;
``backend="torch"`` or ``"cuda"`` use PyTorch (:mod:`geokd.distances._torch`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(5, 20, 3)), rng.normal(size=(7, 20, 3))
>>> d = cdist([a, b])
>>> d.shape, float(d[0, 0]), bool(d[0, 1] == d[1, 0] > 0)
((2, 2), 0.0, True)
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numba
import numpy as np

from . import _kernels as _k
from ._prepared import PreparedSequences, matrix_from_pairs, precision_name
from .config import DistanceConfig

METRICS = {
    "procrustes": _k.PROCRUSTES,
    "paper": _k.PAPER,
    "euclidean": _k.EUCLIDEAN,
    "hand": _k.HAND,
}
HAND_DEFAULTS = {"s1": 0.5111, "s2": 1.6964, "s3": 0.1191, "delta": 0.2044}
HAND_SIZE = 21
DEGENERATE_RTOL = 1e-12
BACKENDS = ("cpu", "torch", "cuda", "auto")


def _check_sequences(seqs, name: str, K: int | None = None, kname: str = "") -> list[np.ndarray]:
    """Validate a list of (T, K, 3) arrays; ValueError naming the sequence otherwise."""
    if isinstance(seqs, np.ndarray) and seqs.ndim == 3:
        raise ValueError(
            f"{name}: expected a list of (T, K, 3) sequences, got one array of "
            f"shape {seqs.shape} (wrap a single sequence in a list)"
        )
    out = []
    for i, s in enumerate(seqs):
        where = f"{name}[{i}]"
        try:
            a = np.ascontiguousarray(s, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: not a numeric array ({exc})") from exc
        if a.ndim != 3:
            raise ValueError(f"{where}: expected shape (T, K, 3), got shape {a.shape}")
        if a.shape[2] != 3:
            raise ValueError(f"{where}: last dimension must be 3 (x, y, z), got {a.shape[2]}")
        if a.shape[0] == 0:
            raise ValueError(f"{where}: empty sequence (0 frames)")
        if a.shape[1] == 0:
            raise ValueError(f"{where}: no landmarks (K = 0)")
        if K is None:
            K, kname = a.shape[1], where
        elif a.shape[1] != K:
            raise ValueError(f"{where}: K = {a.shape[1]} landmarks, expected K = {K} (as {kname})")
        bad = ~np.isfinite(a)
        if bad.any():
            t = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{where}: contains NaN or inf (frame {t})")
        out.append(a)
    return out


def _check_params(metric: str, K: int | None, params: dict) -> np.ndarray:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    if metric != "hand":
        if params:
            raise TypeError(f"metric {metric!r} takes no parameters, got {sorted(params)}")
        return np.array([1.0, 1.0, 1.0, 0.0])
    unknown = set(params) - set(HAND_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown hand-metric parameters {sorted(unknown)}")
    p = {**HAND_DEFAULTS, **params}
    if not all(math.isfinite(float(v)) for v in p.values()) or min(p["s1"], p["s2"], p["s3"]) <= 0:
        raise ValueError(f"hand-metric parameters must be finite with s1, s2, s3 > 0: {p}")
    if K is not None and K % HAND_SIZE:
        raise ValueError(f"metric 'hand' needs K = 21 * H landmarks (H hands), got K = {K}")
    return np.array([p["s1"], p["s2"], p["s3"], p["delta"]], dtype=np.float64)


def _normalised(F: np.ndarray, anchor: np.ndarray | None, paper: bool = False) -> np.ndarray:
    """Centre (on the mean, or on ``anchor``) and scale frames F (N, K, 3) to unit norm."""
    C = F - (F.mean(axis=1, keepdims=True) if anchor is None else anchor)
    if paper:  # as published, including its under/overflow behaviour
        return C / (np.sqrt(np.einsum("nkc,nkc->n", C, C)) + 1e-15)[:, None, None]
    cmax = np.abs(C).max(axis=(1, 2))
    deg = cmax <= DEGENERATE_RTOL * np.abs(F).max(axis=(1, 2))
    C = C / np.where(deg, 1.0, cmax)[:, None, None]  # max |C| = 1: no under/overflow below
    X = C / np.where(deg, 1.0, np.sqrt(np.einsum("nkc,nkc->n", C, C)))[:, None, None]
    X[deg] = 0.0
    return X


def _pad4(X: np.ndarray) -> np.ndarray:
    """Append zero landmarks up to a multiple of 4 (the kernels' unrolling; they add exactly 0)."""
    pad = -X.shape[1] % 4
    return np.concatenate([X, np.zeros((X.shape[0], pad, 3))], axis=1) if pad else X


def _frame_rows(F: np.ndarray, metric: str) -> tuple[np.ndarray, int, int]:
    """Prepared frames (N, RW): normalised, padded coordinates then extras; G; padded K."""
    N, K, _ = F.shape
    if metric == "euclidean":
        X, extras, G = _pad4(F), [np.zeros((N, 1))], 1
    elif metric in ("procrustes", "paper"):
        X, G = _pad4(_normalised(F, None, paper=metric == "paper")), 1
        extras = [np.einsum("nkc,nkc->n", X, X)[:, None]]
    else:
        G = K // HAND_SIZE
        hands = [F[:, h * HAND_SIZE : (h + 1) * HAND_SIZE] for h in range(G)]
        Xs = [_pad4(_normalised(H, H[:, :1])) for H in hands]
        X = np.concatenate(Xs, axis=1)
        norms = np.stack([np.einsum("nkc,nkc->n", x, x) for x in Xs], axis=1)
        extras = [norms, np.concatenate([H[:, 0] for H in hands], axis=1)]  # raw wrists
    return np.concatenate([X.reshape(N, 3 * X.shape[1]), *extras], axis=1), G, X.shape[1]


def prepare(
    sequences,
    metric: str = "procrustes",
    *,
    name: str = "sequences",
    like: PreparedSequences | None = None,
    dtype=DistanceConfig.precision,
    **metric_params,
) -> PreparedSequences:
    """Validate and normalise sequences once for ``metric`` (see :class:`PreparedSequences`).

    ``dtype``: precision of the prepared frames, "float64" or "float32" (the frames are
    normalised in float64, then rounded): the numba kernels compute in that precision.

    >>> import numpy as np
    >>> p = prepare([np.ones((4, 20, 3)), np.zeros((2, 20, 3))])
    >>> len(p), p.lengths.tolist(), p.RW
    (2, [4, 2], 61)
    """
    dtype = precision_name(dtype)
    if isinstance(sequences, PreparedSequences):
        params = _check_params(metric, sequences.K, metric_params)
        if sequences.metric != metric or not np.array_equal(sequences.params, params):
            raise ValueError(
                f"{name}: prepared for metric {sequences.metric!r} with parameters "
                f"{sequences.params.tolist()}, not {metric!r} {params.tolist()}"
            )
        if sequences.dtype != dtype:
            raise ValueError(f"{name}: prepared in {sequences.dtype}, not {dtype}")
        return sequences
    if like is None:
        seqs = _check_sequences(sequences, name)
    else:  # the K of an already prepared set (the queries)
        seqs = _check_sequences(sequences, name, like.K, "the queries")
    K = seqs[0].shape[1] if seqs else 1
    params = _check_params(metric, K, metric_params)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    F = np.concatenate(seqs) if seqs else np.zeros((0, K, 3))
    rows, G, Kp = _frame_rows(F, metric)
    RW = rows.shape[1]
    roff = np.concatenate([[0], np.cumsum(lengths)])[:-1].astype(np.int64)
    ntiles = (lengths + _k.TW - 1) // _k.TW
    toff = (np.concatenate([[0], np.cumsum(ntiles)])[:-1] * RW * _k.TS).astype(np.int64)
    rows = rows.astype(dtype, copy=False)
    tiles = np.zeros(int(ntiles.sum()) * RW * _k.TS + _k.TS, dtype=dtype)
    for s, (o, T, nt) in enumerate(zip(roff, lengths, ntiles, strict=True)):
        frames = np.zeros((nt * _k.TW, RW), dtype=dtype)
        frames[:T] = rows[o : o + T]
        block = np.zeros((nt, RW, _k.TS), dtype=dtype)  # (tile, row, lane); lanes >= TW: padding
        block[:, :, : _k.TW] = frames.reshape(nt, _k.TW, RW).transpose(0, 2, 1)
        tiles[toff[s] : toff[s] + block.size] = block.ravel()
    return PreparedSequences(
        metric, K, Kp, G, RW, lengths, np.ascontiguousarray(rows.ravel()), roff, tiles, toff, params
    )


def _threads(n_jobs: int | None) -> int:
    top = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None or n_jobs == -1:
        return top
    if not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be None, -1 or a positive int, got {n_jobs!r}")
    return min(int(n_jobs), top)


@contextmanager
def _num_threads(n: int):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _window(window) -> int:
    if window is None:
        return -1
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 0:
        raise ValueError(f"window must be None or an int >= 0, got {window!r}")
    return int(window)


def _run_pairs(
    P: PreparedSequences, pa: np.ndarray, pb: np.ndarray, window: int, nthreads: int
) -> np.ndarray:
    """DTW distances of pairs (pa[p], pb[p]) of P's sequences (any order, any roles)."""
    la, lb = P.lengths[pa], P.lengths[pb]
    swap = la > lb  # the longer sequence supplies the SIMD lanes
    prow, pcol = np.where(swap, pb, pa), np.where(swap, pa, pb)
    order = np.argsort(-(la * lb), kind="stable")  # longest first: load balance
    out = np.empty(pa.shape[0])
    if pa.shape[0]:
        with _num_threads(nthreads):
            out[order] = _k.dtw_pairs(
                METRICS[P.metric],
                P.geo,
                P.rows,
                P.roff,
                P.tiles,
                P.toff,
                P.lengths,
                prow[order],
                pcol[order],
                window,
                P.params,
                nthreads,
            )
    return out


def cdist(
    queries,
    references=None,
    *,
    metric: str = "procrustes",
    window: int | None = None,
    n_jobs: int | None = None,
    backend: str = "cpu",
    dtype=DistanceConfig.precision,
    progress: bool = False,
    **metric_params,
) -> np.ndarray:
    """DTW distance matrix (float64) between lists of (T_i, K, 3) sequences.

    Parameters
    ----------
    queries, references : list of arrays (T_i, K, 3), or :class:`PreparedSequences`
        Any lengths; the same K for all. ``references=None``: the symmetric matrix of
        ``queries`` against itself, each pair computed once, zero diagonal.
    metric : {"procrustes", "paper", "euclidean", "hand"}
        Frame cost (module docstring). ``metric_params``: s1, s2, s3, delta for "hand".
    window : int or None
        Sakoe-Chiba half-width in frames (module docstring); None = no band.
    n_jobs : int or None
        Threads (None or -1: all of numba's threads).
    backend : {"cpu", "torch", "cuda", "auto"}
        "cpu": numba kernels. "torch": PyTorch on the CPU; "cuda": PyTorch on the GPU;
        "auto": "cuda" if ``torch.cuda.is_available()`` else "cpu".
    dtype : {"float64", "float32"} or the numpy types
        Precision of the frames and of the frame costs (alignment, rotation, residuals), on
        every backend; the DTW recursion and the result are float64 either way. float32 is
        faster (twice the SIMD lanes) and agrees with float64 to 6e-6 relative at most on real
        UTD-MHAD (``bench/README.md``: measured error and speed).
    progress : bool
        Show a progress bar (tqdm: a widget in notebooks, a line on a terminal) counting the
        pairs; they then run in about 50 chunks of equal work (the same values; the torch
        backends batch differently, so equal to rounding there).

    Returns
    -------
    D : ndarray (len(queries), len(references))

    >>> import numpy as np
    >>> a = np.random.default_rng(1).normal(size=(6, 20, 3))
    >>> float(cdist([a], [a * 3.0 + 1.0])[0, 0]) < 1e-12  # scale and translation invariant
    True
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    dtype = precision_name(dtype)
    w = _window(window)
    nthreads = _threads(n_jobs)
    if backend == "auto":
        from . import _torch

        backend = "cuda" if _torch.cuda_available() else "cpu"
    kernel_dtype = dtype if backend == "cpu" else "float64"  # torch rounds its own copy
    Q = prepare(queries, metric, name="queries", dtype=kernel_dtype, **metric_params)
    R = (
        None
        if references is None
        else prepare(
            references,
            metric,
            name="references",
            like=Q if len(Q) else None,
            dtype=kernel_dtype,
            **metric_params,
        )
    )
    if R is not None and not (len(Q) and len(R)):
        return np.zeros((len(Q), len(R)))
    if backend != "cpu":
        from . import _torch

        device = "cuda" if backend == "cuda" else "cpu"
        return _torch.cdist(Q, R, window=w, device=device, dtype=dtype, progress=progress)
    run = lambda P, ia, ib: _run_pairs(P, ia, ib, w, nthreads)  # noqa: E731
    return matrix_from_pairs(Q, R, run, progress=progress)


def pair_distance(
    a, b, *, metric: str = "procrustes", window: int | None = None, **metric_params
) -> float:
    """DTW distance of two (T, K, 3) sequences.

    >>> import numpy as np
    >>> a = np.random.default_rng(2).normal(size=(4, 20, 3))
    >>> pair_distance(a, a[:, ::-1]) > 0
    True
    """
    return float(cdist([a], [b], metric=metric, window=window, n_jobs=1, **metric_params)[0, 0])


def frame_cost_matrix(a, b, metric: str = "procrustes", **metric_params) -> np.ndarray:
    """(m, n) matrix of frame costs c(a[i], b[j]) (the DTW input).

    >>> import numpy as np
    >>> a = np.random.default_rng(3).normal(size=(3, 20, 3))
    >>> bool(frame_cost_matrix(a, a).diagonal().max() < 1e-12)
    True
    """
    P = prepare([a, b], metric, name="(a, b)", **metric_params)
    m, n = int(P.lengths[0]), int(P.lengths[1])
    return _k.cost_matrix(
        METRICS[metric], P.geo, P.rows, P.roff[0], m, P.tiles, P.toff[1], n, P.params
    )


def knn_query(
    query,
    references,
    k: int = 1,
    *,
    metric: str = "procrustes",
    window: int | None = None,
    prune: bool = True,
    n_jobs: int | None = None,
    return_stats: bool = False,
    dtype=DistanceConfig.precision,
    **metric_params,
):
    """Exact k nearest references of a query (or of each query of a list) by DTW distance.

    Pruning (``prune=True``) gives the same result as the full computation: references are
    visited by increasing lower bound c(0, 0) + c(m-1, n-1) (every warping path passes both
    cells), skipped once that bound exceeds the current k-th distance, and each DTW is
    abandoned as soon as a whole row exceeds it. Ties are broken by the lowest reference index.

    Parameters
    ----------
    query : array (T, K, 3), or a list of them / :class:`PreparedSequences`
    references : list of arrays (T_i, K, 3), or :class:`PreparedSequences`
    k : int, 1 <= k <= len(references)
    dtype : "float64" or "float32", as in :func:`cdist`

    Returns
    -------
    indices : int64 (k,), or (n_queries, k) for a list of queries
    distances : float64, same shape, ascending (distance, index)
    rows : int64 () or (n_queries,), only with ``return_stats``: DTW rows computed per query
        (the full computation computes T_query * len(references))

    >>> import numpy as np
    >>> refs = [np.random.default_rng(i).normal(size=(5, 20, 3)) for i in range(4)]
    >>> idx, dist = knn_query(refs[2], refs, k=2)
    >>> int(idx[0]), float(dist[0]) < 1e-12
    (2, True)
    """
    single = isinstance(query, np.ndarray) and query.ndim == 3
    Q = prepare([query] if single else query, metric, name="query", dtype=dtype, **metric_params)
    like = Q if len(Q) else None
    R = prepare(references, metric, name="references", like=like, dtype=dtype, **metric_params)
    if len(Q) and (Q.K != R.K or Q.metric != R.metric or not np.array_equal(Q.params, R.params)):
        raise ValueError(f"references: K = {R.K} landmarks, but the query has K = {Q.K}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(R):
        raise ValueError(f"k must be an int in [1, {len(R)}], got {k!r}")
    nthreads = _threads(n_jobs)
    nchunks = max(1, min(len(R), nthreads // len(Q))) if len(Q) else 1  # few queries: split R
    with _num_threads(nthreads):
        idx, dist, computed = _k.knn_many(
            METRICS[metric],
            R.geo,
            Q.rows,
            Q.roff,
            Q.lengths,
            R.tiles,
            R.toff,
            R.lengths,
            int(k),
            _window(window),
            R.params,
            bool(prune),
            nchunks,
        )
    idx, dist = idx.reshape(len(Q), nchunks * k), dist.reshape(len(Q), nchunks * k)
    order = np.lexsort((idx, dist), axis=-1)[:, :k]  # merge the chunks: (distance, index)
    idx = np.take_along_axis(idx, order, axis=-1)
    dist = np.take_along_axis(dist, order, axis=-1)
    computed = computed.sum(axis=1)
    if single:
        idx, dist, computed = idx[0], dist[0], computed[0]
    return (idx, dist, computed) if return_stats else (idx, dist)
