"""The example DTW alignment path of the report's distances section: the first test sequence,
its nearest training sequence under the teacher's metric, their frame costs and the optimal
warping path over them (:func:`geokd.distances.dtw_path`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import paths
from ..data.resample import resample
from ..distances import dtw_path, load_matrix, reference
from ..errors import InputError
from . import plots_results as rplots
from .html import _Emitter


def _example_pair(rdir: Path, sequences: Mapping[str, np.ndarray]) -> tuple | None:
    """The first test sequence and its nearest training sequence under the teacher's metric
    (``distances/<metric>/test-train.npy``; ``procrustes`` first, else the first metric):
    ``(metric, sidecar, query id, reference id, their matrix entry)``, or ``None``."""
    test_train = paths.in_protocol(paths.MATRIX, metric="*", query="test", reference="train")
    found = sorted(rdir.glob(test_train))
    found.sort(key=lambda p: p.parent.name != "procrustes")
    for path in found:
        D, side = load_matrix(path)
        rows = [str(i) for i in side.get("row_ids") or []]
        cols = [str(i) for i in side.get("col_ids") or []]
        if (len(rows), len(cols)) != D.shape or not rows or not cols:
            raise InputError(path, "row or column ids do not match the matrix")
        if rows[0] not in sequences:
            raise InputError(path, f"sequence {rows[0]!r} is not in the store")
        j = int(np.argmin(D[0]))
        if cols[j] not in sequences:
            raise InputError(path, f"sequence {cols[j]!r} is not in the store")
        metric = str(side.get("metric") or path.parent.name)
        return metric, side, rows[0], cols[j], float(D[0, j])
    return None


def dtw_path_html(rdir: Path, sequences: Mapping[str, np.ndarray], emit: _Emitter) -> str:
    pair = _example_pair(rdir, sequences) if sequences else None
    if pair is None:
        return ""
    metric, side, query, ref, stored = pair
    params = side.get("metric_params") or {}
    window, frames = side.get("window"), side.get("frames")
    a, b = sequences[query], sequences[ref]
    if frames is not None:  # the matrix compared them resampled to its frame budget
        a, b = resample(a, int(frames), "linear"), resample(b, int(frames), "linear")
    cost = reference.cost_matrix(a, b, metric, **params)
    path, total = dtw_path(cost, window)
    band = f", Sakoe-Chiba band {window}" if window is not None else ""
    if frames is not None:
        band += f"; both resampled to {frames} frames first, the distances' frame budget"
    return emit(
        f"dtw_path_{metric}",
        rplots.alignment_path(cost, path, total, query, ref, metric),
        f"DTW alignment path of {query} and {ref}",
        f"The first test sequence, {query}, and its nearest training sequence, {ref}: the "
        f"{metric} cost of every pair of their frames (plain reference implementation) and "
        f"the optimal DTW warping path over it (steps (1,0), (0,1), (1,1){band}). Its total "
        f"cost, {total:.6g}, is their DTW distance; the test x train matrix holds "
        f"{stored:.6g}.",
    )
