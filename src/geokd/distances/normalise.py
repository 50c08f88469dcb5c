"""How the stored distance matrices are used: as they are, or normalised by path length.

The DTW sums are stored raw (their files and cache keys never change); the teacher, the KNN
baseline, the ``metric`` family and the label-budget study read them through :func:`load_used`,
which applies ``distances.normalise``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..data.store import load_meta
from ..errors import InputError
from .shards import load_aligned

NORMALISATIONS = ("none", "path_length")


def normalise_distances(
    D: np.ndarray, how: str, row_lengths: np.ndarray, col_lengths: np.ndarray
) -> np.ndarray:
    """A distance matrix as the teacher, KNN and students use it: ``"none"`` as stored, or
    ``"path_length"``: each DTW sum divided by ``n + m``, the two sequences' frame counts (the
    bound of a warping path's length), so that long sequences are not far from everything
    for being long. The stored matrix (and its cache key) never change."""
    if how not in NORMALISATIONS:
        raise ValueError(f"distances.normalise must be one of {NORMALISATIONS}, got {how!r}")
    if how == "none":
        return D
    n, m = np.asarray(row_lengths, np.float64), np.asarray(col_lengths, np.float64)
    if n.shape != (D.shape[0],) or m.shape != (D.shape[1],):
        raise ValueError(f"lengths {n.shape}, {m.shape} do not match the matrix {D.shape}")
    return np.asarray(D, dtype=np.float64) / np.add.outer(n, m)  # (rows, cols)


def load_used(
    matrix_path: str | os.PathLike,
    split_table: str | os.PathLike,
    query: str,
    reference: str,
    normalise: str,
    store: str | os.PathLike | None,
) -> tuple[np.ndarray, dict, pd.DataFrame, pd.DataFrame]:
    """:func:`load_aligned` (in memory) with :func:`normalise_distances` applied; the frame
    counts are the ones the matrix compared: its frame budget where its sidecar records one
    (``distances.frames``: every sequence that long), otherwise each sequence's from the
    ``store`` (needed unless ``normalise`` is ``"none"``)."""
    D, sidecar, rows, cols = load_aligned(matrix_path, split_table, query, reference, mmap=False)
    if normalise == "none":
        return D, sidecar, rows, cols
    if sidecar.get("frames") is not None:  # a frame budget: every sequence compared that long
        lengths = [np.full(len(p), float(sidecar["frames"])) for p in (rows, cols)]
    else:
        if store is None:
            raise InputError(matrix_path, f"distances.normalise {normalise} needs the store")
        frames = load_meta(store).set_index("sequence_id")["n_frames"]
        lengths = [frames.reindex(p["sequence_id"].astype(str)).to_numpy() for p in (rows, cols)]
        if any(np.isnan(x.astype(float)).any() for x in lengths):
            raise InputError(store, f"does not hold every sequence of {matrix_path}")
    D = normalise_distances(D, normalise, *lengths)
    return D, sidecar, rows, cols
