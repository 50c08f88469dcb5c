"""PyTorch backend of :func:`geokd.distances.cdist` (``backend="torch"`` / ``"cuda"``).

The same closed-form frame costs as the numba kernels (:mod:`geokd.distances._kernels`),
vectorised, with no SVD and no (pairs, m, n, K, 3) tensor:

* the 3x3 cross-covariances S of every frame pair of a tile, one batched matmul over the
  landmarks, laid out as 9 contiguous rows of frame pairs;
* the optimal proper rotation by QCP, formula for formula as the kernel: Horn's 4x4 key matrix
  N(S), the largest root of its characteristic quartic (upper bound, 4 Laguerre steps, one
  Newton step), the quaternion from the adjugate of N - lambda I, R(q). Frame pairs the kernel
  would send to its robust path (Newton step above ``STEP_TOL``, adjugate diagonal at most
  ``QUAL_TOL``) are redone here the same way, in float64: Laguerre to convergence from a fresh
  start, then a batched cyclic Jacobi eigen-solve of N (the kernel's sweeps, skips and ties)
  where the adjugate is still ill-conditioned. S = 0 (a degenerate, all-zero frame) gives the
  identity, as the kernel's Jacobi does on N = 0;
* the residuals x_k - R y_k, ``KC`` landmarks at a time (multiply-adds on (pairs, n, KC, r)
  tensors), their Euclidean norms summed (``procrustes``; ``paper`` with R transposed;
  ``euclidean`` with R = I), or their squares summed then square-rooted (``hand``: f1, with
  f2 = 2 atan2(|q_v|, |q_w|) from the quaternion and f3 from the raw wrists).

Memory: the frame pairs of a chunk are processed in tiles of at most ``budget // 9`` frame
pairs, so every per-frame-pair intermediate (S, R, a KC-landmark residual: 9 values per frame
pair) has at most ``budget`` elements; a chunk's DTW cost matrix (pairs, m, n) too. The floor
is one row of one pair: a budget below max(9 n, (n + 1) RW, m n) elements acts as that floor.

Precision: ``dtype`` (float64 default, or float32) is that of the frames, S, the QCP stage,
the residuals and the frame costs; the robust path (rare lanes) always runs in float64 on the
(float32-rounded) S, and the DTW recursion always sums the costs in float64. In float32 the
Newton-step acceptance is the kernel's ``STEP_TOL32`` (float32 cannot resolve 1e-8). float32 assumes
full-precision float32 matmuls (PyTorch's default; TF32, e.g. after
``torch.set_float32_matmul_precision("high")`` on a GPU, rounds S to ~1e-3 and voids the tested
tolerance).

Where the optimal rotation is not unique (an exactly collinear frame) the 'procrustes' cost does
not depend on the choice, but the 'paper' (transposed rotation) and 'hand' (rotation angle)
costs do: there the CPU kernel's own value is set by rounding noise in its Jacobi fallback, and
this backend's can differ from it by percents (tests/test_torch_backend.py).
"""

from __future__ import annotations

import numpy as np

from ._kernels import QUAL_TOL, ROBUST_ITERS, STEP_TOL, STEP_TOL32, adjugate_entries
from ._prepared import matrix_from_pairs, precision_name
from .config import DistanceConfig

BUDGET = 1 << 19  # elements of the largest intermediate per tile / chunk, on the CPU (cache-sized)
BUDGET_CUDA = 1 << 27  # the same on a GPU (1 GiB per float64 intermediate): fewer, larger tiles
WIDTH = 9  # values per frame pair of the largest per-frame-pair intermediate (S, R, KC)
KC = 9  # landmarks per residual pass: (frame pairs, KC landmarks) = WIDTH values


def cuda_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def _torch_dtype(dtype):
    import torch

    return getattr(torch, precision_name(dtype))


# --- QCP, term for term as geokd.distances._kernels ------------------------------------------


def _key_matrix(s):
    """Horn's key matrix N (upper triangle, row-major) of S = (sxx, sxy, ..., szz)."""
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = s
    return (
        sxx + syy + szz,
        szy - syz,
        sxz - szx,
        syx - sxy,
        sxx - syy - szz,
        syx + sxy,
        sxz + szx,
        -sxx + syy - szz,
        szy + syz,
        -sxx - syy + szz,
    )


def _coeffs(s, N, e0):
    """det(N - l I) = l^4 + c2 l^2 + c1 l + c0 and an upper bound of lambda_max (kernel's)."""
    import torch

    n00, n01, n02, n03, n11, n12, n13, n22, n23, n33 = N
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = s
    fro2 = (
        sxx * sxx
        + sxy * sxy
        + sxz * sxz
        + syx * syx
        + syy * syy
        + syz * syz
        + szx * szx
        + szy * szy
        + szz * szz
    )
    det_s = (
        sxx * (syy * szz - syz * szy)
        - sxy * (syx * szz - syz * szx)
        + sxz * (syx * szy - syy * szx)
    )
    c0 = (
        (n00 * n11 - n01 * n01) * (n22 * n33 - n23 * n23)
        - (n00 * n12 - n01 * n02) * (n12 * n33 - n13 * n23)
        + (n00 * n13 - n01 * n03) * (n12 * n23 - n13 * n22)
        + (n01 * n12 - n11 * n02) * (n02 * n33 - n03 * n23)
        - (n01 * n13 - n11 * n03) * (n02 * n23 - n03 * n22)
        + (n02 * n13 - n12 * n03) * (n02 * n13 - n03 * n12)
    )
    bound = torch.minimum(e0, 0.5 * (3.0 * fro2 / e0 + e0))
    return -2.0 * fro2, -8.0 * det_s, c0, bound


def _laguerre(lam, c2, c1, c0):
    """One Laguerre step for the largest root of l^4 + c2 l^2 + c1 l + c0 (from above)."""
    import torch

    l2 = lam * lam
    p = (l2 + c2) * l2 + c1 * lam + c0
    dp = (4.0 * l2 + 2.0 * c2) * lam + c1
    ddp = 12.0 * l2 + 2.0 * c2
    r = torch.sqrt(torch.clamp(9.0 * dp * dp - 12.0 * p * ddp, min=0.0))
    return lam - 4.0 * p / torch.where(dp >= 0.0, dp + r, dp - r)


def _adj_quat(N, lam):
    """The adjugate column of N - lam I with the largest |diagonal| (first on ties) and it."""
    import torch

    b00, b01, b02, b03, b11, b12, b13, b22, b23, b33 = adjugate_entries(N, lam)
    q, best = [b00, b01, b02, b03], torch.abs(b00)
    for col, d in (((b01, b11, b12, b13), b11), ((b02, b12, b22, b23), b22)):
        take = torch.abs(d) > best
        q = [torch.where(take, c, v) for c, v in zip(col, q, strict=True)]
        best = torch.where(take, torch.abs(d), best)
    take = torch.abs(b33) > best
    q = [torch.where(take, c, v) for c, v in zip((b03, b13, b23, b33), q, strict=True)]
    return q, torch.where(take, torch.abs(b33), best)


def _jacobi_top(A):
    """Eigenvector of the largest eigenvalue of symmetric (L, 4, 4) ``A``: the kernel's cyclic
    Jacobi (:func:`geokd.distances._kernels.jacobi_top_eigvec`), lane by lane masked."""
    import torch

    L = A.shape[0]
    A = A.clone()
    V = torch.eye(4, dtype=A.dtype, device=A.device).expand(L, 4, 4).clone()
    tiny = torch.clamp(1e-32 * (A * A).sum(dim=(1, 2)), min=1e-300)
    active = torch.ones(L, dtype=torch.bool, device=A.device)
    pairs = [(p, q) for p in range(3) for q in range(p + 1, 4)]
    for _ in range(64):
        off = torch.zeros_like(tiny)
        for p, q in pairs:
            off = off + A[:, p, q] * A[:, p, q]
        active = active & ~(off <= tiny)
        if not bool(active.any()):
            break
        for p, q in pairs:
            apq = A[:, p, q]
            do = (active & ~(apq * apq <= tiny * 0.125))[:, None]
            theta = (A[:, q, q] - A[:, p, p]) / (2.0 * apq)
            t = 1.0 / (torch.abs(theta) + torch.sqrt(theta * theta + 1.0))
            t = torch.where(theta < 0.0, -t, t)
            c = (1.0 / torch.sqrt(t * t + 1.0))[:, None]
            s = t[:, None] * c
            cols = (A[:, :, p].clone(), A[:, :, q].clone())  # columns p, q of A
            A[:, :, p] = torch.where(do, c * cols[0] - s * cols[1], cols[0])
            A[:, :, q] = torch.where(do, s * cols[0] + c * cols[1], cols[1])
            rws = (A[:, p, :].clone(), A[:, q, :].clone())  # then rows p, q of A
            A[:, p, :] = torch.where(do, c * rws[0] - s * rws[1], rws[0])
            A[:, q, :] = torch.where(do, s * rws[0] + c * rws[1], rws[1])
            vs = (V[:, :, p].clone(), V[:, :, q].clone())  # then columns p, q of V
            V[:, :, p] = torch.where(do, c * vs[0] - s * vs[1], vs[0])
            V[:, :, q] = torch.where(do, s * vs[0] + c * vs[1], vs[1])
            A[:, p, q] = torch.where(do[:, 0], 0.0, A[:, p, q])  # annihilated, as the kernel
            A[:, q, p] = torch.where(do[:, 0], 0.0, A[:, q, p])
    best = torch.zeros(L, dtype=torch.long, device=A.device)
    diag = torch.diagonal(A, dim1=1, dim2=2)
    for i in range(1, 4):
        best = torch.where(diag[:, i] > diag.gather(1, best[:, None])[:, 0], i, best)
    return V.gather(2, best[:, None, None].expand(L, 4, 1))[:, :, 0].unbind(1)


def _robust(s, e0):
    """The kernel's robust path (float64): Laguerre to convergence, then Jacobi if needed."""
    import torch

    N = _key_matrix(s)
    c2, c1, c0, lam = _coeffs(s, N, e0)
    done = torch.zeros_like(lam, dtype=torch.bool)
    for _ in range(ROBUST_ITERS):
        new = _laguerre(lam, c2, c1, c0)
        conv = ~(torch.abs(new - lam) > 1e-15 * torch.clamp(torch.abs(lam), min=1.0))
        lam = torch.where(done, lam, new)
        done = done | conv
        if bool(done.all()):
            break
    q, best = _adj_quat(N, lam)
    bad = ~(best > QUAL_TOL)
    if bool(bad.any()):
        idx = bad.nonzero()[:, 0]
        sym = [[0, 1, 2, 3], [1, 4, 5, 6], [2, 5, 7, 8], [3, 6, 8, 9]]
        Nb = [n[idx] for n in N]
        A = torch.stack([torch.stack([Nb[k] for k in row], dim=-1) for row in sym], dim=-2)
        qj = _jacobi_top(A)
        q = [v.index_put((idx,), w) for v, w in zip(q, qj, strict=True)]
    return q


def _quaternions(s, e0, step_tol, chunk):
    """Optimal quaternions (w, x, y, z) (unnormalised) of the frame pairs with S = s."""
    import torch

    N = _key_matrix(s)
    c2, c1, c0, lam = _coeffs(s, N, e0)
    for _ in range(4):
        lam = _laguerre(lam, c2, c1, c0)
    l2 = lam * lam
    step = ((l2 + c2) * l2 + c1 * lam + c0) / ((4.0 * l2 + 2.0 * c2) * lam + c1)  # Newton
    q, best = _adj_quat(N, lam - step)
    zero = c2 == 0  # S = 0, or so small that |S|^2 underflows: the kernel's Jacobi gives I
    one = torch.ones_like(e0)
    q = [torch.where(zero, one if i == 0 else 0 * one, v) for i, v in enumerate(q)]
    flag = ~((torch.abs(step) <= step_tol) & (best > QUAL_TOL)) & ~zero
    if bool(flag.any()):  # the kernel's robust path, in float64, for these lanes only
        idx = flag.nonzero()[:, 0]
        for a in range(0, idx.numel(), chunk):
            sub = idx[a : a + chunk]
            qr = _robust([v[sub].double() for v in s], e0[sub].double())
            q = [v.index_put((sub,), w.to(v.dtype)) for v, w in zip(q, qr, strict=True)]
    return q


def _rotation(q, transpose: bool):
    """R(q) row-major (R y ~ x), as the kernel's _store_rotation; R^T if ``transpose``."""
    import torch

    w, x, y, z = q
    n2 = w * w + x * x + y * y + z * z
    s = torch.where(n2 > 0.0, 1.0 / n2, torch.zeros_like(n2))
    R = [
        (w * w + x * x - y * y - z * z) * s,
        2.0 * (x * y - w * z) * s,
        2.0 * (x * z + w * y) * s,
        2.0 * (x * y + w * z) * s,
        (w * w - x * x + y * y - z * z) * s,
        2.0 * (y * z - w * x) * s,
        2.0 * (x * z - w * y) * s,
        2.0 * (y * z + w * x) * s,
        (w * w - x * x - y * y + z * z) * s,
    ]
    return [R[i] for i in (0, 3, 6, 1, 4, 7, 2, 5, 8)] if transpose else R


# --- frame costs of a tile ---------------------------------------------------------------------


def _residuals(Xt, Yt, R, k0: int, k1: int, squared: bool):
    """sum_k ||x_k - R y_k|| (its square when ``squared``) over landmarks k0..k1-1, (b, n, r).

    Xt (b, 3, K, r), Yt (b, 3, n, K): coordinate-major frames; R: 9 tensors (b, n, 1, r) (None:
    the identity). ``KC`` landmarks per pass: every intermediate is (b, n, KC, r), WIDTH values
    per frame pair.
    """
    import torch

    b, n, r = Yt.shape[0], Yt.shape[2], Xt.shape[3]
    out = torch.zeros(b, n, r, dtype=Xt.dtype, device=Xt.device)
    for k in range(k0, k1, KC):
        kk = slice(k, min(k + KC, k1))
        y = [Yt[:, c, :, kk, None] for c in range(3)]  # (b, n, kc, 1)
        e = None
        for a in range(3):
            xa = Xt[:, a, None, kk, :]  # (b, 1, kc, r)
            if R is None:
                d = y[a] - xa
            else:  # (R y_k)_a - x_ka
                d = R[3 * a] * y[0]
                d.addcmul_(R[3 * a + 1], y[1]).addcmul_(R[3 * a + 2], y[2]).sub_(xa)
            e = d * d if e is None else e.addcmul_(d, d)
        out += e.sum(2) if squared else e.sqrt_().sum(2)
    return out


def _tile_costs(P, x, y, step_tol, params, budget):
    """Frame costs (b, n, r) (note: n before r) of frames x (b, r, RW) against y (b, n, RW)."""
    import torch

    K, G = P.Kp, P.G
    b, r, n = x.shape[0], x.shape[1], y.shape[1]
    F = b * n * r  # frame pairs, flattened (pair, column, row)
    X = x[..., : 3 * K].reshape(b, r, K, 3)
    Y = y[..., : 3 * K].reshape(b, n, K, 3)
    Xt = X.permute(0, 3, 2, 1).contiguous()  # (b, 3, K, r)
    Yt = Y.permute(0, 3, 1, 2).contiguous()  # (b, 3, n, K)
    if P.metric == "euclidean":
        return _residuals(Xt, Yt, None, 0, K, False)
    cost = torch.zeros(b, n, r, dtype=x.dtype, device=x.device)
    gk = K // G
    chunk = max(1, budget // 16)  # robust lanes per pass: (lanes, 4, 4) Jacobi matrices
    for g in range(G):
        Xg, Yg = X[:, :, g * gk : (g + 1) * gk], Y[:, :, g * gk : (g + 1) * gk]
        S = torch.einsum("bika,bjkc->acbji", Xg, Yg).reshape(9, F)
        e0 = 0.5 * (x[:, None, :, 3 * K + g] + y[:, :, None, 3 * K + g]).reshape(F)
        q = _quaternions(S.unbind(0), e0, step_tol, chunk)
        R = [v.view(b, n, 1, r) for v in _rotation(q, P.metric == "paper")]
        e = _residuals(Xt, Yt, R, g * gk, (g + 1) * gk, P.metric == "hand")
        if P.metric != "hand":
            cost += e
            continue
        s1, s2, s3, delta = params
        w, qx, qy, qz = (v.view(b, n, r) for v in q)
        f2 = 2.0 * torch.atan2(torch.sqrt(qx * qx + qy * qy + qz * qz), torch.abs(w))
        o = 3 * K + G + 3 * g
        dw = [x[:, None, :, o + c] - y[:, :, None, o + c] for c in range(3)]  # raw wrists
        f3 = torch.sqrt(dw[0] * dw[0] + dw[1] * dw[1] + dw[2] * dw[2])
        f3 = torch.clamp(f3 - delta, min=0.0)
        cost += torch.sqrt(e) / s1 + f2 * f2 / s2 + f3 * f3 / s3
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
    pad = torch.full((b, 1), float("inf"), dtype=C.dtype, device=C.device)
    for d in range(M + N - 1):
        j = d - i
        valid = (j >= 0) & (j < N)
        c = torch.where(valid, C[:, i, j.clamp(0, N - 1)], inf)  # (b, M) diagonal d
        if d == 0:
            cur = torch.where(i == 0, c, inf)
        else:
            up = torch.cat([pad, prev1[:, :-1]], dim=1)  # (i-1, j): diagonal d-1, index i-1
            diag = torch.cat([pad, prev2[:, :-1]], dim=1)  # (i-1, j-1): diagonal d-2
            cur = c + torch.minimum(torch.minimum(up, prev1), diag)  # prev1[i]: (i, j-1)
        out = torch.where(last == d, cur[rows, m - 1], out)  # no host sync per diagonal
        prev2, prev1 = prev1, cur
    return out


def _gather(rows, starts, lengths, t0: int, t1: int, dev):
    """Frames t0..t1-1 of each sequence (rows[starts + t]), zero past its length: (b, t1-t0, RW)
    in one indexed copy."""
    import torch

    t = np.arange(t0, t1)
    idx = torch.as_tensor(starts[:, None] + np.minimum(t, lengths[:, None] - 1), device=dev)
    valid = torch.as_tensor(t[None, :] < lengths[:, None], device=dev)
    return torch.where(valid[..., None], rows[idx], torch.zeros((), dtype=rows.dtype, device=dev))


def _chunks(la: np.ndarray, lb: np.ndarray, budget: int):
    """(start, stop) runs of the (la-sorted) pairs with count * max la * max lb <= budget."""
    n, start = len(la), 0
    while start < n:

        def fits(c, s=start):
            return c * int(la[s + c - 1]) * int(lb[s : s + c].max()) <= budget

        lo, hi = 1, 1
        while hi < n - start and fits(min(2 * hi, n - start)):
            hi = min(2 * hi, n - start)
        lo, top = hi, min(2 * hi, n - start)
        while lo < top:  # largest c in [hi, top] that fits (c = hi fits or is 1)
            mid = (lo + top + 1) // 2
            lo, top = (mid, top) if fits(mid) else (lo, mid - 1)
        yield start, start + lo
        start += lo


def _tiles(b: int, M: int, N: int, RW: int, budget: int):
    """(pairs per tile, rows per tile) of a chunk of b pairs of at most M x N frames, such that
    tiles * rows * N * WIDTH <= budget and tiles * (rows + N) * RW <= budget (floor: 1 x 1)."""
    per_pair = max(WIDTH * M * N, (M + N) * RW)
    if per_pair <= budget:
        return min(b, budget // per_pair), M
    return 1, max(1, min(M, budget // (WIDTH * N), budget // RW - N))


def _pair_distances(P, pa, pb, window: int, device: str, dtype) -> np.ndarray:
    import torch

    dev = torch.device(device)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    rows = torch.as_tensor(P.rows.reshape(-1, P.RW).astype(np_dtype, copy=False), device=dev)
    step_tol = STEP_TOL if dtype == torch.float64 else STEP_TOL32
    params = tuple(float(v) for v in P.params)
    lens = P.lengths
    budget = BUDGET_CUDA if dev.type == "cuda" else BUDGET
    order = np.lexsort((lens[pb], lens[pa]))
    out = np.empty(len(pa))
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=dev)
    for start, stop in _chunks(lens[pa[order]], lens[pb[order]], budget):
        sel = order[start:stop]
        m, n = lens[pa[sel]], lens[pb[sel]]
        M, N = int(m.max()), int(n.max())
        C = torch.empty(len(sel), M, N, dtype=torch.float64, device=dev)
        bs, r = _tiles(len(sel), M, N, P.RW, budget)
        for p0 in range(0, len(sel), bs):
            ps = slice(p0, p0 + bs)
            y = _gather(rows, P.roff[pb[sel[ps]]], n[ps], 0, N, dev)  # (bs, N, RW)
            for i0 in range(0, M, r):
                i1 = min(M, i0 + r)
                x = _gather(rows, P.roff[pa[sel[ps]]], m[ps], i0, i1, dev)
                C[ps, i0:i1] = _tile_costs(P, x, y, step_tol, params, budget).transpose(1, 2)
        mt = torch.as_tensor(m, device=dev)
        nt = torch.as_tensor(n, device=dev)
        ii = torch.arange(M, device=dev)[None, :, None]
        jj = torch.arange(N, device=dev)[None, None, :]
        keep = (ii < mt[:, None, None]) & (jj < nt[:, None, None])
        if window >= 0:
            w = torch.clamp(torch.abs(mt - nt), min=window)[:, None, None]
            keep &= torch.abs(ii - jj) <= w
        C = torch.where(keep, C, inf)
        out[sel] = _dtw_wavefront(C, mt, nt).cpu().numpy()
    return out


def cdist(
    Q, R, *, window: int, device: str, dtype=DistanceConfig.precision, progress=False
) -> np.ndarray:
    """Distance matrix of prepared queries Q against prepared references R (None: symmetric).

    ``dtype``: "float64" (default) or "float32", the precision of the frame costs (the DTW
    recursion sums in float64 either way); the result is float64.
    """
    dt = _torch_dtype(dtype)
    if device == "cuda" and not cuda_available():
        raise RuntimeError("backend='cuda' but torch.cuda.is_available() is False")
    run = lambda P, ia, ib: _pair_distances(P, ia, ib, window, device, dt)  # noqa: E731
    return matrix_from_pairs(Q, R, run, progress=progress)
