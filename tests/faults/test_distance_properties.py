"""Property-based faults for the distance API (hypothesis): any non-finite value, empty
sequence or landmark-count mismatch, wherever it is, is refused naming the sequence (and
frame); any valid input, however odd (one frame, every landmark at one point, extreme
scales), gives a finite, symmetric, non-negative matrix whose blocks are its entries, bit for
bit, for any block size.

tests/test_distances.py holds the metric's own properties (invariances, symmetry, reference
kernels); these are the fault-injection side.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geokd.distances._cdist import cdist
from geokd.distances.shards import plan_blocks
from tests.helpers.faults import LEDGER

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
K = 6


@st.composite
def sequence_lists(draw, min_size=1, max_size=6, odd=False):
    """Lists of (T, K, 3) float arrays; ``odd``: with one-frame sequences, frames that
    collapse to one point, and scales from 1e-6 to 1e6."""
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seqs = []
    for _ in range(n):
        t = draw(st.integers(1, 2 if odd and draw(st.booleans()) else 9))
        a = rng.normal(size=(t, K, 3))
        if odd:
            if draw(st.booleans()):
                a[draw(st.integers(0, t - 1))] = rng.normal(size=3)  # one point
            a *= 10.0 ** draw(st.integers(-6, 6))
        seqs.append(a)
    return seqs


@SETTINGS
@given(
    seqs=sequence_lists(min_size=2),
    where=st.tuples(
        st.integers(0, 100), st.integers(0, 100), st.integers(0, K - 1), st.integers(0, 2)
    ),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    role=st.sampled_from(["queries", "references"]),
)
def test_a_non_finite_value_anywhere_is_refused_naming_it(seqs, where, bad, role):
    LEDGER.bad_input()
    i, t = where[0] % len(seqs), where[1] % len(seqs[where[0] % len(seqs)])
    seqs[i][t, where[2], where[3]] = bad
    with pytest.raises(ValueError, match=rf"{role}\[{i}\]: contains NaN or inf \(frame {t}\)"):
        if role == "queries":
            cdist(seqs)
        else:
            cdist([np.zeros((2, K, 3))], seqs)


@SETTINGS
@given(seqs=sequence_lists(min_size=2), at=st.integers(0, 100), other_k=st.integers(1, 9))
def test_a_landmark_count_mismatch_is_refused_naming_it(seqs, at, other_k):
    LEDGER.bad_input()
    i = 1 + at % (len(seqs) - 1)
    if other_k == K:
        other_k += 1
    seqs[i] = np.zeros((3, other_k, 3))
    with pytest.raises(ValueError, match=rf"queries\[{i}\]: K = {other_k} landmarks, expected"):
        cdist(seqs)


@SETTINGS
@given(seqs=sequence_lists(), at=st.integers(0, 100))
def test_an_empty_sequence_is_refused_naming_it(seqs, at):
    LEDGER.bad_input()
    i = at % len(seqs)
    seqs[i] = np.zeros((0, K, 3))
    with pytest.raises(ValueError, match=rf"queries\[{i}\]: empty sequence"):
        cdist(seqs)


@SETTINGS
@given(seqs=sequence_lists(min_size=1, max_size=9, odd=True), block=st.integers(1, 12))
def test_odd_valid_input_gives_a_sound_matrix_and_blocks_are_its_entries(seqs, block):
    LEDGER.bad_input()
    D = cdist(seqs)
    n = len(seqs)
    assert D.shape == (n, n) and np.isfinite(D).all() and (D >= 0).all()
    assert np.array_equal(D, D.T) and not np.diag(D).any()
    # tile it as the workflow does (upper-triangle blocks, mirrored): the same bits
    tiled = np.full((n, n), np.nan)
    for bi, bj in plan_blocks(n, n, block, symmetric=True):
        rows, cols = slice(bi * block, (bi + 1) * block), slice(bj * block, (bj + 1) * block)
        values = cdist(seqs[rows]) if bi == bj else cdist(seqs[rows], seqs[cols])
        tiled[rows, cols] = values
        tiled[cols, rows] = values.T
    assert tiled.tobytes() == D.tobytes()
