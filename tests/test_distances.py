"""Procrustes-DTW distances: numba kernels against the plain reference, invariances, API."""

from __future__ import annotations

import doctest
import itertools
import math
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from geokd.distances import _cdist as D
from geokd.distances import _kernels
from geokd.distances import reference as _reference

UTD = Path(__file__).resolve().parents[1].parent / "shared/datasets/utd-mhad/Skeleton"
RTOL = 1e-9


def seqs(seed, lengths, K=20):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(t, K, 3)) for t in lengths]


def close(actual, expected, rtol=RTOL, atol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def random_rigid(rng, shape):
    """Per-frame random rotation, scale and translation applied to a (T, K, 3) sequence."""
    T = shape[0]
    R = Rotation.random(T, random_state=int(rng.integers(1 << 31))).as_matrix()  # (T, 3, 3)
    scale = rng.uniform(0.1, 10.0, size=(T, 1, 1))
    shift = rng.normal(scale=5.0, size=(T, 1, 3))
    return lambda s: scale * np.einsum("tkc,tdc->tkd", s, R) + shift


@pytest.fixture(scope="module")
def utd_seqs():
    if not (UTD.is_dir() and any(UTD.glob("*.mat"))):
        pytest.skip(f"real UTD-MHAD data not found at {UTD}")
    names = ["a1_s1_t1", "a1_s6_t1", "a5_s2_t3", "a22_s7_t2", "a27_s8_t3"]
    return [
        np.ascontiguousarray(
            scipy.io.loadmat(UTD / f"{n}_skeleton.mat")["d_skel"].transpose(2, 0, 1)
        )
        for n in names
    ]


# --- hand-checked values ----------------------------------------------------------------------


def test_hand_checked_euclidean_dtw():
    a = np.array([[0.0, 0, 0], [1, 0, 0]])[:, None, :]  # (2, 1, 3)
    b = np.array([[0.0, 0, 0], [0, 0, 0], [2, 0, 0]])[:, None, :]  # (3, 1, 3)
    # costs [[0, 0, 2], [1, 1, 1]] -> D = [[0, 0, 2], [1, 1, 1]]
    close(D.frame_cost_matrix(a, b, "euclidean"), [[0, 0, 2], [1, 1, 1]])
    assert D.pair_distance(a, b, metric="euclidean") == 1.0
    assert D.pair_distance(b, a, metric="euclidean") == 1.0
    # window 0: |i - j| <= max(0, |m - n|) = 1 excludes (0, 2): still 1; D[m-1][n-1] not D[m][n]
    assert D.pair_distance(a, b, metric="euclidean", window=0) == 1.0
    c = np.array([[0.0, 0, 0], [5, 0, 0], [0, 0, 0]])[:, None, :]
    e = np.array([[5.0, 0, 0], [0, 0, 0], [0, 0, 0]])[:, None, :]
    # free: path (0,0) (1,0) (2,1) (2,2): 5 + 0 + 0 + 0; band 0: diagonal only: 5 + 5 + 0
    assert D.pair_distance(c, e, metric="euclidean") == 5.0
    assert D.pair_distance(c, e, metric="euclidean", window=0) == 10.0
    assert D.pair_distance(c, e, metric="euclidean", window=1) == 5.0


def test_hand_checked_procrustes_values():
    tri = np.array([[1.0, 0, 0], [-0.5, math.sqrt(3) / 2, 0], [-0.5, -math.sqrt(3) / 2, 0]])
    point = np.full((3, 3), 7.0)  # degenerate: all landmarks at one point -> zeros, no NaN
    # cost vs a degenerate frame = sum of the row norms of the unit-norm triangle = sqrt(3)
    close(D.frame_cost_matrix(tri[None], point[None])[0, 0], math.sqrt(3), rtol=1e-14)
    close(D.frame_cost_matrix(point[None], point[None])[0, 0], 0.0)
    # rotated, scaled, shifted copy: 0; mirrored triangle (planar): a proper rotation matches it
    rot = Rotation.from_euler("xyz", [0.3, -1.2, 2.0]).as_matrix()
    assert D.frame_cost_matrix(tri[None], (3 * tri @ rot.T + 1)[None])[0, 0] < 1e-14
    assert D.frame_cost_matrix(tri[None], (tri * [-1, 1, 1])[None])[0, 0] < 1e-14
    # DTW: 2 x 2 frames, every frame a rotated copy -> 0
    seq = np.stack([tri, tri @ rot.T])
    assert D.pair_distance(seq, seq[::-1]) < 1e-13


# --- kernel == reference ----------------------------------------------------------------------


@pytest.mark.parametrize("K", [20, 21, 42])
@pytest.mark.parametrize("metric", ["procrustes", "paper", "euclidean"])
def test_kernel_matches_reference_random(metric, K):
    ss = seqs(K, [1, 2, 5, 9, 12], K=K)
    close(D.cdist(ss, metric=metric), _reference.cdist(ss, metric=metric))
    q = seqs(K + 1, [3, 11], K=K)
    close(D.cdist(q, ss, metric=metric), _reference.cdist(q, ss, metric=metric))


@pytest.mark.parametrize("K", [21, 42])
def test_hand_metric_matches_reference(K):
    ss = seqs(7, [1, 4, 8], K=K)
    params = {"s1": 0.4, "s2": 2.0, "s3": 0.3, "delta": 1.5}
    for p in ({}, params):
        close(D.cdist(ss, metric="hand", **p), _reference.cdist(ss, metric="hand", **p))
    with pytest.raises(ValueError, match="K = 21"):
        D.cdist(seqs(0, [2, 3], K=20), metric="hand")


def test_long_sequences_cross_tiles_with_window():
    ss = seqs(3, [70, _kernels.TW + 3])  # more than one lane tile
    C = _reference.cost_matrix(*ss)
    close(D.frame_cost_matrix(*ss), C)
    for window in (None, 5, 60, 100):
        close(D.cdist(ss, window=window)[0, 1], _reference.dtw(C, window))
        close(D.cdist(ss[::-1], window=window)[0, 1], _reference.dtw(C, window))


def test_kernel_matches_reference_on_utd_mhad(utd_seqs):
    a, b, c, d, e = utd_seqs
    for x, y in ((a, b), (c, d), (e, a)):
        close(D.pair_distance(x, y), _reference.distance(x, y))
    close(D.pair_distance(a, c, window=10), _reference.distance(a, c, window=10))
    x, y = a[:15], d[:12]
    close(D.pair_distance(x, y, metric="paper"), _reference.original_distance(x, y))


NEAR_DEGENERATE = {
    "identical": lambda f, g: (f, f),
    "planar": lambda f, g: (f * [1, 1, 0], g * [1, 1, 0]),
    "reflection": lambda f, g: (f, f * [-1, 1, 1] + 1e-3 * g),
    "planar_reflection": lambda f, g: (f * [1, 1, 0], f * [-1, 1, 0]),
    "tiny_norms": lambda f, g: (f * 1e-200, g * 1e-170),
    "huge_norms": lambda f, g: (f * 1e150, g * 1e120),  # hand: f3^2 (raw wrists) stays finite
    "one_point": lambda f, g: (f, np.full_like(g, 3.0)),
    "near_rotated": lambda f, g: (f, f @ Rotation.from_rotvec([0.1, 0, 2]).as_matrix() + 1e-7 * g),
}


@pytest.mark.parametrize("case", sorted(NEAR_DEGENERATE))
@pytest.mark.parametrize("metric", ["procrustes", "hand"])
def test_frame_costs_near_degenerate(case, metric):
    rng = np.random.default_rng(11)
    pairs = [NEAR_DEGENERATE[case](*rng.normal(size=(2, 21, 3))) for _ in range(6)]
    a, b = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    got = D.frame_cost_matrix(a, b, metric)
    assert np.isfinite(got).all()
    close(got, _reference.cost_matrix(a, b, metric), atol=1e-11)


def quat_to_matrix(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
        ]
    )


def test_robust_paths_give_the_same_rotations():
    """Flag every lane: the scalar Laguerre path and a Jacobi eigen-solve of Horn's matrix give
    the rotations of the vectorised QCP path, which are the SVD reference's."""
    P = D.prepare(seqs(5, [1, 20]))
    W = np.zeros(_kernels.NWORK * _kernels.WS + 8)
    k3, yo, ws = 3 * P.Kp, int(P.toff[1]), _kernels.WS
    Yn = P.tiles[yo + k3 * _kernels.TS :]
    _kernels._cov(P.rows, 0, P.tiles, yo, W, 24, 0, P.Kp)
    assert _kernels._rot(W, 24, P.rows[k3], Yn) == 4  # the 4 padding lanes
    rows = slice(_kernels._R * ws, (_kernels._R + 9) * ws)
    fast = W[rows].reshape(9, ws)[:, :20].copy()
    x = P.rows[: 3 * P.Kp].reshape(-1, 3)
    y = P.tiles[yo : yo + k3 * _kernels.TS].reshape(-1, _kernels.TS)[:, :20]
    for j in range(20):  # R (acting on the lane frame's columns) = Q^T of the SVD reference
        Q = _reference.optimal_rotation(x, y[:, j].reshape(-1, 3))
        close(fast[:, j].reshape(3, 3), Q.T, atol=1e-13)
        N = _kernels._key_matrix(W, j)
        A = np.zeros((4, 4))
        A[np.triu_indices(4)] = N
        A = A + np.triu(A, 1).T
        close(quat_to_matrix(np.array(_kernels.jacobi_top_eigvec(A))), Q.T, atol=1e-13)
    W[_kernels._FL * ws : (_kernels._FL + 1) * ws] = 1.0
    _kernels._robust(W, np.zeros_like(W), 20, P.rows[k3], Yn)
    close(W[rows].reshape(9, ws)[:, :20], fast, atol=1e-13)
    A = np.random.default_rng(0).normal(size=(4, 4))
    A = A + A.T
    _, V = np.linalg.eigh(A)
    close(abs(np.array(_kernels.jacobi_top_eigvec(A.copy())) @ V[:, -1]), 1.0, rtol=1e-13)


def test_float32_kernel_rotations_and_its_float64_robust_path():
    """dtype float32: the vectorised QCP lanes compute in float32 (the kernel is compiled for
    float32 frames, not promoted back to float64) and give the SVD reference's rotations to
    float32 rounding; the robust path redoes flagged lanes in float64 from the same S."""
    P = D.prepare(seqs(5, [1, 20]), dtype="float32")
    assert P.rows.dtype == P.tiles.dtype == np.float32 and P.dtype == "float32"
    W = np.zeros(_kernels.NWORK * _kernels.WS + 8, dtype=np.float32)
    k3, yo, ws = 3 * P.Kp, int(P.toff[1]), _kernels.WS
    Yn = P.tiles[yo + k3 * _kernels.TS :]
    _kernels._cov(P.rows, 0, P.tiles, yo, W, 24, 0, P.Kp)
    flagged = _kernels._rot(W, 24, P.rows[k3], Yn)  # the 4 padding lanes, and a few where
    assert 4 <= flagged <= 6  # float32's final Newton step is above STEP_TOL32: robust path
    f32 = numba.types.Array(numba.float32, 1, "C")  # compiled for float32 (in any order)
    assert any(sig[0] == f32 for sig in _kernels._rot.signatures)
    _kernels._robust(W, np.zeros(W.shape), 20, P.rows[k3], Yn)  # as _lane_costs does
    rows = slice(_kernels._R * ws, (_kernels._R + 9) * ws)
    fast = W[rows].reshape(9, ws)[:, :20].copy()
    x = P.rows[: 3 * P.Kp].reshape(-1, 3).astype(np.float64)
    y = P.tiles[yo : yo + k3 * _kernels.TS].reshape(-1, _kernels.TS)[:, :20].astype(np.float64)
    for j in range(20):
        Q = _reference.optimal_rotation(x, y[:, j].reshape(-1, 3))
        close(fast[:, j].reshape(3, 3), Q.T, rtol=0, atol=2e-6)
    W[_kernels._FL * ws : (_kernels._FL + 1) * ws] = 1.0
    _kernels._robust(W, np.zeros(W.shape), 20, P.rows[k3], Yn)
    close(W[rows].reshape(9, ws)[:, :20], fast, rtol=0, atol=2e-6)


def test_float32_mode_invariances_determinism_and_exact_knn():
    rng = np.random.default_rng(4)
    ss = seqs(8, [6, 9, 13, 1, 30])
    base = D.cdist(ss, dtype="float32")
    close(base, D.cdist(ss), rtol=1e-5)
    assert (base == base.T).all() and (np.diag(base) == 0).all()
    np.testing.assert_array_equal(D.cdist(ss, dtype=np.float32, n_jobs=1), base)
    for i in range(len(ss)):  # rigid motions and scale per frame: float32 rounding only
        moved = [s.copy() for s in ss]
        moved[i] = random_rigid(rng, ss[i].shape)(ss[i])
        close(D.cdist(moved, dtype="float32"), base, rtol=1e-5)
    for metric in ("paper", "euclidean"):
        close(D.cdist(ss, metric=metric, dtype="float32"), D.cdist(ss, metric=metric), rtol=1e-5)
    close(
        D.cdist(seqs(6, [4, 7, 2], K=42), metric="hand", dtype="float32"),
        D.cdist(seqs(6, [4, 7, 2], K=42), metric="hand"),
        rtol=1e-5,
    )
    refs = [s + rng.normal(scale=0.3, size=s.shape) for s in ss for _ in range(3)]
    R = D.prepare(refs, dtype="float32")
    ip, dp = D.knn_query(ss, R, 3, dtype="float32")
    iu, du = D.knn_query(ss, R, 3, dtype="float32", prune=False)
    np.testing.assert_array_equal(ip, iu)
    np.testing.assert_array_equal(dp, du)
    np.testing.assert_array_equal(ip, D.knn_query(ss, refs, 3)[0])  # float64's neighbours
    with pytest.raises(ValueError, match="prepared in float32, not float64"):
        D.knn_query(ss, R, 3)
    with pytest.raises(ValueError, match="dtype must be one of"):
        D.prepare(ss, dtype="int8")


# --- invariances and structure ----------------------------------------------------------------


def test_procrustes_invariant_to_per_frame_rigid_transforms_and_scale():
    rng = np.random.default_rng(4)
    ss = seqs(8, [6, 9, 13])
    base = D.cdist(ss)
    for i in range(len(ss)):
        moved = [s.copy() for s in ss]
        moved[i] = random_rigid(rng, ss[i].shape)(ss[i])
        close(D.cdist(moved), base)
        close(D.cdist([moved[i]], ss)[0], base[i])


def test_paper_metric_is_the_original_and_not_rotation_invariant():
    ss = seqs(9, [4, 7])
    close(D.cdist(ss, metric="paper")[0, 1], _reference.original_distance(*ss))
    rotated = ss[1] @ Rotation.from_rotvec([0.0, 0.0, 1.5]).as_matrix().T
    close(
        D.pair_distance(ss[0], rotated, metric="paper"),
        _reference.original_distance(ss[0], rotated),
    )
    assert (
        abs(D.pair_distance(ss[0], rotated, metric="paper") - D.pair_distance(*ss, metric="paper"))
        > 1e-3
    )
    assert abs(D.pair_distance(ss[0], rotated) - D.pair_distance(*ss)) < 1e-12


def test_euclidean_equals_brute_force():
    ss = seqs(10, [3, 8])
    C = np.linalg.norm(ss[0][:, None] - ss[1][None], axis=-1).sum(-1)  # (m, n)
    close(D.frame_cost_matrix(*ss, "euclidean"), C)
    close(D.pair_distance(*ss, metric="euclidean"), _reference.dtw(C))


def test_symmetry_zero_diagonal_serial_parallel_and_blocks():
    ss = seqs(12, [5, 1, 9, 3, 14, 7, 2])
    full = D.cdist(ss)
    assert (full == full.T).all() and (np.diag(full) == 0).all() and (full >= 0).all()
    close(D.cdist(ss, ss), full)  # computed both ways round
    assert np.abs(np.diag(D.cdist(ss, ss))).max() < 1e-12
    np.testing.assert_array_equal(D.cdist(ss, n_jobs=1), full)
    np.testing.assert_array_equal(D.cdist(ss[:3], ss[3:], n_jobs=1), D.cdist(ss[:3], ss[3:]))
    cut = list(itertools.pairwise([0, 2, 5, 7]))
    stitched = np.block([[D.cdist(ss[a:b], ss[c:d]) for c, d in cut] for a, b in cut])
    close(stitched, full, rtol=1e-13)


def test_window_semantics():
    ss = seqs(13, [8, 8, 12])
    ss[1] = ss[0][[0, 0, 0, 1, 2, 3, 4, 5]]  # a time-shifted copy: the best path is off-diagonal
    none = D.cdist(ss)
    np.testing.assert_array_equal(D.cdist(ss, window=12), none)  # >= max(m, n): no band
    w0 = D.cdist(ss, window=0)
    C = D.frame_cost_matrix(ss[0], ss[1])
    close(w0[0, 1], np.trace(C))  # equal lengths, band 0: the diagonal path only
    assert (w0 >= none - 1e-12).all() and (w0[0, 1] > none[0, 1])
    # unequal lengths: band max(window, |m - n|) = 4 still admits a path
    close(w0[0, 2], _reference.distance(ss[0], ss[2], window=0))
    assert math.isfinite(w0[0, 2])
    close(D.cdist(ss, window=2), _reference.cdist(ss, window=2))


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_the_sequence():
    good = seqs(0, [3, 4, 5])
    nan = [s.copy() for s in good]
    nan[2][1, 3, 0] = np.nan
    cases = [
        (nan, r"queries\[2\]: contains NaN or inf \(frame 1\)"),
        ([good[0], np.zeros((0, 20, 3))], r"queries\[1\]: empty sequence"),
        ([good[0], np.zeros((4, 20, 2))], r"queries\[1\]: last dimension must be 3"),
        ([good[0], np.zeros((4, 60))], r"queries\[1\]: expected shape \(T, K, 3\)"),
        ([good[0], np.zeros((4, 21, 3))], r"queries\[1\]: K = 21 landmarks, expected K = 20"),
        ([good[0], [[["a"]]]], r"queries\[1\]: not a numeric array"),
    ]
    for bad, msg in cases:
        with pytest.raises(ValueError, match=msg):
            D.cdist(bad)
    inf = [good[0], good[1] * np.inf]
    with pytest.raises(ValueError, match=r"references\[1\]: contains NaN or inf"):
        D.cdist(good, inf)
    with pytest.raises(ValueError, match=r"references\[0\]: K = 21"):
        D.cdist(good, seqs(0, [2], K=21))
    with pytest.raises(ValueError, match="one array"):
        D.cdist(good[0])
    for kwargs in (
        {"window": -1},
        {"window": 1.5},
        {"metric": "cosine"},
        {"n_jobs": 0},
        {"backend": "tpu"},
    ):
        with pytest.raises(ValueError):
            D.cdist(good, **kwargs)
    with pytest.raises(TypeError):
        D.cdist(good, s1=1.0)
    with pytest.raises(ValueError, match="k must be"):
        D.knn_query(good[0], good, k=4)
    with pytest.raises(ValueError, match="prepared for metric 'procrustes'"):
        D.cdist(D.prepare(good), metric="paper")


def test_empty_inputs():
    a = seqs(0, [3])
    assert D.cdist([]).shape == (0, 0) and D.cdist([], a).shape == (0, 1)
    assert D.cdist(a, []).shape == (1, 0) and D.cdist([], a, backend="torch").shape == (0, 1)
    assert D.knn_query([], a, 1)[0].shape == (0, 1)


def test_docstring_examples():
    assert doctest.testmod(D, raise_on_error=False).failed == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.integers(1, 6).flatmap(
            lambda t: arrays(np.float64, (t, 4, 3), elements=st.floats(-1e3, 1e3, width=32))
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["procrustes", "paper", "euclidean"]),
    st.one_of(st.none(), st.integers(0, 3)),
)
def test_property_symmetric_nonnegative_finite(sequences, metric, window):
    M = D.cdist(sequences, metric=metric, window=window)
    assert M.shape == (len(sequences),) * 2 and M.dtype == np.float64
    assert np.isfinite(M).all() and (M >= 0).all() and (np.diag(M) == 0).all()
    assert (M == M.T).all()
    other = D.cdist(sequences, sequences, metric=metric, window=window)
    assert np.isfinite(other).all() and (other >= 0).all() and np.diag(other).max() < 1e-9
    if metric == "euclidean":  # the others can be ill-posed here (e.g. collinear frames)
        close(other, M, rtol=1e-9, atol=1e-9)


# --- KNN --------------------------------------------------------------------------------------


def test_knn_exact_with_pruning_and_ties():
    rng = np.random.default_rng(21)
    base = seqs(22, [6, 9, 4])
    refs = [b + rng.normal(scale=s, size=b.shape) for s in (0.02, 0.3, 1.0) for b in base]
    refs += [refs[4].copy(), refs[1].copy()]  # duplicates: ties broken by lowest index
    queries = [base[1] + 0.01, base[0] * 2, refs[4]]
    full = D.cdist(queries, refs)
    for k in (1, 3, len(refs)):
        for window in (None, 2):
            ip, dp, n_pruned = D.knn_query(queries, refs, k, window=window, return_stats=True)
            iu, du, n_full = D.knn_query(
                queries, refs, k, window=window, prune=False, return_stats=True
            )
            np.testing.assert_array_equal(ip, iu)
            np.testing.assert_array_equal(dp, du)
            m = np.array([len(q) for q in queries])
            assert (n_full == m * len(refs)).all() and (n_pruned <= n_full).all()
            F = full if window is None else D.cdist(queries, refs, window=window)
            order = np.array(
                [sorted(range(len(refs)), key=lambda j, r=r: (r[j], j))[:k] for r in np.round(F, 9)]
            )
            np.testing.assert_array_equal(ip, order)
            close(dp, np.take_along_axis(F, ip, axis=1))
    idx, dist = D.knn_query(refs[4], refs, 2)
    assert idx.tolist() == [4, 9] and dist[0] == dist[1] < 1e-12
    assert D.knn_query(queries, refs, 1, return_stats=True)[2][0] < 6 * len(refs)  # it prunes


# --- torch backend ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["procrustes", "paper", "euclidean", "hand"])
def test_torch_backend_matches_cpu(metric):
    K = 42 if metric == "hand" else 20
    ss = seqs(30, [1, 4, 7, 3], K=K)
    q = seqs(31, [5, 2], K=K)
    for window in (None, 1):
        close(
            D.cdist(ss, metric=metric, window=window, backend="torch"),
            D.cdist(ss, metric=metric, window=window),
        )
        close(
            D.cdist(q, ss, metric=metric, window=window, backend="torch"),
            D.cdist(q, ss, metric=metric, window=window),
        )


def test_auto_backend_without_cuda_is_the_cpu_kernel():
    import torch

    ss = seqs(32, [3, 5])
    if not torch.cuda.is_available():
        np.testing.assert_array_equal(D.cdist(ss, backend="auto"), D.cdist(ss))


def test_the_original_scrambled_frames_match_the_reference(utd_seqs):
    """Real data in the original's reshape-scrambled layout ("as published" runs): most such
    "frames" are near-planar or near-collinear point clouds, the kernel's robust path.

    ``procrustes`` matches everywhere. ``paper`` (the transposed rotation) is only defined
    where the optimal rotation is unique: where M = X^T Y has rank < 2 every rotation of a
    one-parameter family is optimal, the residual is the same for all of them but its
    transpose is not, and the original's value depends on LAPACK's choice of basis.
    """
    from geokd.data.utd_mhad import scramble_like_paper

    frames = [scramble_like_paper(s)[::4] for s in utd_seqs[:3]]  # 32 frames each
    sv = np.linalg.svd(frames[0] - frames[0].mean(axis=1, keepdims=True), compute_uv=False)
    assert np.mean(sv[:, 2] < 1e-3 * sv[:, 0]) > 0.3  # really degenerate, mostly
    a, b = frames[0], frames[1]
    got = D.frame_cost_matrix(a, b, "procrustes")
    assert np.isfinite(got).all()
    close(got, _reference.cost_matrix(a, b, "procrustes"), atol=1e-9)
    close(D.cdist(frames), _reference.cdist(frames), atol=1e-8)
    na = np.stack([_reference.normalise(f) for f in a])
    nb = np.stack([_reference.normalise(f) for f in b])
    s = np.linalg.svd(np.einsum("ikc,jkd->ijcd", na, nb), compute_uv=False)  # (i, j, 3)
    unique = s[..., 1] > 1e-6 * s[..., 0]
    assert 0.5 < unique.mean() < 1.0  # both kinds occur in real scrambled data
    got, ref = D.frame_cost_matrix(a, b, "paper"), _reference.cost_matrix(a, b, "paper")
    assert np.isfinite(got).all()
    close(got[unique], ref[unique], atol=1e-9)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_progress_bar_counts_every_pair_and_changes_no_value(backend, capsys, monkeypatch):
    """cdist(progress=True): the pairs run in chunks of equal work under a tqdm bar that ends at
    the number of pairs; the matrix is the one-call matrix (torch: to rounding), symmetric and
    rectangular."""
    from geokd.distances import _prepared

    monkeypatch.setattr(_prepared, "PROGRESS_CHUNKS", 7)
    rng = np.random.default_rng(5)
    seqs = [rng.normal(size=(int(rng.integers(3, 12)), 6, 3)) for _ in range(40)]
    calls = []
    real = _prepared.with_progress

    def counting(run, min_chunk=1):
        chunked = real(run, min_chunk=1)  # 7 chunks even for this small set

        def wrapped(P, ia, ib):
            calls.append(ia.size)
            return chunked(P, ia, ib)

        return wrapped

    monkeypatch.setattr(_prepared, "with_progress", counting)
    for refs, n_pairs in ((None, 40 * 39 // 2), (seqs[:9], 40 * 9)):
        plain = D.cdist(seqs, refs, backend=backend)
        shown = D.cdist(seqs, refs, backend=backend, progress=True)
        if backend == "cpu":  # pair by pair: bit for bit
            assert np.array_equal(plain, shown)
        else:  # torch batches the frame costs of a chunk: equal to rounding
            np.testing.assert_allclose(shown, plain, rtol=1e-12, atol=1e-12)
        err = capsys.readouterr().err
        assert f"{n_pairs}/{n_pairs}" in err, err
        assert "cdist" in err
    assert calls == [40 * 39 // 2, 40 * 9]


def test_progress_chunks_split_the_work_evenly():
    """The chunk bounds follow the cumulative frame pairs: no chunk holds much more than its
    share, every pair is run exactly once and in order."""
    from geokd.distances import _prepared

    rng = np.random.default_rng(2)
    P = D.prepare([rng.normal(size=(int(t), 5, 3)) for t in rng.integers(2, 60, 80)], "procrustes")
    ia, ib = (a.astype(np.int64) for a in np.triu_indices(80, k=1))
    seen = []

    def run(_, a, b):
        seen.append((a.copy(), b.copy()))
        return (a * 1000 + b).astype(float)

    out = _prepared.with_progress(run)(P, ia, ib)
    assert np.array_equal(out, ia * 1000 + ib)
    assert np.array_equal(np.concatenate([a for a, _ in seen]), ia)
    work = [int((P.lengths[a] * P.lengths[b]).sum()) for a, b in seen]
    assert len(seen) == _prepared.PROGRESS_CHUNKS
    assert max(work) <= sum(work) / len(seen) + int((P.lengths.max()) ** 2)
