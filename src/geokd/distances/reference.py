"""Plain, obviously correct implementations of the frame costs and DTW (tests, and the
report's alignment-path figure: :func:`dtw_path`).

Nothing here is fast: one ``numpy.linalg.svd`` per frame pair and nested Python loops.
:mod:`geokd.distances` must agree with these functions to 1e-9 relative.

It also holds a faithful port of the ORIGINAL per-pair algorithm of the paper's code release
(:func:`original_frame_cost`, :func:`original_distance`), used by the benchmark's "original"
baseline and to check the ``paper`` metric. That port reproduces defect 1 of the paper notes
(the transposed rotation ``R = U V^T``); it is not rotation invariant.
"""

from __future__ import annotations

import math

import numpy as np

#: a frame whose largest centred (or wrist-anchored) |coordinate| is <= DEGENERATE_RTOL times
#: its largest raw |coordinate| is degenerate: it normalises to all zeros (see geokd.distances).
DEGENERATE_RTOL = 1e-12
HAND_SIZE = 21
HAND_DEFAULTS = {"s1": 0.5111, "s2": 1.6964, "s3": 0.1191, "delta": 0.2044}


def normalise(frame: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Centre (or anchor on landmark ``anchor``) and scale a (K, 3) frame to unit norm.

    A degenerate frame (all landmarks at one point, up to rounding) becomes all zeros.
    """
    frame = np.asarray(frame, dtype=np.float64)
    centred = frame - (frame.mean(axis=0) if anchor is None else frame[anchor])
    cmax = float(np.max(np.abs(centred)))
    if cmax <= DEGENERATE_RTOL * float(np.max(np.abs(frame))):
        return np.zeros_like(centred)
    centred = centred / cmax  # avoids under/overflow of the squares
    return centred / math.sqrt(float(np.sum(centred * centred)))


def optimal_rotation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The proper rotation Q (det +1, 3x3) minimising ||x - y Q||_F, by SVD."""
    u, _, vt = np.linalg.svd(y.T @ x)  # y^T x = U S V^T; maximise tr(Q^T y^T x)
    d = 1.0 if np.linalg.det(u @ vt) >= 0.0 else -1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def rotation_angle(q: np.ndarray) -> float:
    """Angle in [0, pi] of a 3x3 rotation matrix (atan2 form, accurate near 0 and pi)."""
    axial = np.array([q[2, 1] - q[1, 2], q[0, 2] - q[2, 0], q[1, 0] - q[0, 1]])
    return math.atan2(float(np.linalg.norm(axial)), float(np.trace(q)) - 1.0)


def procrustes_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Sum over landmarks of ||x_k - (y Q)_k|| after centring, scaling and optimal rotation."""
    x, y = normalise(a), normalise(b)
    q = optimal_rotation(x, y)
    return float(np.sum(np.linalg.norm(x - y @ q, axis=1)))


def euclidean_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Sum over landmarks of the Euclidean distances of the raw frames."""
    return float(np.sum(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=1)))


def hand_cost(a: np.ndarray, b: np.ndarray, s1=0.5111, s2=1.6964, s3=0.1191, delta=0.2044):
    """Wrist-anchored cost, summed over the hands (21 landmarks each, wrist first)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    total = 0.0
    for h in range(a.shape[0] // HAND_SIZE):
        ha, hb = a[h * HAND_SIZE : (h + 1) * HAND_SIZE], b[h * HAND_SIZE : (h + 1) * HAND_SIZE]
        x, y = normalise(ha, anchor=0), normalise(hb, anchor=0)
        if not x.any() or not y.any():
            q = np.eye(3)  # the rotation is undefined: identity (documented)
        else:
            q = optimal_rotation(x, y)
        f1 = float(np.linalg.norm(x - y @ q))
        f2 = rotation_angle(q) ** 2
        f3 = float(np.linalg.norm(ha[0] - hb[0]))
        total += f1 / s1 + f2 / s2 + max(0.0, f3 - delta) ** 2 / s3
    return total


def paper_cost(a: np.ndarray, b: np.ndarray) -> float:
    """The ``paper`` metric: same as :func:`original_frame_cost`."""
    return original_frame_cost(a, b)


COSTS = {
    "procrustes": procrustes_cost,
    "paper": paper_cost,
    "euclidean": euclidean_cost,
    "hand": hand_cost,
}


def cost_matrix(a: np.ndarray, b: np.ndarray, metric: str = "procrustes", **params) -> np.ndarray:
    """(m, n) frame-cost matrix, one reference call per frame pair."""
    fn = COSTS[metric]
    return np.array([[fn(fa, fb, **params) for fb in b] for fa in a], dtype=np.float64)


def band(i: int, m: int, n: int, window: int | None) -> tuple[int, int]:
    """Columns [lo, hi) of row i inside the band |i - j| <= max(window, |m - n|)."""
    if window is None:
        return 0, n
    w = max(window, abs(m - n))
    return max(0, i - w), min(n, i + w + 1)


def accumulated_cost(cost: np.ndarray, window: int | None = None) -> np.ndarray:
    """The DTW table of a cost matrix: D[i][j] = cost[i][j] + min(up, left, diagonal), with
    D[0][0] = cost[0][0] and inf outside the band (:func:`band`)."""
    cost = np.asarray(cost, dtype=np.float64)
    m, n = cost.shape
    d = np.full((m, n), np.inf)
    for i in range(m):
        lo, hi = band(i, m, n, window)
        for j in range(lo, hi):
            if i == 0 and j == 0:
                d[i, j] = cost[0, 0]
                continue
            best = math.inf
            if i > 0:
                best = min(best, d[i - 1, j])
            if j > 0:
                best = min(best, d[i, j - 1])
            if i > 0 and j > 0:
                best = min(best, d[i - 1, j - 1])
            d[i, j] = cost[i, j] + best
    return d


def dtw(cost: np.ndarray, window: int | None = None) -> float:
    """Classic DTW on a cost matrix: D[i][j] = cost[i][j] + min(up, left, diagonal)."""
    return float(accumulated_cost(cost, window)[-1, -1])


def dtw_path(cost: np.ndarray, window: int | None = None) -> tuple[np.ndarray, float]:
    """The optimal DTW warping path over a frame-cost matrix, and its total cost.

    The recursion of :func:`dtw` (steps (1,0), (0,1), (1,1), no normalisation, optional
    Sakoe-Chiba ``window``), backtracked from ``(m-1, n-1)`` to ``(0, 0)``; on a tie the
    diagonal step is taken first, then the step up (i - 1), then left (j - 1).

    Parameters
    ----------
    cost : numpy.ndarray
        The (m, n) frame-cost matrix (:func:`cost_matrix`, or
        :func:`geokd.distances.frame_cost_matrix`).
    window : int, optional
        Sakoe-Chiba half-width, as in :func:`geokd.distances.cdist`.

    Returns
    -------
    path : numpy.ndarray
        (L, 2) int array of (i, j) frame pairs from (0, 0) to (m-1, n-1).
    distance : float
        ``D[m-1, n-1]``, the DTW distance (the sum of the costs along the path; equal to
        :func:`dtw`).
    """
    d = accumulated_cost(cost, window)
    m, n = d.shape
    i, j = m - 1, n - 1
    path = [(i, j)]
    while (i, j) != (0, 0):
        steps = []
        if i > 0 and j > 0:
            steps.append((d[i - 1, j - 1], i - 1, j - 1))
        if i > 0:
            steps.append((d[i - 1, j], i - 1, j))
        if j > 0:
            steps.append((d[i, j - 1], i, j - 1))
        _, i, j = min(steps, key=lambda s: s[0])  # min keeps the first of equal values
        path.append((i, j))
    return np.array(path[::-1], dtype=np.int64), float(d[m - 1, n - 1])


def distance(a, b, metric: str = "procrustes", window: int | None = None, **params) -> float:
    """DTW distance of two (T, K, 3) sequences under ``metric``."""
    return dtw(cost_matrix(a, b, metric, **params), window)


def cdist(queries, references=None, metric="procrustes", window=None, **params) -> np.ndarray:
    """Distance matrix by brute force (symmetric with zero diagonal when references is None)."""
    sym = references is None
    refs = queries if sym else references
    out = np.zeros((len(queries), len(refs)))
    for i, a in enumerate(queries):
        for j, b in enumerate(refs):
            if sym and j <= i:
                out[i, j] = out[j, i] if j < i else 0.0
            else:
                out[i, j] = distance(a, b, metric, window, **params)
    return out


# --- faithful port of the original code (defect 1 included) ---------------------------------


def original_frame_cost(X: np.ndarray, Y: np.ndarray) -> float:
    """The original per-frame-pair cost, as published (transposed rotation: defect 1)."""
    X0 = X - np.mean(X, axis=0)
    Y0 = Y - np.mean(Y, axis=0)
    X0 = X0 / (np.linalg.norm(X0) + 1e-15)
    Y0 = Y0 / (np.linalg.norm(Y0) + 1e-15)
    M = X0.T @ Y0
    U, _S, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        Vt[-1, :] *= -1
        R = U @ Vt
    return float(np.sum(np.linalg.norm(X0 - Y0 @ R, axis=1)))


def original_distance(A: np.ndarray, B: np.ndarray) -> float:
    """The original DTW: nested Python loops, one SVD per cell, D[0,0] = 0, result D[m, n]."""
    m, n = len(A), len(B)
    D = np.full((m + 1, n + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            cost = original_frame_cost(A[i - 1], B[j - 1])
            D[i, j] = cost + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return float(D[m, n])
