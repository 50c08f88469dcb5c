"""Fake UTD-MHAD files: MATLAB files holding a random (20, 3, T) ``d_skel``, named as the real
data set's (``a<action>_s<subject>_t<trial>_skeleton.mat``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io


def write_mat(path: Path, d_skel: np.ndarray | None = None, *, seed: int = 0, frames: int = 7):
    """A UTD-MHAD-style .mat file with a random (20, 3, T) ``d_skel``."""
    if d_skel is None:
        d_skel = np.random.default_rng(seed).normal(size=(20, 3, frames))
    scipy.io.savemat(path, {"d_skel": d_skel})
    return d_skel


def fake_utd_folder(raw: Path) -> Path:
    """A tiny UTD-MHAD-style folder: 2 actions x 3 subjects x 2 trials of random skeletons,
    and a text file the reader must ignore."""
    raw.mkdir(parents=True)
    for a in (1, 2):
        for s in (1, 2, 3):
            for t in (1, 2):
                write_mat(raw / f"a{a}_s{s}_t{t}_skeleton.mat", seed=100 * a + 10 * s + t)
    (raw / "Skeleton_joint_order.txt").write_text("not a mat file, ignored\n")
    return raw
