"""K-nearest-neighbour baseline on a precomputed distance matrix.

Conventions (used by :mod:`geokd.models.teacher` too):

* **Neighbour order.** The neighbours of a query are the training samples sorted by distance,
  ties broken by the lowest training index first (a stable sort). With ``exclude_self`` (square
  train x train matrices only) the diagonal entry is never a neighbour.
* **Vote ties.** :func:`knn_predict` takes the majority class among the ``k`` nearest
  neighbours. When several classes share the largest vote count, the winner is the tied class
  whose nearest member comes first in the neighbour order, i.e. 1-NN among the tied classes
  (smallest distance, then lowest training index).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .metrics import as_labels, check_matrix, metrics

_CHUNK_ROWS = 512


def neighbours(
    D: np.ndarray, k: int, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest training samples of every query, in neighbour order.

    Parameters
    ----------
    D : ndarray, shape (n_query, n_train)
        Distances from queries to training samples.
    k : int
        Number of neighbours, ``1 <= k <= n_train`` (``n_train - 1`` with ``exclude_self``).
    exclude_self : bool
        Square matrices only: never return sample ``i`` as a neighbour of itself.

    Returns
    -------
    index : ndarray of int64, shape (n_query, k)
        Training indices sorted by distance, ties by lowest index (stable sort).
    dist : ndarray of float64, shape (n_query, k)
        The matching distances (non-decreasing along each row).
    """
    D = np.asarray(D, dtype=np.float64)
    n_query, n_train = D.shape
    available = n_train - 1 if exclude_self else n_train
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}], got {k}")
    index = np.empty((n_query, k), dtype=np.int64)  # (n_query, k)
    for r0 in range(0, n_query, _CHUNK_ROWS):  # row chunks bound the argsort's memory
        block = D[r0 : r0 + _CHUNK_ROWS]  # (b, n_train)
        if exclude_self:
            block = block.copy()
            rows = np.arange(block.shape[0])
            block[rows, rows + r0] = np.inf
        index[r0 : r0 + _CHUNK_ROWS] = np.argsort(block, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(D, index, axis=1)  # (n_query, k)
    return index, dist


def _vote(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Majority class per row with the 1-NN-among-tied-classes rule.

    ``labels`` (n, k) are neighbour classes in neighbour order; ``counts`` (n, C) their votes.
    """
    rows = np.arange(labels.shape[0])
    tied = counts == counts.max(axis=1, keepdims=True)  # (n, C)
    member_tied = tied[rows[:, None], labels]  # (n, k): neighbour j belongs to a tied class
    first = np.argmax(member_tied, axis=1)  # (n,) earliest such neighbour (always exists)
    return labels[rows, first]


def knn_predict(
    D: np.ndarray,
    y_train: np.ndarray,
    k: int,
    n_classes: int,
    *,
    exclude_self: bool = False,
) -> np.ndarray:
    """Majority vote of the ``k`` nearest training samples.

    Parameters
    ----------
    D : ndarray, shape (n_query, n_train)
        Query-to-train distances.
    y_train : ndarray of int, shape (n_train,)
        Training labels in ``[0, n_classes)``.
    k : int
        Number of neighbours.
    n_classes : int
        Number of classes ``C``.
    exclude_self : bool
        Square train x train matrix: leave-one-out prediction (sample ``i`` is not its own
        neighbour).

    Returns
    -------
    ndarray of int64, shape (n_query,)
        Predicted classes. Neighbours are ordered by distance then lowest index; vote ties go
        to the tied class whose nearest member comes first in that order (module docstring).
    """
    y_train = as_labels(y_train, n_classes, "y_train")
    D = check_matrix(D, y_train.size, exclude_self)
    index, _ = neighbours(D, k, exclude_self=exclude_self)
    labels = y_train[index]  # (n_query, k)
    counts = np.zeros((D.shape[0], n_classes), dtype=np.int64)  # (n_query, C)
    np.add.at(counts, (np.arange(D.shape[0])[:, None], labels), 1)
    return _vote(labels, counts)


def knn_evaluate(
    D: np.ndarray,
    y_train: np.ndarray,
    y_test: np.ndarray,
    ks: Iterable[int] = range(1, 31),
    n_classes: int | None = None,
) -> dict:
    """KNN metrics for several ``k`` on one query x train matrix.

    Parameters
    ----------
    D : ndarray, shape (n_test, n_train)
        Test-to-train distances.
    y_train : ndarray of int, shape (n_train,)
    y_test : ndarray of int, shape (n_test,)
    ks : iterable of int
        Neighbour counts to evaluate; values above ``n_train`` are skipped (listed under
        ``skipped_ks``).
    n_classes : int, optional
        Number of classes; default ``max(y_train, y_test) + 1``.

    Returns
    -------
    dict
        ``ks`` (evaluated), ``skipped_ks``, ``per_k`` (``{str(k): metrics(...) | {"k": k}}``,
        see :func:`metrics`), ``best_k`` (highest accuracy, ties to the smallest ``k``) and
        ``best_accuracy``. Choosing ``k`` on the test matrix is optimistic; pick it on a
        validation matrix for an unbiased test figure.
    """
    if n_classes is None:
        n_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    y_train = as_labels(y_train, n_classes, "y_train")
    y_test = as_labels(y_test, n_classes, "y_test")
    D = check_matrix(D, y_train.size, exclude_self=False)
    if D.shape[0] != y_test.size:
        raise ValueError(f"D has {D.shape[0]} rows but y_test has {y_test.size} labels")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    used = [k for k in ks if k <= y_train.size]
    skipped = [k for k in ks if k > y_train.size]
    if not used:
        raise ValueError(f"every k exceeds the {y_train.size} training samples")
    index, _ = neighbours(D, used[-1])
    labels = y_train[index]  # (n_test, k_max)
    rows = np.arange(D.shape[0])
    counts = np.zeros((D.shape[0], n_classes), dtype=np.int64)  # (n_test, C) running votes
    per_k: dict[str, dict] = {}
    for k in range(1, used[-1] + 1):
        counts[rows, labels[:, k - 1]] += 1  # one neighbour per row, no repeated index
        if k in used:
            pred = _vote(labels[:, :k], counts)
            per_k[str(k)] = {"k": k, **metrics(y_test, pred, n_classes)}
    best_k = max(used, key=lambda k: (per_k[str(k)]["accuracy"], -k))
    return {
        "ks": used,
        "skipped_ks": skipped,
        "n_classes": n_classes,
        "per_k": per_k,
        "best_k": best_k,
        "best_accuracy": per_k[str(best_k)]["accuracy"],
    }


def run_knn(
    matrix_path: str | os.PathLike,
    split_table: str | os.PathLike,
    out_json: str | os.PathLike,
    ks: Iterable[int] = range(1, 31),
    *,
    normalise: str = "none",
    store: str | os.PathLike | None = None,
) -> dict:
    """Evaluate KNN on a test x train matrix of a split table; write the result as JSON.

    ``n_classes`` is the split table's ``max label + 1``; ``normalise`` (with the sequence
    ``store``'s frame counts): :func:`geokd.distances.normalise_distances`. The output adds
    ``matrix`` (file name), ``metric`` (from the matrix sidecar) and ``distances`` (the
    normalisation) to :func:`knn_evaluate`'s dict.
    """
    from ..distances.normalise import load_used
    from ..jsonfile import write_json

    D, sidecar, test, train = load_used(matrix_path, split_table, "test", "train", normalise, store)
    n_classes = int(max(test["label"].max(), train["label"].max())) + 1
    result = knn_evaluate(D, train["label"].to_numpy(), test["label"].to_numpy(), ks, n_classes)
    result = {
        "matrix": Path(matrix_path).name,
        "metric": sidecar["metric"],
        "distances": normalise,
    } | result
    write_json(out_json, result)
    return result


def knn_latency(
    store: str | os.PathLike,
    split_table: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    metric: str = "procrustes",
    n_queries: int = 5,
    n_jobs: int | None = 1,
    frames: int | None = None,
    **metric_params,
) -> dict:
    """Time exact Procrustes-DTW 1-NN queries of test sequences against the whole training set.

    The training sequences are prepared once (as a deployed KNN would hold them); each of the
    first ``n_queries`` test sequences is then queried alone, with pruning (early abandoning
    and lower bounds, :func:`geokd.distances.knn_query`) and without, after one untimed
    warm-up query. Reports the median milliseconds per query of both. ``frames``: the
    distances' frame budget (every sequence resampled to that many frames first, as the
    matrices were computed; its time is not counted: a deployed KNN stores its references
    resampled, and resampling one query takes microseconds).
    """
    import time

    from ..distances import knn_query, prepare
    from ..distances.shards import select_sequences, split_ids
    from ..jsonfile import write_json

    train = split_ids(split_table, "train")
    test = split_ids(split_table, "test")[:n_queries]
    sequences = select_sequences(store, train + test, frames)
    refs = prepare(sequences[: len(train)], metric, **metric_params)
    queries = sequences[len(train) :]
    result: dict = {"metric": metric, "n_queries": len(queries), "n_references": len(refs)}
    if frames is not None:
        result["frames"] = frames
    for prune, key in ((True, "ms_per_query"), (False, "ms_per_query_full")):
        knn_query(queries[0], refs, 1, metric=metric, prune=prune, n_jobs=n_jobs, **metric_params)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            knn_query(q, refs, 1, metric=metric, prune=prune, n_jobs=n_jobs, **metric_params)
            times.append(time.perf_counter() - t0)
        result[key] = float(np.median(times)) * 1000.0
    result["threads"] = n_jobs
    write_json(out_json, result)
    return result
