"""Numba kernels of :mod:`geokd.distances` (private; the contract lives there).

Layout. Every sequence is prepared once (not per pair) into two float64 layouts of its
*normalised* frames, each frame being ``RW = 3K + NX`` values (``3k + c`` = landmark k,
coordinate c, K padded with zero landmarks to a multiple of 4 per group, then NX per-frame
extras: per landmark group the squared norm, and for the hand metric the raw wrists):

* ``rows``: frame-major, frame t of sequence s at ``(roff[s] + t) * RW``; used for the frame
  that is broadcast (one DTW row);
* ``tiles``: lane-major tiles of ``TW`` frames, value (tile u, row r, lane l) of sequence s
  at ``toff[s] + (u * RW + r) * TS + l``; used for the frames that become SIMD lanes.

One DTW row = one frame x of A against the frames of B in the band. The stages run over the
lanes (frames of B) in loops that LLVM vectorises (AVX-512 here; the per-thread work buffer
``W`` holds one lane array per quantity at the constant row stride ``WS``, which lets LLVM
prove the loops free of aliasing): 3x3 cross-covariance S (for K = 20 one unrolled pass with S
in registers), Horn's 4x4 key matrix N, its largest eigenvalue from the characteristic quartic
(QCP: 4 Laguerre steps + 1 Newton step from an upper bound), the eigenvector (= quaternion)
from the adjugate of N - lambda I, the rotation matrix, then the per-landmark residual norms.
Lanes where the iteration did not converge or the adjugate is ill-conditioned are redone by a
scalar robust path (Laguerre to convergence, then a Jacobi eigen-solve of N if still needed).
No SVD anywhere. DTW runs row by row (O(n) memory per pair), costs being computed ``RB`` rows at
a time, and the recursions of two rows run as a wavefront (two independent min/add chains).
``fastmath`` allows only FMA contraction: no reassociation, so a lane's cost does not depend
on its position in a vector.

Precision: the kernels compile for float64 or float32 frames (``prepare(..., dtype=...)``).
Every constant in the lane loops goes through :func:`_c` (a bare literal would promote a
float32 expression to float64), so float32 kernels run twice the lanes per SIMD register;
the robust path computes in float64 in both (S copied into the float64 buffer ``W64``), and
the DTW recursion and the distances are float64 in both.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

TW = 128  # lanes per tile
TS = TW + 8  # row stride in a tile: not a power of two (no L1 set conflicts between rows)
RB = 2  # DTW rows whose costs are computed together (the tile stays in cache)
WS = TW + 8  # work-buffer row stride (lanes are padded to a multiple of 8)
# work-buffer rows: S (9), R (9), q (4), flag, acc; the quartic's coefficients (3) and lambda
# live in R's rows until R is written (a small buffer stays in L1 with the frames)
_S, _R, _Q, _FL, _ACC, _C, _LAM = 0, 9, 18, 22, 23, 9, 12
NWORK = 24
PROCRUSTES, PAPER, EUCLIDEAN, HAND = 0, 1, 2, 3
STEP_TOL = 1e-8  # |final Newton step| above this: not converged -> robust path
STEP_TOL32 = 1e-5  # the same in float32 kernels (rounding alone moves lambda by ~1e-7)
# Laguerre steps of the robust path before it falls back to Jacobi. Laguerre converges
# cubically to a simple root, so a lane still moving after 4 + 12 steps sits at a (near-)
# multiple root, where the adjugate is ill-conditioned and Jacobi is needed anyway (the
# reshape-scrambled frames of the "as published" run are often near-collinear: 100 steps
# there cost more than the Jacobi solve).
ROBUST_ITERS = 12
QUAL_TOL = 1e-3  # largest |adjugate diagonal| below this: ill-conditioned -> robust path
QUAL_TOL32 = 1e-2  # the same in float32 kernels (the adjugate's rounding is ~1e-7 |N|^3)

_opts = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy"}


def _c(like, v):
    """The constant ``v`` in the float type of ``like`` (a float or a float array): the
    kernels compile for float64 and float32 frames, and a bare literal would promote a float32
    expression to float64 (no wider SIMD lanes, and a different rounding)."""
    return v


def _pick(like, v64, v32):
    """``v32`` in float32 kernels, else ``v64`` (a tolerance), in ``like``'s float type."""
    return v64


def _float_of(like):
    return like.dtype if isinstance(like, types.Array) else like


@overload(_c, inline="always")
def _c_typed(like, v):
    if _float_of(like) == types.float32:
        return lambda like, v: np.float32(v)
    return lambda like, v: np.float64(v)


@overload(_pick, inline="always")
def _pick_typed(like, v64, v32):
    if _float_of(like) == types.float32:
        return lambda like, v64, v32: np.float32(v32)
    return lambda like, v64, v32: np.float64(v64)


# fmt: off
@njit(**_opts)
def _cov(x, xo, Y, yo, W, lp, k0, k1):
    """W rows S_ab (a: coordinate of x, b: of the lane frame) = sum_k x[k, a] y[k, b]."""
    for f in range(9):
        for jj in range(lp):
            W[f * WS + jj] = 0.0
    for k in range(k0, k1, 4):  # four landmarks per pass (K is padded to a multiple of 4)
        o = xo + 3 * k
        a0, a1, a2, b0, b1, b2 = x[o], x[o + 1], x[o + 2], x[o + 3], x[o + 4], x[o + 5]
        c0, c1, c2, d0, d1, d2 = x[o + 6], x[o + 7], x[o + 8], x[o + 9], x[o + 10], x[o + 11]
        Yv = Y[yo + 3 * k * TS :]
        for jj in range(lp):
            p0, p1, p2 = Yv[jj], Yv[TS + jj], Yv[2 * TS + jj]
            q0, q1, q2 = Yv[3 * TS + jj], Yv[4 * TS + jj], Yv[5 * TS + jj]
            r0, r1, r2 = Yv[6 * TS + jj], Yv[7 * TS + jj], Yv[8 * TS + jj]
            t0, t1, t2 = Yv[9 * TS + jj], Yv[10 * TS + jj], Yv[11 * TS + jj]
            W[jj] += a0 * p0 + b0 * q0 + c0 * r0 + d0 * t0
            W[WS + jj] += a0 * p1 + b0 * q1 + c0 * r1 + d0 * t1
            W[2 * WS + jj] += a0 * p2 + b0 * q2 + c0 * r2 + d0 * t2
            W[3 * WS + jj] += a1 * p0 + b1 * q0 + c1 * r0 + d1 * t0
            W[4 * WS + jj] += a1 * p1 + b1 * q1 + c1 * r1 + d1 * t1
            W[5 * WS + jj] += a1 * p2 + b1 * q2 + c1 * r2 + d1 * t2
            W[6 * WS + jj] += a2 * p0 + b2 * q0 + c2 * r0 + d2 * t0
            W[7 * WS + jj] += a2 * p1 + b2 * q1 + c2 * r1 + d2 * t1
            W[8 * WS + jj] += a2 * p2 + b2 * q2 + c2 * r2 + d2 * t2


# fmt: off
@njit(**_opts)
def _cov20(x, xo, Y, yo, W, lp):
    """:func:`_cov` for exactly 20 landmarks (UTD-MHAD), the landmark loop unrolled by hand:
    one pass over the lanes with S in registers (one store per entry instead of five)."""
    X = x[xo : xo + 60]
    Yv = Y[yo:]
    for jj in range(lp):
        p0, p1, p2 = Yv[0 * TS + jj], Yv[1 * TS + jj], Yv[2 * TS + jj]
        s0 = X[0] * p0
        s1 = X[0] * p1
        s2 = X[0] * p2
        s3 = X[1] * p0
        s4 = X[1] * p1
        s5 = X[1] * p2
        s6 = X[2] * p0
        s7 = X[2] * p1
        s8 = X[2] * p2
        p0, p1, p2 = Yv[3 * TS + jj], Yv[4 * TS + jj], Yv[5 * TS + jj]
        s0, s1, s2 = s0 + X[3] * p0, s1 + X[3] * p1, s2 + X[3] * p2
        s3, s4, s5 = s3 + X[4] * p0, s4 + X[4] * p1, s5 + X[4] * p2
        s6, s7, s8 = s6 + X[5] * p0, s7 + X[5] * p1, s8 + X[5] * p2
        p0, p1, p2 = Yv[6 * TS + jj], Yv[7 * TS + jj], Yv[8 * TS + jj]
        s0, s1, s2 = s0 + X[6] * p0, s1 + X[6] * p1, s2 + X[6] * p2
        s3, s4, s5 = s3 + X[7] * p0, s4 + X[7] * p1, s5 + X[7] * p2
        s6, s7, s8 = s6 + X[8] * p0, s7 + X[8] * p1, s8 + X[8] * p2
        p0, p1, p2 = Yv[9 * TS + jj], Yv[10 * TS + jj], Yv[11 * TS + jj]
        s0, s1, s2 = s0 + X[9] * p0, s1 + X[9] * p1, s2 + X[9] * p2
        s3, s4, s5 = s3 + X[10] * p0, s4 + X[10] * p1, s5 + X[10] * p2
        s6, s7, s8 = s6 + X[11] * p0, s7 + X[11] * p1, s8 + X[11] * p2
        p0, p1, p2 = Yv[12 * TS + jj], Yv[13 * TS + jj], Yv[14 * TS + jj]
        s0, s1, s2 = s0 + X[12] * p0, s1 + X[12] * p1, s2 + X[12] * p2
        s3, s4, s5 = s3 + X[13] * p0, s4 + X[13] * p1, s5 + X[13] * p2
        s6, s7, s8 = s6 + X[14] * p0, s7 + X[14] * p1, s8 + X[14] * p2
        p0, p1, p2 = Yv[15 * TS + jj], Yv[16 * TS + jj], Yv[17 * TS + jj]
        s0, s1, s2 = s0 + X[15] * p0, s1 + X[15] * p1, s2 + X[15] * p2
        s3, s4, s5 = s3 + X[16] * p0, s4 + X[16] * p1, s5 + X[16] * p2
        s6, s7, s8 = s6 + X[17] * p0, s7 + X[17] * p1, s8 + X[17] * p2
        p0, p1, p2 = Yv[18 * TS + jj], Yv[19 * TS + jj], Yv[20 * TS + jj]
        s0, s1, s2 = s0 + X[18] * p0, s1 + X[18] * p1, s2 + X[18] * p2
        s3, s4, s5 = s3 + X[19] * p0, s4 + X[19] * p1, s5 + X[19] * p2
        s6, s7, s8 = s6 + X[20] * p0, s7 + X[20] * p1, s8 + X[20] * p2
        p0, p1, p2 = Yv[21 * TS + jj], Yv[22 * TS + jj], Yv[23 * TS + jj]
        s0, s1, s2 = s0 + X[21] * p0, s1 + X[21] * p1, s2 + X[21] * p2
        s3, s4, s5 = s3 + X[22] * p0, s4 + X[22] * p1, s5 + X[22] * p2
        s6, s7, s8 = s6 + X[23] * p0, s7 + X[23] * p1, s8 + X[23] * p2
        p0, p1, p2 = Yv[24 * TS + jj], Yv[25 * TS + jj], Yv[26 * TS + jj]
        s0, s1, s2 = s0 + X[24] * p0, s1 + X[24] * p1, s2 + X[24] * p2
        s3, s4, s5 = s3 + X[25] * p0, s4 + X[25] * p1, s5 + X[25] * p2
        s6, s7, s8 = s6 + X[26] * p0, s7 + X[26] * p1, s8 + X[26] * p2
        p0, p1, p2 = Yv[27 * TS + jj], Yv[28 * TS + jj], Yv[29 * TS + jj]
        s0, s1, s2 = s0 + X[27] * p0, s1 + X[27] * p1, s2 + X[27] * p2
        s3, s4, s5 = s3 + X[28] * p0, s4 + X[28] * p1, s5 + X[28] * p2
        s6, s7, s8 = s6 + X[29] * p0, s7 + X[29] * p1, s8 + X[29] * p2
        p0, p1, p2 = Yv[30 * TS + jj], Yv[31 * TS + jj], Yv[32 * TS + jj]
        s0, s1, s2 = s0 + X[30] * p0, s1 + X[30] * p1, s2 + X[30] * p2
        s3, s4, s5 = s3 + X[31] * p0, s4 + X[31] * p1, s5 + X[31] * p2
        s6, s7, s8 = s6 + X[32] * p0, s7 + X[32] * p1, s8 + X[32] * p2
        p0, p1, p2 = Yv[33 * TS + jj], Yv[34 * TS + jj], Yv[35 * TS + jj]
        s0, s1, s2 = s0 + X[33] * p0, s1 + X[33] * p1, s2 + X[33] * p2
        s3, s4, s5 = s3 + X[34] * p0, s4 + X[34] * p1, s5 + X[34] * p2
        s6, s7, s8 = s6 + X[35] * p0, s7 + X[35] * p1, s8 + X[35] * p2
        p0, p1, p2 = Yv[36 * TS + jj], Yv[37 * TS + jj], Yv[38 * TS + jj]
        s0, s1, s2 = s0 + X[36] * p0, s1 + X[36] * p1, s2 + X[36] * p2
        s3, s4, s5 = s3 + X[37] * p0, s4 + X[37] * p1, s5 + X[37] * p2
        s6, s7, s8 = s6 + X[38] * p0, s7 + X[38] * p1, s8 + X[38] * p2
        p0, p1, p2 = Yv[39 * TS + jj], Yv[40 * TS + jj], Yv[41 * TS + jj]
        s0, s1, s2 = s0 + X[39] * p0, s1 + X[39] * p1, s2 + X[39] * p2
        s3, s4, s5 = s3 + X[40] * p0, s4 + X[40] * p1, s5 + X[40] * p2
        s6, s7, s8 = s6 + X[41] * p0, s7 + X[41] * p1, s8 + X[41] * p2
        p0, p1, p2 = Yv[42 * TS + jj], Yv[43 * TS + jj], Yv[44 * TS + jj]
        s0, s1, s2 = s0 + X[42] * p0, s1 + X[42] * p1, s2 + X[42] * p2
        s3, s4, s5 = s3 + X[43] * p0, s4 + X[43] * p1, s5 + X[43] * p2
        s6, s7, s8 = s6 + X[44] * p0, s7 + X[44] * p1, s8 + X[44] * p2
        p0, p1, p2 = Yv[45 * TS + jj], Yv[46 * TS + jj], Yv[47 * TS + jj]
        s0, s1, s2 = s0 + X[45] * p0, s1 + X[45] * p1, s2 + X[45] * p2
        s3, s4, s5 = s3 + X[46] * p0, s4 + X[46] * p1, s5 + X[46] * p2
        s6, s7, s8 = s6 + X[47] * p0, s7 + X[47] * p1, s8 + X[47] * p2
        p0, p1, p2 = Yv[48 * TS + jj], Yv[49 * TS + jj], Yv[50 * TS + jj]
        s0, s1, s2 = s0 + X[48] * p0, s1 + X[48] * p1, s2 + X[48] * p2
        s3, s4, s5 = s3 + X[49] * p0, s4 + X[49] * p1, s5 + X[49] * p2
        s6, s7, s8 = s6 + X[50] * p0, s7 + X[50] * p1, s8 + X[50] * p2
        p0, p1, p2 = Yv[51 * TS + jj], Yv[52 * TS + jj], Yv[53 * TS + jj]
        s0, s1, s2 = s0 + X[51] * p0, s1 + X[51] * p1, s2 + X[51] * p2
        s3, s4, s5 = s3 + X[52] * p0, s4 + X[52] * p1, s5 + X[52] * p2
        s6, s7, s8 = s6 + X[53] * p0, s7 + X[53] * p1, s8 + X[53] * p2
        p0, p1, p2 = Yv[54 * TS + jj], Yv[55 * TS + jj], Yv[56 * TS + jj]
        s0, s1, s2 = s0 + X[54] * p0, s1 + X[54] * p1, s2 + X[54] * p2
        s3, s4, s5 = s3 + X[55] * p0, s4 + X[55] * p1, s5 + X[55] * p2
        s6, s7, s8 = s6 + X[56] * p0, s7 + X[56] * p1, s8 + X[56] * p2
        p0, p1, p2 = Yv[57 * TS + jj], Yv[58 * TS + jj], Yv[59 * TS + jj]
        s0, s1, s2 = s0 + X[57] * p0, s1 + X[57] * p1, s2 + X[57] * p2
        s3, s4, s5 = s3 + X[58] * p0, s4 + X[58] * p1, s5 + X[58] * p2
        s6, s7, s8 = s6 + X[59] * p0, s7 + X[59] * p1, s8 + X[59] * p2
        W[jj], W[WS + jj], W[2 * WS + jj] = s0, s1, s2
        W[3 * WS + jj], W[4 * WS + jj], W[5 * WS + jj] = s3, s4, s5
        W[6 * WS + jj], W[7 * WS + jj], W[8 * WS + jj] = s6, s7, s8

@njit(inline="always", **_opts)
def _s(W, jj):
    """The 3x3 cross-covariance of lane jj, row-major."""
    return (W[jj], W[WS + jj], W[2 * WS + jj], W[3 * WS + jj], W[4 * WS + jj],
            W[5 * WS + jj], W[6 * WS + jj], W[7 * WS + jj], W[8 * WS + jj])


@njit(inline="always", **_opts)
def _key_matrix(W, jj):
    """Horn's 4x4 key matrix N (upper triangle, row-major) of lane jj (moved = lane frame)."""
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = _s(W, jj)
    return (sxx + syy + szz, szy - syz, sxz - szx, syx - sxy,
            sxx - syy - szz, syx + sxy, sxz + szx,
            -sxx + syy - szz, szy + syz,
            -sxx - syy + szz)


@njit(inline="always", **_opts)
def _laguerre(lam, c2, c1, c0):
    """One Laguerre step for the largest root of l^4 + c2 l^2 + c1 l + c0 (from above)."""
    l2 = lam * lam
    p = (l2 + c2) * l2 + c1 * lam + c0
    dp = (_c(lam, 4.0) * l2 + _c(lam, 2.0) * c2) * lam + c1
    ddp = _c(lam, 12.0) * l2 + _c(lam, 2.0) * c2
    r = math.sqrt(max(_c(lam, 9.0) * dp * dp - _c(lam, 12.0) * p * ddp, _c(lam, 0.0)))
    return lam - _c(lam, 4.0) * p / (dp + r if dp >= 0.0 else dp - r)


def adjugate_entries(N, lam):
    """The 10 entries ``b00, b01, b02, b03, b11, b12, b13, b22, b23, b33`` of the adjugate of
    the symmetric ``N - lam I`` (``N`` as its 10 upper entries). Plain arithmetic, written once:
    the numba kernel compiles it (inlined, :func:`_adjugate`) and the torch backend runs it on
    tensors."""
    n00, n01, n02, n03, n11, n12, n13, n22, n23, n33 = N
    a00, a11, a22, a33 = n00 - lam, n11 - lam, n22 - lam, n33 - lam
    s0, s1, s2 = a00 * a11 - n01 * n01, a00 * n12 - n01 * n02, a00 * n13 - n01 * n03
    s3, s4, s5 = n01 * n12 - a11 * n02, n01 * n13 - a11 * n03, n02 * n13 - n12 * n03
    t5, t4, t3 = a22 * a33 - n23 * n23, n12 * a33 - n13 * n23, n12 * n23 - n13 * a22
    t2, t1 = n02 * a33 - n03 * n23, n02 * n23 - n03 * a22
    b00 = a11 * t5 - n12 * t4 + n13 * t3
    b01 = -n01 * t5 + n02 * t4 - n03 * t3
    b02 = n13 * s5 - n23 * s4 + a33 * s3
    b03 = -n12 * s5 + a22 * s4 - n23 * s3
    b11 = a00 * t5 - n02 * t2 + n03 * t1
    b12 = -n03 * s5 + n23 * s2 - a33 * s1
    b13 = n02 * s5 - a22 * s2 + n23 * s1
    b22 = n03 * s4 - n13 * s2 + a33 * s0
    b23 = -n02 * s4 + n12 * s2 - n23 * s0
    b33 = n02 * s3 - n12 * s1 + a22 * s0
    return b00, b01, b02, b03, b11, b12, b13, b22, b23, b33


_adjugate = njit(inline="always", **_opts)(adjugate_entries)


@njit(inline="always", **_opts)
def _adj_quat(N, lam):
    """Eigenvector of N for eigenvalue lam: the adjugate column of N - lam I with the largest
    diagonal entry (adj ~ c q q^T, so |q_i| >= 1/2 there), and that |entry| (quality)."""
    b00, b01, b02, b03, b11, b12, b13, b22, b23, b33 = _adjugate(N, lam)
    q = (b00, b01, b02, b03, abs(b00))
    q = (b01, b11, b12, b13, abs(b11)) if abs(b11) > q[4] else q
    q = (b02, b12, b22, b23, abs(b22)) if abs(b22) > q[4] else q
    return (b03, b13, b23, b33, abs(b33)) if abs(b33) > q[4] else q


@njit(inline="always", **_opts)
def _coeffs(W, jj, e0):
    """det(N - l I) = l^4 + c2 l^2 + c1 l + c0 of lane jj, and an upper bound of lambda_max."""
    n00, n01, n02, n03, n11, n12, n13, n22, n23, n33 = _key_matrix(W, jj)
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = _s(W, jj)
    fro2 = (sxx * sxx + sxy * sxy + sxz * sxz + syx * syx + syy * syy + syz * syz
            + szx * szx + szy * szy + szz * szz)
    det_s = (sxx * (syy * szz - syz * szy) - sxy * (syx * szz - syz * szx)
             + sxz * (syx * szy - syy * szx))
    c0 = ((n00 * n11 - n01 * n01) * (n22 * n33 - n23 * n23)  # det(N): 2x2 minors
          - (n00 * n12 - n01 * n02) * (n12 * n33 - n13 * n23)
          + (n00 * n13 - n01 * n03) * (n12 * n23 - n13 * n22)
          + (n01 * n12 - n11 * n02) * (n02 * n33 - n03 * n23)
          - (n01 * n13 - n11 * n03) * (n02 * n23 - n03 * n22)
          + (n02 * n13 - n12 * n03) * (n02 * n13 - n03 * n12))
    # upper bounds: E0 = (|x|^2 + |y|^2) / 2 and sqrt(3 |S|^2) <= (3 |S|^2 / E0 + E0) / 2
    e0 = min(e0, _c(fro2, 0.5) * (_c(fro2, 3.0) * fro2 / e0 + e0))
    return _c(fro2, -2.0) * fro2, _c(fro2, -8.0) * det_s, c0, e0


@njit(**_opts)
def _rot(W, lp, nx2, Yn):
    """Per lane: lambda_max (QCP), quaternion from the adjugate, rotation R; #flagged lanes.

    lambda_max: from an upper bound, 4 Laguerre steps (cubic, monotone) and one Newton step,
    whose size decides convergence. Flagged lanes (not converged, or ill-conditioned adjugate)
    must be redone by :func:`_robust`.
    """
    for jj in range(lp):
        c2, c1, c0, lam = _coeffs(W, jj, _c(W, 0.5) * (nx2 + Yn[jj]))
        W[_LAM * WS + jj] = _laguerre(lam, c2, c1, c0)
        W[_C * WS + jj], W[(_C + 1) * WS + jj], W[(_C + 2) * WS + jj] = c2, c1, c0
    for jj in range(lp):  # three more Laguerre steps: short body, many independent lanes
        c2, c1, c0 = W[_C * WS + jj], W[(_C + 1) * WS + jj], W[(_C + 2) * WS + jj]
        lam = _laguerre(_laguerre(W[_LAM * WS + jj], c2, c1, c0), c2, c1, c0)
        W[_LAM * WS + jj] = _laguerre(lam, c2, c1, c0)
    nflag = 0
    for jj in range(lp):
        c2, c1, c0 = W[_C * WS + jj], W[(_C + 1) * WS + jj], W[(_C + 2) * WS + jj]
        lam = W[_LAM * WS + jj]
        l2 = lam * lam
        dp = (_c(lam, 4.0) * l2 + _c(lam, 2.0) * c2) * lam + c1
        step = ((l2 + c2) * l2 + c1 * lam + c0) / dp  # Newton
        lam -= step
        qw, qx, qy, qz, best = _adj_quat(_key_matrix(W, jj), lam)
        ok = (abs(step) <= _pick(lam, STEP_TOL, STEP_TOL32)) and (
            best > _pick(lam, QUAL_TOL, QUAL_TOL32)
        )
        W[_FL * WS + jj] = 0.0 if ok else 1.0
        nflag += 0 if ok else 1
        _store_rotation(W, jj, qw, qx, qy, qz)
    return nflag


@njit(inline="always", **_opts)
def _store_rotation(W, jj, w, x, y, z):
    """Write q and R(q) (R maps the lane frame onto x: R y_k ~ x_k) for lane jj."""
    n2 = w * w + x * x + y * y + z * z
    s = _c(n2, 1.0) / n2 if n2 > 0.0 else _c(n2, 0.0)
    W[_Q * WS + jj], W[(_Q + 1) * WS + jj] = w, x
    W[(_Q + 2) * WS + jj], W[(_Q + 3) * WS + jj] = y, z
    W[_R * WS + jj] = (w * w + x * x - y * y - z * z) * s
    W[(_R + 1) * WS + jj] = _c(s, 2.0) * (x * y - w * z) * s
    W[(_R + 2) * WS + jj] = _c(s, 2.0) * (x * z + w * y) * s
    W[(_R + 3) * WS + jj] = _c(s, 2.0) * (x * y + w * z) * s
    W[(_R + 4) * WS + jj] = (w * w - x * x + y * y - z * z) * s
    W[(_R + 5) * WS + jj] = _c(s, 2.0) * (y * z - w * x) * s
    W[(_R + 6) * WS + jj] = _c(s, 2.0) * (x * z - w * y) * s
    W[(_R + 7) * WS + jj] = _c(s, 2.0) * (y * z + w * x) * s
    W[(_R + 8) * WS + jj] = (w * w - x * x - y * y + z * z) * s
# fmt: on


@njit(**_opts)
def jacobi_top_eigvec(A, V=None):
    """Eigenvector of the largest eigenvalue of a symmetric 4x4 ``A`` (cyclic Jacobi).

    ``A`` is overwritten, and ``V`` (4x4 work array, allocated when None) too. Ties: the
    lowest index. A zero matrix gives e_0. Sweeps stop when the off-diagonal mass is below
    (1e-16)^2 of the matrix's (relative: an absolute limit would run all 64 sweeps on rounding
    noise); an element is skipped only when it is small enough that all skipped ones together
    stay below that limit (else a sweep can skip everything and never stop).
    """
    V = np.empty((4, 4)) if V is None else V
    for p in range(4):
        for q in range(4):
            V[p, q] = 1.0 if p == q else 0.0
    norm2 = 0.0
    for p in range(4):
        for q in range(4):
            norm2 += A[p, q] * A[p, q]
    tiny = max(1e-32 * norm2, 1e-300)
    for _ in range(64):
        off = 0.0
        for p in range(3):
            for q in range(p + 1, 4):
                off += A[p, q] * A[p, q]
        if off <= tiny:
            break
        for p in range(3):
            for q in range(p + 1, 4):
                apq = A[p, q]
                if apq * apq <= tiny * 0.125:  # < tiny / 6: all skipped -> off <= tiny
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                t = -t if theta < 0.0 else t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for r in range(4):
                    arp, arq = A[r, p], A[r, q]
                    A[r, p], A[r, q] = c * arp - s * arq, s * arp + c * arq
                for r in range(4):
                    apr, aqr = A[p, r], A[q, r]
                    A[p, r], A[q, r] = c * apr - s * aqr, s * apr + c * aqr
                for r in range(4):
                    vrp, vrq = V[r, p], V[r, q]
                    V[r, p], V[r, q] = c * vrp - s * vrq, s * vrp + c * vrq
                A[p, q] = A[q, p] = 0.0  # annihilated (not rounding residue)
    best = 0
    for i in range(1, 4):
        if A[i, i] > A[best, best]:
            best = i
    return V[0, best], V[1, best], V[2, best], V[3, best]


@njit(**_opts)
def _robust(W, W64, L, nx2, Yn):
    """Redo the flagged lanes: Laguerre to convergence, else a Jacobi eigen-solve of N; in
    float64 whatever the kernel's precision (S is copied into the float64 buffer ``W64``)."""
    A, V = np.empty((4, 4)), np.empty((4, 4))
    for jj in range(L):
        if W[_FL * WS + jj] == 0.0:
            continue
        for f in range(9):
            W64[f * WS + jj] = W[f * WS + jj]
        N = _key_matrix(W64, jj)
        c2, c1, c0, lam = _coeffs(W64, jj, 0.5 * (np.float64(nx2) + np.float64(Yn[jj])))
        for _ in range(ROBUST_ITERS):
            new = _laguerre(lam, c2, c1, c0)
            done = not abs(new - lam) > 1e-15 * max(1.0, abs(lam))  # NaN: done (then Jacobi)
            lam = new
            if done:
                break
        qw, qx, qy, qz, best = _adj_quat(N, lam)
        if not best > QUAL_TOL:  # ill-conditioned or degenerate: Jacobi
            idx = 0
            for i in range(4):
                for j in range(i, 4):
                    A[i, j] = A[j, i] = N[idx]
                    idx += 1
            qw, qx, qy, qz = jacobi_top_eigvec(A, V)
        _store_rotation(W, jj, qw, qx, qy, qz)


@njit(**_opts)
def _transpose_r(W, lp):
    """R <- R^T (the ``paper`` metric applies the inverse rotation: defect 1)."""
    for a, b in ((1, 3), (2, 6), (5, 7)):
        for jj in range(lp):
            t = W[(_R + a) * WS + jj]
            W[(_R + a) * WS + jj] = W[(_R + b) * WS + jj]
            W[(_R + b) * WS + jj] = t


# fmt: off
@njit(inline="always", **_opts)
def _res2(a0, a1, a2, Yv, o, jj, R):
    """||a - R y||^2 with y = (Yv[o + jj], Yv[o + TS + jj], Yv[o + 2 TS + jj])."""
    y0, y1, y2 = Yv[o + jj], Yv[o + TS + jj], Yv[o + 2 * TS + jj]
    d0 = a0 - (R[0] * y0 + R[1] * y1 + R[2] * y2)
    d1 = a1 - (R[3] * y0 + R[4] * y1 + R[5] * y2)
    d2 = a2 - (R[6] * y0 + R[7] * y1 + R[8] * y2)
    return d0 * d0 + d1 * d1 + d2 * d2


@njit(**_opts)
def _resid(x, xo, Y, yo, W, lp, k0, k1, squared, rotate):
    """acc = sum_k ||x_k - R y_k|| (or its square when ``squared``; R = I unless ``rotate``)."""
    for jj in range(lp):
        W[_ACC * WS + jj] = 0.0
    if not rotate:  # R = I
        for f in range(9):
            v = 1.0 if f % 4 == 0 else 0.0
            for jj in range(lp):
                W[(_R + f) * WS + jj] = v
    for k in range(k0, k1, 4):  # four landmarks per pass: R is loaded once
        o = xo + 3 * k
        a0, a1, a2, b0, b1, b2 = x[o], x[o + 1], x[o + 2], x[o + 3], x[o + 4], x[o + 5]
        c0, c1, c2, d0, d1, d2 = x[o + 6], x[o + 7], x[o + 8], x[o + 9], x[o + 10], x[o + 11]
        Yv = Y[yo + 3 * k * TS :]
        for jj in range(lp):
            R = (W[_R * WS + jj], W[(_R + 1) * WS + jj], W[(_R + 2) * WS + jj],
                 W[(_R + 3) * WS + jj], W[(_R + 4) * WS + jj], W[(_R + 5) * WS + jj],
                 W[(_R + 6) * WS + jj], W[(_R + 7) * WS + jj], W[(_R + 8) * WS + jj])
            e0 = _res2(a0, a1, a2, Yv, 0, jj, R)
            e1 = _res2(b0, b1, b2, Yv, 3 * TS, jj, R)
            e2 = _res2(c0, c1, c2, Yv, 6 * TS, jj, R)
            e3 = _res2(d0, d1, d2, Yv, 9 * TS, jj, R)
            if squared:
                W[_ACC * WS + jj] += e0 + e1 + e2 + e3
            else:
                acc = W[_ACC * WS + jj] + math.sqrt(e0) + math.sqrt(e1)
                W[_ACC * WS + jj] = acc + math.sqrt(e2) + math.sqrt(e3)
# fmt: on


@njit(**_opts)
def _lane_costs(metric, geo, rows, xo, tiles, yo, L, params, W, W64, out):
    """out[:L] = costs of the frame rows[xo:] against the L lanes of the tile view tiles[yo:]."""
    _, K, G = geo
    gk, k3, lp = K // G, 3 * K, (L + 7) // 8 * 8
    if metric == EUCLIDEAN:
        _resid(rows, xo, tiles, yo, W, lp, 0, K, False, False)
        for jj in range(L):
            out[jj] = W[_ACC * WS + jj]
        return
    for jj in range(L):
        out[jj] = 0.0
    for g in range(G):
        k0 = g * gk
        if gk == 20:
            _cov20(rows, xo + 3 * k0, tiles, yo + 3 * k0 * TS, W, lp)
        else:
            _cov(rows, xo, tiles, yo, W, lp, k0, k0 + gk)
        nx2, Yn = rows[xo + k3 + g], tiles[yo + (k3 + g) * TS :]
        if _rot(W, lp, nx2, Yn) > 0:
            _robust(W, W64, L, nx2, Yn)
        if metric == PAPER:
            _transpose_r(W, lp)
        _resid(rows, xo, tiles, yo, W, lp, k0, k0 + gk, metric == HAND, True)
        if metric != HAND:
            for jj in range(L):
                out[jj] += W[_ACC * WS + jj]
            continue
        s1, s2, s3, delta = params[0], params[1], params[2], params[3]
        wx, wy = xo + k3 + G + 3 * g, yo + (k3 + G + 3 * g) * TS
        for jj in range(L):
            f1 = math.sqrt(W[_ACC * WS + jj])
            qx, qy, qz = W[(_Q + 1) * WS + jj], W[(_Q + 2) * WS + jj], W[(_Q + 3) * WS + jj]
            f2 = 2.0 * math.atan2(math.sqrt(qx * qx + qy * qy + qz * qz), abs(W[_Q * WS + jj]))
            e0 = rows[wx] - tiles[wy + jj]
            e1 = rows[wx + 1] - tiles[wy + TS + jj]
            e2 = rows[wx + 2] - tiles[wy + 2 * TS + jj]
            f3 = max(0.0, math.sqrt(e0 * e0 + e1 * e1 + e2 * e2) - delta)
            out[jj] += f1 / s1 + f2 * f2 / s2 + f3 * f3 / s3


@njit(**_opts)
def row_costs(metric, geo, rows, xo, nrows, tiles, tb, lo, hi, params, W, W64, crow, cs):
    """crow[r * cs + j] = cost of frame r of the block rows[xo:] (nrows frames) against lane j
    of tiles[tb:], for lo <= j < hi (tile by tile; all rows of the block per tile)."""
    RW = geo[0]
    for t in range(lo // TW, (hi - 1) // TW + 1):
        s0 = max(lo - t * TW, 0)
        L = min(hi - t * TW, TW) - s0
        yo = tb + t * RW * TS + s0
        for r in range(nrows):
            out = crow[r * cs + t * TW + s0 :]
            _lane_costs(metric, geo, rows, xo + r * RW, tiles, yo, L, params, W, W64, out)


@njit(**_opts)
def band_width(m, n, window):
    """Half-width of the Sakoe-Chiba band: max(window, |m - n|); no window (< 0): max(m, n)."""
    return max(m, n) if window < 0 else max(window, abs(m - n))


@njit(**_opts)
def dtw_pair(metric, geo, rows, ra, m, tiles, tb, n, window, params, abandon, buf):
    """DTW distance of a rows-sequence (first frame ra, m frames) and a tiles-sequence (tb, n).

    Costs are computed RB rows at a time; returns inf as soon as a whole DTW row exceeds
    ``abandon`` (early abandoning). The number of DTW rows computed is added to ``buf[4][0]``.
    """
    W, crow, prev, cur, _, W64 = buf
    cs = crow.shape[0] // RB
    w = band_width(m, n, window)
    inf = math.inf
    for i0 in range(0, m, RB):
        nr = min(RB, m - i0)
        lo0, hi1 = max(0, i0 - w), min(n, i0 + nr - 1 + w + 1)
        row_costs(metric, geo, rows, (ra + i0) * geo[0], nr, tiles, tb, lo0, hi1, params, W,
                  W64, crow, cs)  # fmt: skip
        if nr == 2:  # two rows as a wavefront (row i0 at j, row i0 + 1 at j - 1): the two
            # serial min/add chains overlap; same operations, same order as one row at a time
            i = i0
            lo, hi = max(0, i - w), min(n, i + w + 1)
            lo2, hi2 = max(0, i + 1 - w), min(n, i + w + 2)
            c, c2 = crow, crow[cs:]
            if hi < n:
                cur[hi] = inf
            if lo > 0:
                cur[lo - 1] = inf
            left = rowmin = left2 = rowmin2 = inf
            for j in range(lo, max(hi, hi2 + 1)):
                if j < hi:
                    if i == 0:
                        best = 0.0 if j == 0 else left
                    else:
                        best = min(prev[j], left)
                        if j > 0:
                            best = min(best, prev[j - 1])
                    left = c[j] + best
                    cur[j] = left
                    rowmin = min(rowmin, left)
                j2 = j - 1
                if j2 >= lo2 and j2 < hi2:  # row i + 1 overwrites row i - 1 behind row i
                    best = min(cur[j2], left2)
                    if j2 > 0:
                        best = min(best, cur[j2 - 1])
                    left2 = c2[j2] + best
                    prev[j2] = left2
                    rowmin2 = min(rowmin2, left2)
            if rowmin > abandon:
                buf[4][0] += i + 1
                return inf
            if hi2 < n:
                prev[hi2] = inf
            if lo2 > 0:
                prev[lo2 - 1] = inf
            if rowmin2 > abandon:
                buf[4][0] += i + 2
                return inf
            continue
        for i in range(i0, i0 + nr):
            lo, hi = max(0, i - w), min(n, i + w + 1)
            c = crow[(i - i0) * cs :]
            left = rowmin = inf
            for j in range(lo, hi):
                if i == 0:
                    best = 0.0 if j == 0 else left
                else:
                    best = min(prev[j], left)
                    if j > 0:
                        best = min(best, prev[j - 1])
                left = c[j] + best
                cur[j] = left
                rowmin = min(rowmin, left)
            if hi < n:
                cur[hi] = inf
            if lo > 0:
                cur[lo - 1] = inf
            if rowmin > abandon:
                buf[4][0] += i + 1
                return inf
            prev, cur = cur, prev
    buf[4][0] += m
    return prev[n - 1]


@njit(**_opts)
def _buffers(maxn, frames):
    """Per-thread work buffers (W in the frames' precision, crow, prev, cur, counter of DTW
    rows, W64: the robust path's float64 copy of W)."""
    W = np.zeros(NWORK * WS + 8, frames.dtype)
    crow = np.zeros(RB * (maxn + TW + 8))
    inf = np.full(maxn + 1, np.inf)
    return W, crow, inf, inf.copy(), np.zeros(1, dtype=np.int64), np.zeros(NWORK * WS + 8)


@njit(parallel=True, **_opts)
def dtw_pairs(metric, geo, rows, roff, tiles, toff, lens, prow, pcol, window, params, nthreads):
    """DTW distances of the pairs (prow[p] as rows, pcol[p] as lanes); round-robin on threads."""
    P = prow.shape[0]
    out = np.empty(P)
    for t in prange(nthreads):
        buf = _buffers(lens.max(), rows)
        for p in range(t, P, nthreads):
            a, b = prow[p], pcol[p]
            out[p] = dtw_pair(metric, geo, rows, roff[a], lens[a], tiles, toff[b], lens[b],
                              window, params, math.inf, buf)  # fmt: skip
    return out


@njit(parallel=True, **_opts)
def cost_matrix(metric, geo, rows, ra, m, tiles, tb, n, params):
    """(m, n) frame-cost matrix of one pair (rows in parallel)."""
    out = np.empty((m, n))
    for i in prange(m):
        W, crow, _, _, _, W64 = _buffers(n, rows)
        row_costs(metric, geo, rows, (ra + i) * geo[0], 1, tiles, tb, 0, n, params, W, W64,
                  crow, 0)  # fmt: skip
        out[i, :] = crow[:n]
    return out


@njit(**_opts)
def _knn_one(metric, geo, qrows, qa, m, tiles, toff, lens, sub, k, window, params, prune, out):
    """Exact k nearest of one query among references ``sub`` (ties: lowest index).

    ``out = (indices, distances)`` (k,) each, filled in (distance, index) order; unfilled
    slots keep -1 and inf. Returns the number of DTW rows computed (all: m * len(sub)).
    """
    out_i, out_d = out
    N = sub.shape[0]
    buf = _buffers(lens.max(), qrows)
    W, crow, W64 = buf[0], buf[1], buf[5]
    lb = np.zeros(N)
    for s in range(N if prune else 0):  # every path passes (0, 0) and (m-1, n-1)
        r = sub[s]
        n = lens[r]
        row_costs(metric, geo, qrows, qa * geo[0], 1, tiles, toff[r], 0, 1, params, W, W64,
                  crow, 0)  # fmt: skip
        lb[s] = crow[0]
        if m > 1 or n > 1:
            xo = (qa + m - 1) * geo[0]
            row_costs(metric, geo, qrows, xo, 1, tiles, toff[r], n - 1, n, params, W, W64,
                      crow, 0)  # fmt: skip
            lb[s] += crow[n - 1]
    order = np.argsort(lb, kind="mergesort")  # stable: ties by position, sub is ascending
    cnt = 0
    for s in order:
        r = sub[s]
        thr = out_d[k - 1] if cnt == k else math.inf
        if prune and lb[s] * (1.0 - 1e-12) > thr:
            break  # lb is sorted: no later reference can enter
        d = dtw_pair(metric, geo, qrows, qa, m, tiles, toff[r], lens[r], window, params,
                     thr if prune else math.inf, buf)  # fmt: skip
        if cnt == k and (d > thr or (d == thr and r > out_i[k - 1])):
            continue
        pos = min(cnt, k - 1)  # insert (d, r) keeping (distance, index) order
        while pos > 0 and (out_d[pos - 1] > d or (out_d[pos - 1] == d and out_i[pos - 1] > r)):
            out_d[pos], out_i[pos] = out_d[pos - 1], out_i[pos - 1]
            pos -= 1
        out_d[pos], out_i[pos] = d, r
        cnt = min(cnt + 1, k)
    return buf[4][0]


@njit(parallel=True, **_opts)
def knn_many(metric, geo, qrows, qoff, qlens, tiles, toff, lens, k, window, params, prune,
             nchunks):  # fmt: skip
    """k nearest references of every query, in parallel over (query, chunk of references).

    References are dealt round-robin into ``nchunks`` chunks; each task is exact on its chunk
    and returns its own k best (the caller merges them). Shapes (Q, nchunks, k).
    """
    Q = qlens.shape[0]
    out_i = np.full((Q, nchunks, k), -1, dtype=np.int64)
    out_d = np.full((Q, nchunks, k), np.inf)
    computed = np.zeros((Q, nchunks), dtype=np.int64)
    for task in prange(Q * nchunks):
        q, c = task // nchunks, task % nchunks
        sub = np.arange(c, lens.shape[0], nchunks)
        computed[q, c] = _knn_one(metric, geo, qrows, qoff[q], qlens[q], tiles, toff, lens, sub,
                                  k, window, params, prune, (out_i[q, c], out_d[q, c]))  # fmt: skip
    return out_i, out_d, computed
