"""Teachers: soft labels from distances, self-exclusion, diagnostics, Parquet files."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geokd.distances.shards import write_npy_with_sidecar
from geokd.errors import InputError
from geokd.models.knn import knn_predict
from geokd.models.teacher import (
    diagnostics,
    make_soft_labels,
    nngk_sigma,
    nngk_teacher,
    read_soft_labels,
    soft_labels_metadata,
    softmax_teacher,
    write_soft_labels,
)


def random_problem(seed, n=24, n_classes=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)  # (n, n), zero diagonal, no ties
    return D, rng.integers(0, n_classes, n)


def original_teacher(D, y, n_classes, T=3.0):
    """The original code's formula, written out literally: whole-matrix min-max, self kept."""
    lo, hi = D.min(), D.max()
    out = []
    for i in range(D.shape[0]):
        e = [math.exp(-((D[i, j] - lo) / (hi - lo)) / T) for j in range(D.shape[1])]
        total = sum(e)
        probs = [v / total for v in e]
        per_class = [
            sum(p for p, c in zip(probs, y, strict=True) if c == k) for k in range(n_classes)
        ]
        s = sum(per_class)
        out.append([v / s for v in per_class])
    return np.array(out)


def literal_nngk(D, y, n_classes, k, sigma, floor, exclude_self=True):
    out = []
    for i, row in enumerate(D.tolist()):
        order = sorted(
            (j for j in range(len(row)) if not (exclude_self and j == i)), key=lambda j: (row[j], j)
        )
        sums = [0.0] * n_classes
        for j in order[:k]:
            sums[y[j]] += math.exp(-(row[j] ** 2) / (2 * sigma**2))
        q = [v / sum(sums) for v in sums]
        out.append([(1 - floor) * v + floor / n_classes for v in q])
    return np.array(out)


# the 3-sample case: sample 0 is the only one of class 0
LEAK_D = np.array([[0.0, 0.5, 1.0], [0.5, 0.0, 0.8], [1.0, 0.8, 0.0]])
LEAK_Y = np.array([0, 1, 2])


def test_softmax_rows_are_distributions():
    D, y = random_problem(0)
    P = softmax_teacher(D, y, 5, temperature=0.02)  # class 4 has no samples
    assert P.shape == (24, 5)
    assert np.all(P >= 0) and np.allclose(P.sum(axis=1), 1.0)
    assert np.all(P[:, 4] == 0)


def test_published_mode_matches_the_original_formula():
    D, y = random_problem(1)
    P = softmax_teacher(D, y, 4, temperature=3.0, exclude_self=False, normalise="minmax")
    np.testing.assert_allclose(P, original_teacher(D, y, 4), rtol=1e-12, atol=1e-15)
    P5 = softmax_teacher(D, y, 4, temperature=0.5, exclude_self=False, normalise="minmax")
    np.testing.assert_allclose(P5, original_teacher(D, y, 4, T=0.5), rtol=1e-12, atol=1e-15)


def test_self_exclusion_removes_the_label_leak():
    leaky = softmax_teacher(
        LEAK_D, LEAK_Y, 3, exclude_self=False, normalise="minmax", temperature=0.02
    )
    assert np.argmax(leaky[0]) == 0  # its own zero distance wins
    P = softmax_teacher(LEAK_D, LEAK_Y, 3, temperature=0.02)
    assert P[0, 0] == 0.0  # the only class-0 sample gets no weight from itself
    assert np.argmax(P[0]) == 1
    assert diagnostics(leaky, LEAK_Y)["accuracy"] == 1.0  # every singleton "recognises" itself
    assert diagnostics(P, LEAK_Y)["accuracy"] == 0.0  # true leave-one-out: impossible
    Q = nngk_teacher(LEAK_D, LEAK_Y, 3, k=2, floor=0.0)
    assert Q[0, 0] == 0.0 and np.argmax(Q[0]) == 1


def test_self_excluded_equals_literal_leave_one_out():
    D, y = random_problem(2, n=10, n_classes=3)
    off = D[~np.eye(10, dtype=bool)]
    lo, hi = off.min(), off.max()
    expected = []
    for i in range(10):
        w = {j: math.exp(-((D[i, j] - lo) / (hi - lo)) / 3.0) for j in range(10) if j != i}
        sums = [sum(v for j, v in w.items() if y[j] == c) for c in range(3)]
        expected.append([s / sum(sums) for s in sums])
    np.testing.assert_allclose(softmax_teacher(D, y, 3, temperature=3.0), expected, rtol=1e-12)


def test_temperature_limits():
    D, y = random_problem(3)
    cold = softmax_teacher(D, y, 4, temperature=1e-4)
    np.testing.assert_array_equal(
        np.argmax(cold, axis=1), knn_predict(D, y, 1, 4, exclude_self=True)
    )
    assert np.all(np.isfinite(cold))
    hot = softmax_teacher(D, y, 4, temperature=1e8)
    counts = np.bincount(y, minlength=4)
    priors = (counts[None, :] - np.eye(4)[y]) / (len(y) - 1)  # class shares of the others
    np.testing.assert_allclose(hot, priors, atol=1e-7)


def test_rectangular_queries_and_explicit_bounds():
    D, y = random_problem(4)
    Q = D[:5, 5:] + 0.1  # 5 queries x 19 training samples
    P = softmax_teacher(Q, y[5:], 4, exclude_self=False, temperature=0.02)
    assert P.shape == (5, 4) and np.allclose(P.sum(axis=1), 1.0)
    same = softmax_teacher(
        Q, y[5:], 4, temperature=0.02, exclude_self=False, bounds=(Q.min(), Q.max())
    )
    np.testing.assert_allclose(P, same)
    with pytest.raises(ValueError, match="square"):
        softmax_teacher(Q, y[5:], 4, temperature=0.02)
    with pytest.raises(ValueError, match="temperature"):
        softmax_teacher(D, y, 4, temperature=0.0)
    with pytest.raises(ValueError, match="normalise"):
        softmax_teacher(D, y, 4, normalise="zscore", temperature=0.02)
    flat = softmax_teacher(np.ones((3, 3)) - np.eye(3), np.array([0, 0, 1]), 2, temperature=1.0)
    np.testing.assert_allclose(flat, [[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])


def test_nngk_k1_puts_all_but_the_floor_on_the_nearest_class():
    D, y = random_problem(5)
    floor = 0.01
    P = nngk_teacher(D, y, 4, k=1, floor=floor)
    nn = knn_predict(D, y, 1, 4, exclude_self=True)
    expected = np.full((24, 4), floor / 4)
    expected[np.arange(24), nn] = 1 - floor + floor / 4
    np.testing.assert_allclose(P, expected, rtol=1e-12)
    assert P.min() > 0


def test_nngk_matches_literal_formula_and_sigma_rule():
    D, y = random_problem(6)
    kth = [sorted(D[i, j] for j in range(24) if j != i)[4] for i in range(24)]
    sigma = nngk_sigma(D, 5)
    assert sigma == pytest.approx(float(np.median(kth)))
    P = nngk_teacher(D, y, 4, k=5)
    np.testing.assert_allclose(P, literal_nngk(D, y, 4, 5, sigma, 1e-3), rtol=1e-10)
    assert np.all(P >= 1e-3 / 4 - 1e-15)
    Q = D[:4] + 0.3  # rectangular: sigma must be given
    with pytest.raises(ValueError, match="pass sigma"):
        nngk_teacher(Q, y, 4, exclude_self=False)
    np.testing.assert_allclose(
        nngk_teacher(Q, y, 4, k=5, sigma=sigma, exclude_self=False),
        literal_nngk(Q, y, 4, 5, sigma, 1e-3, exclude_self=False),
        rtol=1e-10,
    )
    with pytest.raises(ValueError, match="floor"):
        nngk_teacher(D, y, 4, floor=1.0)
    assert nngk_sigma(np.zeros((3, 3)), 2) == 1.0  # all distances 0: documented fallback


def test_nngk_survives_underflow_and_huge_distances():
    D, y = random_problem(7)
    for scale in (1e3, 1e160, 1e300):
        P = nngk_teacher(D * scale, y, 4, k=5, sigma=1.0)  # every plain exp() underflows
        assert np.all(np.isfinite(P)) and np.allclose(P.sum(axis=1), 1.0)
        nn = knn_predict(D, y, 1, 4, exclude_self=True)
        np.testing.assert_array_equal(np.argmax(P, axis=1), nn)
    P = softmax_teacher(D * 1e300, y, 4, temperature=1e-300)
    assert np.all(np.isfinite(P)) and np.allclose(P.sum(axis=1), 1.0)


def test_nngk_clips_k_to_the_available_neighbours():
    P = nngk_teacher(LEAK_D, LEAK_Y, 3, k=10, floor=0.0)
    np.testing.assert_allclose(P, nngk_teacher(LEAK_D, LEAK_Y, 3, k=2, floor=0.0))


def test_diagnostics_hand_made():
    P = np.tile([0.8, 0.2], (10, 1))  # perfectly calibrated: 80 % confident, 80 % right
    y = np.array([0] * 8 + [1] * 2)
    d = diagnostics(P, y)
    assert d["accuracy"] == pytest.approx(0.8)
    assert d["ece"] == pytest.approx(0.0, abs=1e-12)
    h = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    assert d["mean_entropy"] == pytest.approx(h)
    assert d["mean_normalised_entropy"] == pytest.approx(h / math.log(2))
    assert d["mean_true_class_probability"] == pytest.approx(0.68)
    onehot = diagnostics(np.eye(3), np.array([0, 1, 1]))
    assert onehot["mean_entropy"] == 0.0
    assert onehot["ece"] == pytest.approx(1 / 3)  # one bin, confidence 1, accuracy 2/3
    # two bins: conf 0.9 right, conf 0.6 wrong -> 0.5 * 0.1 + 0.5 * 0.6
    two = diagnostics(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
    assert two["ece"] == pytest.approx(0.35)
    # bins are right-closed: 0.8 = 12/15 falls in (11/15, 12/15] with 0.79, not with 0.81
    edge = diagnostics(np.array([[0.8, 0.2], [0.79, 0.21], [0.81, 0.19]]), np.array([0, 1, 0]))
    assert edge["ece"] == pytest.approx((abs(0.5 - 0.795) * 2 + abs(1 - 0.81)) / 3)
    json.dumps(d)


def test_parquet_round_trip(tmp_path):
    D, y = random_problem(8)
    P = softmax_teacher(D, y, 4, temperature=0.02)
    ids = [f"s{i:03d}" for i in range(24)]
    path = tmp_path / "soft" / "labels.parquet"
    write_soft_labels(path, ids, P, ["a", "b", "c", "d"], metadata={"method": "softmax"})
    got_ids, got = read_soft_labels(path)
    assert got_ids == ids
    np.testing.assert_array_equal(got, P)
    meta = soft_labels_metadata(path)
    assert meta["class_names"] == ["a", "b", "c", "d"] and meta["method"] == "softmax"
    # the file and its checksum sidecar, no temporary files left
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "labels.parquet",
        "labels.parquet.json",
    ]
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(InputError, match="other.parquet"):
        read_soft_labels(tmp_path / "other.parquet")


def _project(tmp_path, order=None):
    D, y = random_problem(9, n=12, n_classes=3)
    rows = [
        {"sequence_id": f"a{i}", "label": int(y[i]), "subject": 1, "trial": i, "split": "train"}
        for i in range(12)
    ]
    rows.append({"sequence_id": "t0", "label": 3, "subject": 2, "trial": 1, "split": "test"})
    split = tmp_path / "split.tsv"
    pd.DataFrame(rows).to_csv(split, sep="\t", index=False)
    ids = [f"a{i}" for i in (order if order is not None else range(12))]
    matrix = tmp_path / "train_train.npy"
    write_npy_with_sidecar(matrix, D, {"row_ids": ids, "col_ids": ids})
    return D, y, split, matrix


def test_make_soft_labels(tmp_path):
    D, y, split, matrix = _project(tmp_path)
    out = tmp_path / "teacher.parquet"
    diag = make_soft_labels(matrix, split, out, "softmax", temperature=2.0)
    assert json.loads(json.dumps(diag)) == diag
    assert diag["n_classes"] == 4  # max label (3, a test sample) + 1
    assert diag["params"] == {
        "temperature": 2.0,
        "exclude_self": True,
        "normalise": "minmax_offdiag",
        "bounds": None,
    }
    ids, P = read_soft_labels(out)
    assert ids == [f"a{i}" for i in range(12)]
    np.testing.assert_allclose(P, softmax_teacher(D, y, 4, temperature=2.0))
    assert soft_labels_metadata(out)["params"]["temperature"] == 2.0
    diag = make_soft_labels(matrix, split, out, "nngk", n_classes=5, k=3)
    assert diag["params"]["sigma"] == pytest.approx(nngk_sigma(D, 3))
    assert read_soft_labels(out)[1].shape == (12, 5)
    with pytest.raises(ValueError, match="method"):
        make_soft_labels(matrix, split, out, "kde")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_soft_labels(matrix, split, out, "softmax", k=3)


def test_make_soft_labels_rejects_other_ids(tmp_path):
    _, _, split, matrix = _project(tmp_path, order=[1, 0, *range(2, 12)])
    with pytest.raises(InputError, match="train_train.npy"):
        make_soft_labels(matrix, split, tmp_path / "x.parquet", "softmax")
    assert not (tmp_path / "x.parquet").exists()


@st.composite
def distance_problems(draw):
    n = draw(st.integers(2, 9))
    values = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    A = draw(hnp.arrays(np.float64, (n, n), elements=values))
    D = (A + A.T) / 2
    np.fill_diagonal(D, 0.0)
    C = draw(st.integers(1, 4))
    y = np.array(draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n)))
    return D, y, C


@settings(max_examples=60, deadline=None)
@given(
    problem=distance_problems(),
    temperature=st.floats(1e-3, 1e3),
    k=st.integers(1, 10),
    exclude_self=st.booleans(),
)
def test_property_rows_are_distributions(problem, temperature, k, exclude_self):
    D, y, C = problem
    norm = "minmax_offdiag" if exclude_self else "minmax"
    for P in (
        softmax_teacher(
            D, y, C, temperature=temperature, exclude_self=exclude_self, normalise=norm
        ),
        nngk_teacher(D, y, C, k=k, exclude_self=exclude_self),
    ):
        assert P.shape == (len(y), C)
        assert np.all(np.isfinite(P)) and np.all(P >= 0)
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
