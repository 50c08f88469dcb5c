"""Toy data for the student and training tests: easily separable skeleton sequences of a
4-landmark skeleton and the tiny student architecture they train."""

from __future__ import annotations

import numpy as np

K = 4  # landmarks of the toy skeleton
TINY = dict(d_model=16, n_heads=2, n_layers=1, ff_dim=32, max_frames=24)


def make_sequences(n, seed=0, min_frames=8, max_frames=20, n_classes=3):
    """Easily separable toy data: class ``c`` oscillates every landmark along axis ``c``."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(n):
        c = i % n_classes
        T = int(rng.integers(min_frames, max_frames + 1))
        t = np.linspace(0, 2 * np.pi, T)
        seq = np.repeat(rng.normal(size=(1, K, 3)), T, axis=0)  # (T, K, 3) random posture
        seq[:, :, c % 3] += np.sin(t * (1 + c // 3))[:, None]
        sequences.append(seq + 0.05 * rng.normal(size=seq.shape) + rng.normal(size=3))
        labels.append(c)
    return sequences, np.array(labels)
