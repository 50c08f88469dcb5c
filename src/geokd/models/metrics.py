"""Accuracy metrics and label checks shared by the KNN baseline, the teachers and the students.

Macro averages: :func:`metrics` averages over the classes present in the truth *or* in
  the predictions; classes absent from both are left out. A class never predicted has
  precision 0, a class absent from the truth has recall 0, and F1 is 0 when precision and
  recall are both 0 (scikit-learn's default with ``zero_division=0``). Macro F1 is the mean
  of the per-class F1 scores, not the F1 of macro precision and macro recall.
"""

from __future__ import annotations

import numpy as np


def as_labels(y: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    """``y`` as int64 class indices in ``[0, n_classes)``; ValueError naming ``name`` otherwise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    return y


def check_matrix(D: np.ndarray, n_train: int, exclude_self: bool) -> np.ndarray:
    """``D`` as a finite float64 (n_query, n_train) matrix (square with ``exclude_self``)."""
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[1] != n_train:
        raise ValueError(f"distance matrix must be (n_query, {n_train}), got shape {D.shape}")
    if exclude_self and D.shape[0] != D.shape[1]:
        raise ValueError(f"exclude_self needs a square train x train matrix, got {D.shape}")
    if not np.isfinite(D).all():
        raise ValueError("distance matrix has non-finite values")
    return D


def metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Classification metrics, JSON-serialisable.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)
        True and predicted classes in ``[0, n_classes)``.
    n_classes : int
        Number of classes ``C``.

    Returns
    -------
    dict
        ``n``; ``accuracy``; ``macro_precision``, ``macro_recall``, ``macro_f1`` (over the
        classes present in truth or prediction, zero division counted as 0; see the module
        docstring); ``confusion`` (C x C list of lists, rows truth, columns prediction);
        ``support`` (true count per class); ``per_class_accuracy`` (recall per class, ``None``
        for a class absent from the truth).
    """
    y_true = as_labels(y_true, n_classes, "y_true")
    y_pred = as_labels(y_pred, n_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)  # (C truth, C prediction)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(np.float64)  # (C,)
    support = confusion.sum(axis=1)  # (C,) true counts
    predicted = confusion.sum(axis=0)  # (C,) predicted counts
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    present = (support > 0) | (predicted > 0)  # (C,)
    n = int(y_true.size)

    def macro(values: np.ndarray) -> float:
        return float(values[present].mean()) if present.any() else 0.0

    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "confusion": confusion.tolist(),
        "support": support.tolist(),
        "per_class_accuracy": [
            float(r) if s > 0 else None for r, s in zip(recall, support, strict=True)
        ],
    }
