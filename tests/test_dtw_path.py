"""geokd.distances.dtw_path (in the plain reference module): the optimal warping path of a
frame-cost matrix, checked against every warping path of small matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import geokd.distances
from geokd.distances import dtw_path, reference


def _all_paths(m: int, n: int, window: int | None):
    """Every monotone (1,0)/(0,1)/(1,1) path from (0, 0) to (m-1, n-1) inside the band."""

    def extend(path):
        i, j = path[-1]
        if (i, j) == (m - 1, n - 1):
            yield path
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            a, b = i + di, j + dj
            lo, hi = reference.band(a, m, n, window) if a < m else (0, 0)
            if a < m and b < n and lo <= b < hi:
                yield from extend([*path, (a, b)])

    yield from extend([(0, 0)])


@pytest.mark.parametrize(("m", "n", "window"), [(4, 5, None), (5, 3, None), (6, 6, 1), (5, 4, 0)])
def test_the_path_is_the_cheapest_of_all_warping_paths(m, n, window):
    rng = np.random.default_rng(m * 10 + n)
    cost = rng.random((m, n))
    path, total = dtw_path(cost, window)
    best = min(sum(cost[i, j] for i, j in p) for p in _all_paths(m, n, window))
    assert total == pytest.approx(best, abs=1e-12)
    assert total == pytest.approx(reference.dtw(cost, window), abs=1e-12)
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total, abs=1e-12)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (m - 1, n - 1)
    assert {tuple(s) for s in np.diff(path, axis=0)} <= {(1, 0), (0, 1), (1, 1)}
    assert path.dtype == np.int64 and path.shape[1] == 2
    if window is not None:
        assert np.abs(path[:, 0] - path[:, 1]).max() <= max(window, abs(m - n))


def test_ties_take_the_diagonal_then_up_then_left():
    path, total = dtw_path(np.zeros((3, 3)))
    assert path.tolist() == [[0, 0], [1, 1], [2, 2]] and total == 0.0
    # at (2, 2) up (1, 2) and left (2, 1) tie at 0, the diagonal (1, 1) is dearer: up wins
    cost = np.array([[0.0, 0.0, 5.0], [0.0, 5.0, 0.0], [5.0, 0.0, 0.0]])
    path, total = dtw_path(cost)
    assert total == 0.0 and path.tolist() == [[0, 0], [0, 1], [1, 2], [2, 2]]
    # at (1, 2) the diagonal (0, 1) and up (0, 2) tie at 0: the diagonal wins
    cost = np.array([[0.0, 0.0, 0.0], [9.0, 9.0, 0.0]])
    assert dtw_path(cost)[0].tolist() == [[0, 0], [0, 1], [1, 2]]


def test_it_is_the_public_name_and_matches_the_kernels():
    assert geokd.distances.dtw_path is reference.dtw_path
    assert "dtw_path" in geokd.distances.__all__
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 20, 3)), rng.normal(size=(5, 20, 3))
    cost = geokd.distances.frame_cost_matrix(a, b)
    want = geokd.distances.pair_distance(a, b)
    assert dtw_path(cost)[1] == pytest.approx(want, rel=1e-9)
    for steps in itertools.islice(_all_paths(7, 5, None), 50):
        assert sum(cost[i, j] for i, j in steps) >= dtw_path(cost)[1] - 1e-12
