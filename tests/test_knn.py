"""KNN baseline and metrics: exact agreement with a slow reference, hand-checked ties."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geokd.models.knn import knn_evaluate, knn_predict, metrics, neighbours


def reference_knn(D, y, k, exclude_self=False):
    """Obviously correct KNN: Python sort on (distance, index), explicit vote counting.

    Ties in votes go to the tied class whose nearest member comes first in neighbour order.
    """
    preds = []
    for i, row in enumerate(D.tolist()):
        order = sorted(
            (j for j in range(len(row)) if not (exclude_self and j == i)),
            key=lambda j: (row[j], j),
        )
        nearest = order[:k]
        votes = {}
        for j in nearest:
            votes[int(y[j])] = votes.get(int(y[j]), 0) + 1
        top = max(votes.values())
        tied = {c for c, v in votes.items() if v == top}
        for j in nearest:
            if int(y[j]) in tied:
                preds.append(int(y[j]))
                break
    return np.array(preds)


def tied_problem(seed, n_test=12, n_train=33, n_classes=4, levels=4):
    rng = np.random.default_rng(seed)
    D = rng.integers(0, levels, size=(n_test, n_train)).astype(float)  # many equal distances
    return D, rng.integers(0, n_classes, n_train), rng.integers(0, n_classes, n_test)


@pytest.mark.parametrize("seed", range(3))
def test_knn_matches_reference_exactly_with_many_ties(seed):
    D, y_train, y_test = tied_problem(seed)
    result = knn_evaluate(D, y_train, y_test, ks=range(1, 31), n_classes=4)
    assert result["ks"] == list(range(1, 31))
    for k in range(1, 31):
        expected = reference_knn(D, y_train, k)
        np.testing.assert_array_equal(knn_predict(D, y_train, k, 4), expected)
        assert result["per_k"][str(k)]["accuracy"] == np.mean(expected == y_test)


def test_leave_one_out_matches_reference():
    rng = np.random.default_rng(7)
    A = rng.integers(0, 3, size=(15, 15)).astype(float)
    D = A + A.T
    np.fill_diagonal(D, 0.0)
    y = rng.integers(0, 3, 15)
    for k in (1, 2, 5, 14):
        np.testing.assert_array_equal(
            knn_predict(D, y, k, 3, exclude_self=True), reference_knn(D, y, k, exclude_self=True)
        )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_train=st.integers(1, 12),
    n_classes=st.integers(1, 4),
    levels=st.integers(1, 3),
)
def test_knn_property_matches_reference(seed, n_train, n_classes, levels):
    D, y_train, _ = tied_problem(seed, 5, n_train, n_classes, levels)
    for k in range(1, n_train + 1):
        np.testing.assert_array_equal(
            knn_predict(D, y_train, k, n_classes), reference_knn(D, y_train, k)
        )


def test_neighbour_ties_go_to_the_lowest_index():
    index, dist = neighbours(np.array([[2.0, 1.0, 1.0, 0.5, 1.0]]), 4)
    assert index.tolist() == [[3, 1, 2, 4]]
    assert dist.tolist() == [[0.5, 1.0, 1.0, 1.0]]
    index, _ = neighbours(np.zeros((3, 3)), 2, exclude_self=True)
    assert index.tolist() == [[1, 2], [0, 2], [0, 1]]


def test_hand_checked_tie_breaking():
    # 1-NN with equal distances: lowest training index wins
    assert knn_predict(np.array([[1.0, 1.0, 2.0]]), np.array([0, 1, 1]), 1, 2).tolist() == [0]
    assert knn_predict(np.array([[1.0, 1.0, 2.0]]), np.array([1, 0, 0]), 1, 2).tolist() == [1]
    # order: idx1 (c0, d1), idx3 (c1, d1), idx2 (c1, d2), idx0 (c0, d3)
    D, y = np.array([[3.0, 1.0, 2.0, 1.0]]), np.array([0, 0, 1, 1])
    assert knn_predict(D, y, 2, 2).tolist() == [0]  # 1-1 tie: idx1 first -> class 0
    assert knn_predict(D, y, 3, 2).tolist() == [1]  # clear majority beats the nearest
    assert knn_predict(D, y, 4, 2).tolist() == [0]  # 2-2 tie: class 0 has the nearest member
    # neighbours in order have classes 2, 0, 1, 0, 1: classes 0 and 1 tie on 2 votes;
    # the overall nearest (class 2) is not tied, so class 0 (position 1) wins
    D, y = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]]), np.array([2, 0, 1, 0, 1])
    assert knn_predict(D, y, 5, 3).tolist() == [0]


def test_metrics_hand_computed():
    y_true, y_pred = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    m = metrics(y_true, y_pred, 4)  # class 3 absent from both: excluded from macro averages
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    # precision (0.5, 2/3, 0), recall (0.5, 1, 0), F1 (0.5, 0.8, 0)
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert m["macro_recall"] == pytest.approx(1.5 / 3)
    assert m["macro_f1"] == pytest.approx(1.3 / 3)
    assert m["support"] == [2, 2, 1, 0]
    assert m["per_class_accuracy"] == [0.5, 1.0, 0.0, None]
    json.dumps(m)
    perfect = metrics(y_true, y_true, 3)
    assert perfect["accuracy"] == perfect["macro_f1"] == 1.0


def test_metrics_class_only_predicted_counts_with_zero_recall():
    m = metrics(np.array([0, 0]), np.array([0, 1]), 2)
    # class 0: P 1, R 0.5, F1 2/3; class 1 (never true): P 0, R 0, F1 0
    assert m["macro_precision"] == pytest.approx(0.5)
    assert m["macro_recall"] == pytest.approx(0.25)
    assert m["macro_f1"] == pytest.approx(1 / 3)


def test_metrics_agree_with_sklearn():
    import sklearn.metrics as skm

    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 6, 80), rng.integers(0, 5, 80)
    m = metrics(y_true, y_pred, 7)
    p, r, f, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    assert (m["macro_precision"], m["macro_recall"], m["macro_f1"]) == pytest.approx((p, r, f))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_knn_predictions_agree_with_sklearn_except_on_documented_vote_ties():
    """sklearn breaks a vote tie by the lowest class label, geokd by the tied class met
    first in the neighbour order (module docstring): equal everywhere else, and on every
    tied query geokd picks exactly that class."""
    import sklearn.neighbors as neighbors

    rng = np.random.default_rng(4)
    D = rng.random((25, 40))  # continuous distances: no distance ties
    y_train = rng.integers(0, 3, 40)
    order = np.argsort(D, axis=1, kind="stable")
    n_tied = 0
    for k in (1, 3, 5, 7):
        ours = knn_predict(D, y_train, k, n_classes=3)
        clf = neighbors.KNeighborsClassifier(n_neighbors=k, metric="precomputed")
        clf.fit(np.zeros((40, 40)), y_train)
        theirs = clf.predict(D)
        for q in range(D.shape[0]):
            near = y_train[order[q, :k]]
            counts = np.bincount(near, minlength=3)
            tied = np.flatnonzero(counts == counts.max())
            if len(tied) == 1:
                assert ours[q] == theirs[q] == tied[0]
            else:
                n_tied += 1
                assert theirs[q] == tied.min()
                assert ours[q] == next(c for c in near if c in tied)
    assert n_tied > 0  # the tie branch above was exercised


def test_evaluate_is_json_serialisable_and_picks_the_smallest_best_k():
    D = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    y_train, y_test = np.array([0, 1, 1]), np.array([0, 1])
    result = knn_evaluate(D, y_train, y_test, ks=[1, 2, 3, 5])
    assert result["ks"] == [1, 2, 3] and result["skipped_ks"] == [5]
    assert result["per_k"]["1"]["accuracy"] == 1.0  # k=2 ties too (1-1 -> nearest)
    assert result["per_k"]["3"]["accuracy"] == 0.5
    assert result["best_k"] == 1 and result["best_accuracy"] == 1.0
    assert result["n_classes"] == 2
    json.loads(json.dumps(result))


def test_bad_inputs():
    D = np.zeros((2, 3))
    with pytest.raises(ValueError, match="k must be in"):
        knn_predict(D, np.array([0, 1, 1]), 4, 2)
    with pytest.raises(ValueError, match="must lie in"):
        knn_predict(D, np.array([0, 1, 2]), 1, 2)
    with pytest.raises(ValueError, match="distance matrix must be"):
        knn_predict(D, np.array([0, 1]), 1, 2)
    with pytest.raises(ValueError, match="square"):
        knn_predict(D, np.array([0, 1, 1]), 1, 2, exclude_self=True)
    with pytest.raises(ValueError, match="non-finite"):
        knn_predict(np.array([[np.nan, 1.0]]), np.array([0, 1]), 1, 2)
