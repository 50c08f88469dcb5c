"""PyTorch backend of :func:`geokd.distances.cdist` (``backend="torch"`` / ``"cuda"``).

Simple and float64 throughout: pairs of sequences are batched (padded to the batch's longest
lengths), their frame-cost matrices computed at once (batched 3x3 cross-covariances, batched
``torch.linalg.svd`` for the proper rotations, batched residual norms), cells outside a pair's
lengths or band set to +inf, then DTW runs as an anti-diagonal wavefront over the whole batch.
It reuses the CPU path's normalised frames (:func:`geokd.distances.prepare`), so both backends
follow the same contract and agree to ~1e-12.
"""

from __future__ import annotations

import numpy as np

BUDGET = 1 << 24  # elements of the largest intermediate (batch, m, n, K, 3) per chunk
BUDGET_CUDA = 1 << 27  # the same on a GPU (1 GiB per float64 intermediate): fewer, larger chunks


def cuda_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def _rotations(S, transpose: bool):
    """Proper rotations R (.., 3, 3) maximising <R, S> (R y ~ x for S = sum x y^T)."""
    import torch

    U, _, Vh = torch.linalg.svd(S)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    U = torch.cat([U[..., :2], U[..., 2:] * d[..., None, None]], dim=-1)
    R = U @ Vh
    return R.transpose(-1, -2) if transpose else R


def _cost_matrices(P, A, B, metric: str):
    """Frame costs (b, M, N) of prepared frames A (b, M, RW) against B (b, N, RW)."""
    import torch

    K, G = P.Kp, P.G  # coordinates padded with zero landmarks (they add exactly 0)
    b, M, N = A.shape[0], A.shape[1], B.shape[1]
    X = A[..., : 3 * K].reshape(b, M, K, 3)
    Y = B[..., : 3 * K].reshape(b, N, K, 3)
    if metric == "euclidean":
        return torch.linalg.vector_norm(X[:, :, None] - Y[:, None], dim=-1).sum(-1)
    cost = torch.zeros(b, M, N, dtype=A.dtype, device=A.device)
    gk = K // G
    for g in range(G):
        x, y = X[:, :, g * gk : (g + 1) * gk], Y[:, :, g * gk : (g + 1) * gk]
        S = torch.einsum("bika,bjkc->bijac", x, y)  # (b, M, N, 3, 3)
        R = _rotations(S, transpose=metric == "paper")
        if metric == "hand":  # a degenerate hand: identity rotation (documented)
            deg = (A[..., 3 * K + g] == 0)[:, :, None] | (B[..., 3 * K + g] == 0)[:, None, :]
            R = torch.where(deg[..., None, None], torch.eye(3, dtype=A.dtype, device=A.device), R)
        res = x[:, :, None] - torch.einsum("bijac,bjkc->bijka", R, y)  # (b, M, N, gk, 3)
        if metric != "hand":
            cost = cost + torch.linalg.vector_norm(res, dim=-1).sum(-1)
            continue
        s1, s2, s3, delta = (float(v) for v in P.params)
        f1 = torch.sqrt((res * res).sum(dim=(-1, -2)))
        axial = torch.stack(
            [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]],
            dim=-1,
        )
        trace = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
        f2 = torch.atan2(torch.linalg.vector_norm(axial, dim=-1), trace - 1.0)
        w = 3 * K + G + 3 * g
        f3 = torch.linalg.vector_norm(A[:, :, None, w : w + 3] - B[:, None, :, w : w + 3], dim=-1)
        f3 = torch.clamp(f3 - delta, min=0.0)
        cost = cost + f1 / s1 + f2 * f2 / s2 + f3 * f3 / s3
    return cost


def _dtw_wavefront(C, m, n):
    """DTW of a batch of padded cost matrices C (b, M, N) (+inf outside); result (b,)."""
    import torch

    b, M, N = C.shape
    inf = torch.tensor(float("inf"), dtype=C.dtype, device=C.device)
    i = torch.arange(M, device=C.device)
    prev2 = torch.full((b, M), float("inf"), dtype=C.dtype, device=C.device)
    prev1 = prev2.clone()
    out = torch.full((b,), float("inf"), dtype=C.dtype, device=C.device)
    last = m + n - 2
    rows = torch.arange(b, device=C.device)
    for d in range(M + N - 1):
        j = d - i
        valid = (j >= 0) & (j < N)
        c = torch.where(valid, C[:, i, j.clamp(0, N - 1)], inf)  # (b, M) diagonal d
        if d == 0:
            cur = torch.where(i == 0, c, inf)
        else:
            up = torch.cat(
                [torch.full((b, 1), float("inf"), dtype=C.dtype, device=C.device), prev1[:, :-1]],
                dim=1,
            )  # (i-1, j): diagonal d-1, index i-1
            diag = torch.cat(
                [torch.full((b, 1), float("inf"), dtype=C.dtype, device=C.device), prev2[:, :-1]],
                dim=1,
            )  # (i-1, j-1): diagonal d-2
            cur = c + torch.minimum(torch.minimum(up, prev1), diag)  # prev1[i]: (i, j-1)
        out = torch.where(last == d, cur[rows, m - 1], out)  # no host sync per diagonal
        prev2, prev1 = prev1, cur
    return out


def _gather(rows, starts, lengths, T: int, dev):
    """Frames rows[starts[r] : starts[r] + lengths[r]] of every pair, zero-padded to (b, T, RW)
    in one indexed copy (not one copy per pair)."""
    import torch

    t = np.arange(T)
    idx = torch.as_tensor(starts[:, None] + np.minimum(t, lengths[:, None] - 1), device=dev)
    valid = torch.as_tensor(t[None, :] < lengths[:, None], device=dev)
    return torch.where(valid[..., None], rows[idx], torch.zeros((), dtype=rows.dtype, device=dev))


def _pair_distances(P, pa, pb, window: int, device: str) -> np.ndarray:
    import torch

    dev = torch.device(device)
    rows = torch.as_tensor(P.rows.reshape(-1, P.RW), device=dev)
    lens = P.lengths
    budget = BUDGET_CUDA if dev.type == "cuda" else BUDGET
    order = np.lexsort((lens[pb], lens[pa]))
    out = np.empty(len(pa))
    start = 0
    while start < len(order):  # greedy chunks under the memory budget
        stop = start + 1
        while stop < len(order):
            sel = order[start : stop + 1]
            if (stop + 1 - start) * lens[pa[sel]].max() * lens[pb[sel]].max() * P.Kp * 3 > budget:
                break
            stop += 1
        sel = order[start:stop]
        m, n = lens[pa[sel]], lens[pb[sel]]
        M, N = int(m.max()), int(n.max())
        A = _gather(rows, P.roff[pa[sel]], m, M, dev)  # (b, M, RW), zero after each length
        B = _gather(rows, P.roff[pb[sel]], n, N, dev)
        C = _cost_matrices(P, A, B, P.metric)
        mt = torch.as_tensor(m, device=dev)
        nt = torch.as_tensor(n, device=dev)
        ii = torch.arange(M, device=dev)[None, :, None]
        jj = torch.arange(N, device=dev)[None, None, :]
        keep = (ii < mt[:, None, None]) & (jj < nt[:, None, None])
        if window >= 0:
            w = torch.clamp(torch.abs(mt - nt), min=window)[:, None, None]
            keep &= torch.abs(ii - jj) <= w
        C = torch.where(keep, C, torch.tensor(float("inf"), dtype=C.dtype, device=dev))
        out[sel] = _dtw_wavefront(C, mt, nt).cpu().numpy()
        start = stop
    return out


def cdist(Q, R, *, window: int, device: str) -> np.ndarray:
    """Distance matrix of prepared queries Q against prepared references R (None: symmetric)."""
    from ._prepared import matrix_from_pairs

    if device == "cuda" and not cuda_available():
        raise RuntimeError("backend='cuda' but torch.cuda.is_available() is False")
    return matrix_from_pairs(Q, R, lambda P, ia, ib: _pair_distances(P, ia, ib, window, device))
