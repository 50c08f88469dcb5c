"""Resampling a sequence in time: the student's fixed-length input and the distances' frame
budget (``distances.frames``) use the same function."""

from __future__ import annotations

import numpy as np


def resample(seq: np.ndarray, n_frames: int, method: str = "nearest") -> np.ndarray:
    """A (T, K, 3) sequence in time: ``"linear"`` interpolates exactly ``n_frames`` frames at
    ``linspace(0, T - 1, n_frames)``; ``"nearest"`` keeps frames
    ``round(linspace(0, T - 1, n_frames))`` of a longer sequence and a shorter one whole."""
    T = seq.shape[0]
    if method == "nearest":
        if T <= n_frames:
            return seq
        return seq[np.round(np.linspace(0, T - 1, n_frames)).astype(np.int64)]
    if method != "linear":
        raise ValueError(f"resampling must be 'nearest' or 'linear', got {method!r}")
    pos = np.linspace(0, T - 1, n_frames)  # (n,)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, T - 1)
    w = (pos - lo)[:, None, None]
    return (1 - w) * seq[lo] + w * seq[hi]
