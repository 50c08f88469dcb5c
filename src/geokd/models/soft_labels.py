"""Soft labels as data: their file (Parquet with a checksum sidecar) and their quality.

:func:`write_soft_labels` / :func:`read_soft_labels` are the file format the teacher writes
and the distilled student reads; :func:`diagnostics` measures soft labels against the true
labels (accuracy, entropy, calibration) and :func:`degenerate_reasons` says when they carry
next to no class information (:mod:`geokd.models.teacher` makes them).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_many
from ..checksum import read_verified, sidecar_bytes, sidecar_path
from ..errors import InputError
from .metrics import as_labels

N_ECE_BINS = 15
_META_KEY = b"geokd.soft_labels"
#: A teacher is *degenerate* (its soft labels carry next to no class information) when its
#: mean normalised entropy exceeds this (1 = uniform soft labels) ...
DEGENERATE_ENTROPY = 0.95
#: ... or its argmax accuracy (leave-one-out on train) is below this many times chance
#: (1 / C), capped at halfway between chance and 1 so that two classes can pass.
DEGENERATE_CHANCE_FACTOR = 2.0


def diagnostics(P: np.ndarray, y: np.ndarray) -> dict:
    """Quality of soft labels ``P`` against labels ``y``; JSON-serialisable.

    Parameters
    ----------
    P : ndarray, shape (n, C)
        Probabilities (rows sum to 1).
    y : ndarray of int, shape (n,)
        True classes.

    Returns
    -------
    dict
        ``n``, ``n_classes``;
        ``accuracy``: fraction with ``argmax P == y`` (argmax ties to the lowest class); on
        the train matrix with self excluded this is the leave-one-out accuracy;
        ``mean_entropy``: mean of ``-sum_c P log P`` in nats (``0 log 0 = 0``);
        ``mean_normalised_entropy``: the same divided by ``log C`` (0 when ``C = 1``);
        ``ece``: expected calibration error of the top class with 15 equal-width confidence
        bins ``(b/15, (b+1)/15]`` (a confidence of 0 joins the first bin):
        ``sum_b n_b / n * |accuracy_b - mean confidence_b|``;
        ``mean_true_class_probability``: mean of ``P[i, y_i]``;
        ``degenerate`` and ``degenerate_reasons``: :func:`degenerate_reasons`.
    """
    P = np.asarray(P, dtype=np.float64)
    n, C = P.shape
    y = as_labels(y, C, "y")
    if y.size != n:
        raise ValueError(f"P has {n} rows but y has {y.size} labels")
    pred = np.argmax(P, axis=1)  # (n,)
    correct = (pred == y).astype(np.float64)
    plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)  # (n, C)
    entropy = -plogp.sum(axis=1)  # (n,)
    conf = P[np.arange(n), pred]  # (n,)
    edges = np.arange(1, N_ECE_BINS) / N_ECE_BINS  # (14,) inner edges b/15, exact quotients
    bins = np.searchsorted(edges, conf, side="left")  # (n,) bin b holds (b/15, (b+1)/15]
    acc_sum = np.bincount(bins, weights=correct, minlength=N_ECE_BINS)
    conf_sum = np.bincount(bins, weights=conf, minlength=N_ECE_BINS)
    ece = float(np.abs(acc_sum - conf_sum).sum() / n)  # n_b/n * |acc_b - conf_b| summed
    mean_entropy = float(entropy.mean())
    out = {
        "n": int(n),
        "n_classes": int(C),
        "accuracy": float(correct.mean()),
        "mean_entropy": mean_entropy,
        "mean_normalised_entropy": mean_entropy / float(np.log(C)) if C > 1 else 0.0,
        "ece": ece,
        "ece_bins": N_ECE_BINS,
        "mean_true_class_probability": float(P[np.arange(n), y].mean()),
    }
    reasons = degenerate_reasons(out)
    return {**out, "degenerate": bool(reasons), "degenerate_reasons": reasons}


def degenerate_reasons(diag: dict) -> list[str]:
    """Why soft labels with :func:`diagnostics` ``diag`` teach next to nothing (empty: fine).

    Two documented thresholds: mean normalised entropy above :data:`DEGENERATE_ENTROPY`
    (0.95: near-uniform soft labels, e.g. a softmax temperature far above the spread of the
    normalised distances, or an NNGK width and ``k`` covering every class), and argmax
    accuracy below ``min(2 / C, (1 + 1 / C) / 2)`` (:data:`DEGENERATE_CHANCE_FACTOR` times
    chance, capped halfway to 1). One class is never degenerate.
    """
    C = int(diag["n_classes"])
    if C < 2:
        return []
    reasons = []
    entropy = float(diag["mean_normalised_entropy"])
    if entropy > DEGENERATE_ENTROPY:
        reasons.append(
            f"mean normalised entropy {entropy:.3f} > {DEGENERATE_ENTROPY}: "
            "the soft labels are near uniform"
        )
    chance = 1.0 / C
    floor = min(DEGENERATE_CHANCE_FACTOR * chance, (1.0 + chance) / 2)
    if float(diag["accuracy"]) < floor:
        reasons.append(
            f"argmax accuracy {float(diag['accuracy']):.3f} < {floor:.3f} "
            f"({DEGENERATE_CHANCE_FACTOR:g} x chance 1/{C}): the teacher hardly beats guessing"
        )
    return reasons


def write_soft_labels(
    path: str | os.PathLike,
    ids: list[str],
    P: np.ndarray,
    class_names: list[str] | None = None,
    metadata: dict | None = None,
) -> None:
    """Write soft labels as Parquet with a checksum sidecar ``<path>.json``, atomically.

    Columns: ``sequence_id`` (string), then ``p_0 ... p_{C-1}`` (float64), one per class
    index (names are stable identifiers; class names go into the metadata). The schema
    metadata key ``geokd.soft_labels`` holds JSON with ``class_names``, ``n_classes`` and the
    ``metadata`` dict (method and parameters). Raises ``ValueError`` on a shape mismatch.
    """
    P = np.asarray(P, dtype=np.float64)
    ids = [str(i) for i in ids]
    if P.ndim != 2 or P.shape[0] != len(ids):
        raise ValueError(f"P must be (len(ids)={len(ids)}, C), got {P.shape}")
    C = P.shape[1]
    names = [str(c) for c in range(C)] if class_names is None else [str(c) for c in class_names]
    if len(names) != C:
        raise ValueError(f"{len(names)} class names for {C} columns")
    columns = {"sequence_id": pa.array(ids, pa.string())}
    columns.update({f"p_{c}": pa.array(P[:, c], pa.float64()) for c in range(C)})
    meta = {"class_names": names, "n_classes": C, **(metadata or {})}
    table = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    write_many({path: data, sidecar_path(path): sidecar_bytes(data, {"n": len(ids), "C": C})})


def _verified_table(path: str | os.PathLike) -> pa.Table:
    """The soft-label table, its checksum sidecar verified first."""
    data, _ = read_verified(path)
    try:
        return pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"cannot read soft labels ({exc})") from exc


def soft_labels_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata of a soft-label file (method, parameters, class names)."""
    raw = (_verified_table(path).schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise InputError(path, "not a soft-label file (no geokd metadata)")
    return json.loads(raw)


def read_soft_labels(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read :func:`write_soft_labels` output: ``(ids, P)`` with ``P`` of shape (n, C).

    Raises :class:`InputError` naming the file when its checksum sidecar is missing or does
    not match (truncated or altered file), or when it does not hold soft labels: unexpected
    columns, or rows that are not probability distributions.
    """
    table = _verified_table(path)
    names = table.column_names
    C = len(names) - 1
    if not names or names[0] != "sequence_id" or names[1:] != [f"p_{c}" for c in range(C)]:
        raise InputError(path, f"unexpected columns {names[:5]}...; want sequence_id, p_0, ...")
    ids = [str(s) for s in table.column("sequence_id").to_pylist()]
    P = np.column_stack([table.column(f"p_{c}").to_numpy() for c in range(C)]).reshape(len(ids), C)
    P = P.astype(np.float64)
    if not (np.isfinite(P).all() and (P >= 0).all() and np.allclose(P.sum(axis=1), 1.0)):
        raise InputError(
            path, "rows are not probability distributions (non-finite, < 0 or sum != 1)"
        )
    return ids, P
