"""The teacher: soft class probabilities from a distance matrix.

Two teachers turn distances to the training samples into a probability vector over the ``C``
classes:

* :func:`softmax_teacher`, the paper's method: distances min-max normalised to ``[0, 1]``,
  softmax over training samples of ``-d / T``, probabilities summed per class.
* :func:`nngk_teacher`, the nearest-neighbour Gaussian kernel of Meyer, Harwood & Drummond
  (ICIP 2018): Gaussian weights of the ``k`` nearest training samples, summed per class,
  mixed with a small uniform floor.

On the train x train matrix both exclude by default each sample's zero distance to itself,
which would otherwise hand the sample's own label the largest weight (a label leak), and
:func:`make_soft_labels` by default every sample of the same subject (``teacher.exclude``):
where each subject repeats each action, a sample's nearest neighbours are its own subject's
other trials, and a leave-one-out teacher echoes the label (small temperature) or is flat
(large). The teacher's training accuracy is then a held-out estimate. Neighbour selection follows
:mod:`geokd.models.knn`: sorted by distance, ties to the lowest training index (stable sort).
:func:`make_soft_labels` (CLI/workflow entry point) writes soft labels as Parquet.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import numpy as np

from ..checksum import sha256_file
from ..data.splits import read_split
from ..distances.normalise import load_used
from ..errors import InputError
from .config import NngkSettings, SoftmaxSettings
from .knn import neighbours
from .metrics import as_labels, check_matrix

# the soft-label file and its quality, also offered here (where they were first written)
from .soft_labels import DEGENERATE_CHANCE_FACTOR as DEGENERATE_CHANCE_FACTOR
from .soft_labels import DEGENERATE_ENTROPY as DEGENERATE_ENTROPY
from .soft_labels import N_ECE_BINS as N_ECE_BINS
from .soft_labels import degenerate_reasons as degenerate_reasons
from .soft_labels import diagnostics as diagnostics
from .soft_labels import read_soft_labels as read_soft_labels
from .soft_labels import soft_labels_metadata as soft_labels_metadata
from .soft_labels import write_soft_labels as write_soft_labels

NORMALISATIONS = ("minmax_offdiag", "minmax", "none")
METHODS = ("softmax", "nngk")


def normalisation_bounds(
    D: np.ndarray, normalise: str = SoftmaxSettings.normalise, exclude: np.ndarray | None = None
) -> tuple[float, float]:
    """The ``(lo, hi)`` that :func:`softmax_teacher` maps to ``[0, 1]``.

    ``"minmax_offdiag"``: min and max over the off-diagonal entries of a square matrix (over all
    entries of a rectangular one), or over the entries ``exclude`` leaves (the pairs a query
    may use). ``"minmax"``: over the whole matrix, zero diagonal included (the original code).
    ``"none"``: ``(0, 1)``, distances used as they are.
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    D = np.asarray(D, dtype=np.float64)
    if normalise == "none":
        return 0.0, 1.0
    if normalise == "minmax_offdiag" and exclude is not None and (~exclude).any():
        used = D[~exclude]
        return float(used.min()), float(used.max())
    if normalise == "minmax_offdiag" and D.shape[0] == D.shape[1] and D.shape[0] > 1:
        off = D.copy()  # (n, n)
        np.fill_diagonal(off, np.inf)
        lo = off.min()
        np.fill_diagonal(off, -np.inf)
        return float(lo), float(off.max())
    return float(D.min()), float(D.max())


EXCLUSIONS = ("self", "subject")


def exclusion_mask(
    groups: np.ndarray | None, n: int, exclude_self: bool = True, how: str = "self"
) -> np.ndarray | None:
    """The (n, n) pairs a train x train teacher never uses: none (``exclude_self`` False: the
    original code), each sample with itself (``how="self"``), or every pair of one group
    (``how="subject"``, ``groups`` the samples' subjects: a sample's soft labels then come from
    other subjects only, so repeated trials of one subject cannot echo its label)."""
    if not exclude_self:
        return None
    if how not in EXCLUSIONS:
        raise ValueError(f"exclude must be one of {EXCLUSIONS}, got {how!r}")
    if how == "self":
        return np.eye(n, dtype=bool)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {g.shape}")
    return np.equal.outer(g, g)  # (n, n), the diagonal included


def _masked(D: np.ndarray, exclude_self: bool, exclude: np.ndarray | None):
    """The exclusion of a teacher call: ``exclude`` (or the diagonal with ``exclude_self``)."""
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != D.shape:
            raise ValueError(f"exclude has shape {exclude.shape}, D {D.shape}")
        if exclude.all(axis=1).any():
            raise ValueError("a query has no training sample left to learn from")
        return exclude
    if exclude_self:
        return np.eye(D.shape[0], D.shape[1], dtype=bool)
    return None


def softmax_teacher(
    D: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    temperature: float,
    exclude_self: bool = SoftmaxSettings.exclude_self,
    normalise: str = SoftmaxSettings.normalise,
    bounds: tuple[float, float] | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """The paper's teacher: class sums of a softmax over normalised negative distances.

    For query ``i``: ``d_ij = (D_ij - lo) / (hi - lo)``, ``w_ij = softmax_j(-d_ij / T)``,
    ``P_ic = sum of w_ij over training samples j of class c``, renormalised to sum to 1. The
    softmax subtracts each row's maximum logit, so it never overflows.

    * Default (corrected): ``exclude_self=True`` drops ``j = i`` from the softmax (its zero
      distance would give the sample's own label the largest weight), and
      ``normalise="minmax_offdiag"`` takes ``lo, hi`` over the off-diagonal entries.
    * As published: ``exclude_self=False, normalise="minmax"`` reproduces the original code
      exactly: self included, ``lo, hi`` over the whole matrix including its zero diagonal.

    Parameters
    ----------
    D : ndarray, shape (n_query, n_train)
        Distances; square train x train, or rectangular queries x train (then
        ``exclude_self=False``).
    y : ndarray of int, shape (n_train,)
        Training labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes ``C``.
    temperature : float
        Softmax temperature ``T > 0`` (required: the config's ``teacher.softmax.temperature``
        or :func:`select_temperature`'s choice; the paper used 3).
    exclude_self : bool
        Leave each sample's own (diagonal) distance out; square ``D`` only.
    normalise : {"minmax_offdiag", "minmax", "none"}
        How ``lo, hi`` are taken, see :func:`normalisation_bounds`.
    bounds : (float, float), optional
        Explicit ``(lo, hi)``, overriding ``normalise``: e.g. the train matrix's bounds for
        val/test queries, so that they share the training scale. ``hi == lo`` maps every
        distance to 0 (uniform weights).
    exclude : ndarray of bool, shape (n_query, n_train), optional
        Pairs never used (e.g. :func:`exclusion_mask` of the subjects); replaces
        ``exclude_self``'s diagonal. The min-max bounds are then taken over the pairs used.

    Returns
    -------
    ndarray of float64, shape (n_query, C)
        Non-negative rows summing to 1.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    y = as_labels(y, n_classes, "y")
    D = check_matrix(D, y.size, exclude_self and exclude is None)
    if exclude_self and exclude is None and D.shape[0] < 2:
        raise ValueError("exclude_self needs at least 2 training samples")
    mask = _masked(D, exclude_self, exclude)
    if bounds is None:
        lo, hi = normalisation_bounds(D, normalise, mask if exclude is not None else None)
    else:
        lo, hi = map(float, bounds)
    scale = hi - lo if hi > lo else 1.0
    dn = (D - lo) / scale  # (n_query, n_train) normalised distances
    if mask is not None:
        dn[mask] = np.inf  # exp(-inf) = 0: no weight to self (or to the own subject)
    dn -= dn.min(axis=1, keepdims=True)  # stable softmax: largest logit -> exp(0) = 1
    with np.errstate(over="ignore"):
        weights = np.exp(-dn / temperature)  # (n_query, n_train)
    weights /= weights.sum(axis=1, keepdims=True)
    onehot = np.zeros((y.size, n_classes))  # (n_train, C)
    onehot[np.arange(y.size), y] = 1.0
    P = weights @ onehot  # (n_query, C)
    return P / P.sum(axis=1, keepdims=True)


def nngk_sigma(D: np.ndarray, k: int = NngkSettings.k, exclude: np.ndarray | None = None) -> float:
    """Kernel width rule of :func:`nngk_teacher` from a square train x train matrix.

    ``sigma`` = median over training samples of the distance to their ``k``-th nearest other
    training sample (self excluded, or the pairs in ``exclude``; ``k`` clipped to the fewest
    samples a row may use). If that median is 0 (duplicates), the mean of those distances is
    used; if that is 0 too (all distances 0), ``sigma = 1`` (any width then gives equal
    weights).
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[0] < 2:
        raise ValueError(f"sigma needs a square train x train matrix (n >= 2), got {D.shape}")
    if exclude is None:
        k = min(int(k), D.shape[0] - 1)
        _, dist = neighbours(D, k, exclude_self=True)
    else:
        k = min(int(k), int((~exclude).sum(axis=1).min()))
        _, dist = neighbours(np.where(exclude, np.inf, D), k)
    kth = dist[:, -1]  # (n,)
    for value in (np.median(kth), np.mean(kth)):
        if value > 0:
            return float(value)
    return 1.0


def nngk_teacher(
    D: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    k: int = NngkSettings.k,
    sigma: float | None = NngkSettings.sigma,
    floor: float = NngkSettings.floor,
    exclude_self: bool = NngkSettings.exclude_self,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Nearest-neighbour Gaussian kernel teacher (Meyer, Harwood & Drummond, ICIP 2018).

    Each of the ``k`` nearest training samples ``j`` of query ``i`` (distance, then lowest
    index; self excluded by default) adds ``exp(-d_ij^2 / (2 sigma^2))`` to its class;
    ``Q_i`` is the class sums normalised to 1, and

        ``P_i = (1 - floor) * Q_i + floor / C``

    i.e. ``floor`` is the total mass spread uniformly over the ``C`` classes, so every class has
    probability ``>= floor / C > 0`` (for any ``C``). The kernel is evaluated in log space with
    the nearest neighbour's log weight subtracted, so the nearest neighbour always weighs 1:
    huge distances (where every ``exp`` would underflow to 0) give the nearest neighbours'
    classes, never NaN; otherwise the result equals the plain formula.

    Parameters
    ----------
    D : ndarray, shape (n_query, n_train)
        Distances; square train x train or rectangular queries x train (``exclude_self=False``).
    y : ndarray of int, shape (n_train,)
        Training labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes ``C``.
    k : int
        Neighbours per query; clipped to the available training samples (``n_train - 1``
        with ``exclude_self``).
    sigma : float, optional
        Kernel width. ``None``: :func:`nngk_sigma` of ``D`` (square ``D`` only); pass the
        train matrix's sigma explicitly for rectangular query matrices.
    floor : float
        Uniform mass, ``0 <= floor < 1``.
    exclude_self : bool
        Never count sample ``i`` as its own neighbour; square ``D`` only.
    exclude : ndarray of bool, shape (n_query, n_train), optional
        Pairs never counted (e.g. :func:`exclusion_mask` of the subjects); replaces
        ``exclude_self``'s diagonal; ``k`` is clipped to the fewest samples a row may use.

    Returns
    -------
    ndarray of float64, shape (n_query, C)
        Rows summing to 1, every entry ``>= floor / C``.
    """
    if not 0 <= floor < 1:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    y = as_labels(y, n_classes, "y")
    D = check_matrix(D, y.size, exclude_self and exclude is None)
    mask = _masked(D, exclude_self, exclude) if exclude is not None else None
    if sigma is None:
        if D.shape[0] != D.shape[1]:
            raise ValueError("sigma=None needs the square train x train matrix; pass sigma")
        sigma = nngk_sigma(D, k, mask)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if mask is None:
        k = min(int(k), y.size - int(exclude_self))  # neighbours() rejects 0 available
        index, dist = neighbours(D, k, exclude_self=exclude_self)  # (n_query, k) each
    else:
        k = min(int(k), int((~mask).sum(axis=1).min()))
        index, dist = neighbours(np.where(mask, np.inf, D), k)
    # log w_j - log w_0 = -(d_j - d_0)(d_j + d_0) / (2 sigma^2), d_0 the nearest: no overflow
    # to inf - inf; the nearest neighbour (and any exact tie with it) weighs exactly 1.
    d0 = dist[:, :1]  # (n_query, 1)
    with np.errstate(over="ignore", invalid="ignore"):
        log_rel = -0.5 * ((dist - d0) / sigma) * ((dist + d0) / sigma)  # (n_query, k)
    weights = np.exp(np.where(dist == d0, 0.0, log_rel))  # (n_query, k), <= 1
    sums = np.zeros((D.shape[0], n_classes))  # (n_query, C)
    np.add.at(sums, (np.arange(D.shape[0])[:, None], y[index]), weights)
    Q = sums / sums.sum(axis=1, keepdims=True)
    return (1.0 - floor) * Q + floor / n_classes


def select_temperature(
    D: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    grid,
    *,
    exclude: np.ndarray | None,
    exclude_self: bool = True,
    normalise: str = SoftmaxSettings.normalise,
) -> dict:
    """The softmax teacher's temperature by a student-free criterion: the negative
    log-likelihood of the training labels under the teacher's own held-out soft labels (each
    row's soft labels from the samples ``exclude`` leaves it: other subjects, or other
    samples), the smallest over ``grid`` (ties: the lower temperature). Probabilities are
    clipped at 1e-12 so that one hopeless row does not make a temperature infinitely bad.
    Returns ``temperature``, ``criterion``, ``grid`` and ``nll`` (per grid value)."""
    grid = sorted(float(t) for t in grid)
    if not grid or min(grid) <= 0:
        raise ValueError(f"temperature_grid needs positive values, got {grid}")
    nll = []
    for t in grid:
        P = softmax_teacher(D, y, n_classes, temperature=t, exclude_self=exclude_self,
                            normalise=normalise, exclude=exclude)  # fmt: skip
        nll.append(float(-np.log(np.maximum(P[np.arange(len(y)), y], 1e-12)).mean()))
    best = int(np.argmin(nll))
    return {"temperature": grid[best], "criterion": "held-out negative log-likelihood of the "
            "training labels (teacher only, no student)", "grid": grid, "nll": nll}  # fmt: skip


def make_soft_labels(
    matrix_path: str | os.PathLike,
    split_table: str | os.PathLike,
    out_path: str | os.PathLike,
    method: str = "softmax",
    *,
    n_classes: int | None = None,
    class_names: list[str] | None = None,
    exclude: str = "subject",
    store: str | os.PathLike | None = None,
    distance_normalise: str = "none",
    temperature_grid=None,
    **params,
) -> dict:
    """Soft labels of the training split from its train x train matrix, written as Parquet.

    Parameters
    ----------
    matrix_path : path
        Train x train matrix (``.npy`` with sidecar, :func:`geokd.distances.load_matrix`); its
        ``row_ids`` and ``col_ids`` must equal the split table's train ids in order.
    split_table : path
        Split table (:func:`geokd.data.splits.read_split`); labels and subjects come from it.
    out_path : path
        Parquet output (:func:`write_soft_labels`).
    method : {"softmax", "nngk"}
        :func:`softmax_teacher` or :func:`nngk_teacher`; ``params`` are passed on.
    n_classes : int, optional
        Number of classes; default ``max label + 1`` over the whole split table.
    class_names : list of str, optional
        Stored in the file's metadata.
    exclude : {"subject", "self"}
        With the method's ``exclude_self`` (the default): a sample's soft labels come from
        other subjects' samples (``"subject"``; ``"self"`` when the training split has one
        subject) or from every other sample (``"self"``). ``exclude_self=False`` uses every
        sample, itself included (the original code).
    store : path, optional
        The sequence store: its frame counts for ``distance_normalise``.
    distance_normalise : {"none", "path_length"}
        :func:`geokd.distances.normalise_distances` before the teacher.
    temperature_grid : sequence of float, optional
        Softmax with ``temperature=None``: the grid of :func:`select_temperature` (default:
        ``teacher.softmax.temperature_grid``'s).

    Returns
    -------
    dict
        :func:`diagnostics` of the teacher on train (held out: leave one subject, or one
        sample, out) plus ``method``, ``params`` (with the defaults and the resolved ``sigma``
        and temperature filled in), ``exclude`` (what was excluded, and why), ``distances``
        (the normalisation) and, where the temperature was chosen, ``temperature_selection``.
        A degenerate teacher (:func:`degenerate_reasons`) is written all the same, with one
        ``geokd: WARNING: ...`` line on stderr (the job's log) saying why.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    D, _, train, _ = load_used(
        matrix_path, split_table, "train", "train", distance_normalise, store
    )
    table = read_split(split_table)
    train_ids = train["sequence_id"].astype(str).tolist()
    if n_classes is None:
        n_classes = int(table["label"].max()) + 1
    y = train["label"].to_numpy()
    try:
        y = as_labels(y, n_classes, "label")
    except ValueError as exc:
        raise InputError(split_table, str(exc)) from exc
    teacher = softmax_teacher if method == "softmax" else nngk_teacher
    options = inspect.signature(teacher).parameters
    resolved = {
        n: o.default for n, o in options.items() if o.kind is o.KEYWORD_ONLY and n != "exclude"
    }
    if unknown := sorted(set(params) - set(resolved)):
        raise ValueError(f"unknown parameter(s) {unknown} for method {method!r}")
    resolved.update(params)
    subjects = train["subject"].to_numpy()
    how = exclude
    if how == "subject" and len(np.unique(subjects)) < 2:
        how = "self"  # one training subject: nothing would be left
    mask = exclusion_mask(subjects, len(y), bool(resolved["exclude_self"]), how)
    excluded = {"pairs": how if mask is not None else "none", "asked": exclude}
    selection = None
    if method == "nngk":
        if resolved["sigma"] is None:
            resolved["sigma"] = nngk_sigma(D, resolved["k"], mask)
        available = len(y) if mask is None else int((~mask).sum(axis=1).min())
        resolved["k"] = min(int(resolved["k"]), available)
    elif resolved["temperature"] is None:
        grid = SoftmaxSettings().temperature_grid if temperature_grid is None else temperature_grid
        selection = select_temperature(
            D, y, n_classes, grid, exclude=mask,
            exclude_self=bool(resolved["exclude_self"]), normalise=resolved["normalise"],
        )  # fmt: skip
        resolved["temperature"] = selection["temperature"]
    P = teacher(D, y, n_classes, **resolved, exclude=mask)
    resolved = {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}
    meta = {
        "method": method,
        "params": resolved,
        "exclude": excluded,
        "distances": distance_normalise,
        "matrix": Path(matrix_path).name,
        "matrix_sha256": sha256_file(matrix_path),
        "split_table": Path(split_table).name,
    }
    write_soft_labels(out_path, train_ids, P, class_names, metadata=meta)
    result = {"method": method, "params": resolved, "exclude": excluded,
              "distances": distance_normalise, **diagnostics(P, y)}  # fmt: skip
    if selection is not None:
        result["temperature_selection"] = selection
    if result["degenerate"]:
        hint = (
            "lower teacher.softmax.temperature"
            if method == "softmax"
            else ("lower teacher.nngk.k or sigma")
        )
        print(
            f"geokd: WARNING: {out_path}: degenerate teacher ({method}): "
            f"{'; '.join(result['degenerate_reasons'])}; the student learns next to nothing "
            f"from it ({hint})",
            file=sys.stderr,
        )
    return result
