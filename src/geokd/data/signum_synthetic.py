"""Synthetic data in the SIGNUM input format: a manifest and one MediaPipe ``.npy`` per sample.

The format is the one :mod:`geokd.data.signum` reads: ``manifest.csv`` (``path, sign, signer,
repetition, gloss``) and ``s<signer>/sign<sign>_r<repetition>.npy`` files of float32 arrays of
shape (T, 225) (``layout="flat"``) or (T, 75, 3) (``layout="stacked"``): 33 pose, 21 left-hand
and 21 right-hand landmarks in MediaPipe Holistic coordinates.

The hands are :mod:`geokd.data.synthetic`'s ``two_hands`` sequences (sign = class + 1, signer =
subject, repetition = trial, gloss = class name), whose left hand is on the camera's left: the
view of a mirrored (selfie) image, which the pose block follows. The pose block is built
around them: a per-signer head, torso and legs with a slight per-sample sway, elbows placed by
two-link inverse kinematics between each shoulder and wrist, and the pose wrist, pinky, index
and thumb points taken from the hands. Camera-space metres (x right, y up, z away) are then
mapped orthographically to MediaPipe's image coordinates (x, y in [0, 1] of a 776 x 578 frame
1.25 m wide, y down; z relative to the wrist for hands, to the hip midpoint for the pose).
The same settings give the same bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .signum import N_SIGNERS, N_SIGNS
from .synthetic import SyntheticConfig, generate

__all__ = ["LAYOUTS", "SignumSyntheticConfig", "holistic_frames", "write_synthetic_signum"]

LAYOUTS = ("flat", "stacked")
_W = 1.25  # image width at the signer, metres
_H = _W * 578 / 776  # image height (SIGNUM video is 776 x 578 pixels)
_Y0 = 0.12  # height of the image centre above the hands' mean position, metres
_RENAME = {"n_classes": "n_signs", "n_subjects": "n_signers", "n_trials": "n_repetitions"}
# Head, relative to the neck (signer's left side: x < 0, as the synthetic left hand), metres.
_HEAD = {
    0: (0, 0.20, -0.09),
    1: (-0.015, 0.23, -0.08),
    2: (-0.032, 0.232, -0.075),
    3: (-0.048, 0.23, -0.07),
    7: (-0.075, 0.21, 0.0),
    9: (-0.025, 0.16, -0.085),
}
_MIRROR = {1: 4, 2: 5, 3: 6, 7: 8, 9: 10}  # left landmark -> right landmark
# Hip, knee, ankle, heel, foot index: (height, depth) relative to the neck, x = the hip width.
_LEGS = {
    23: (-0.5, 0.02),
    25: (-0.95, 0.02),
    27: (-1.37, 0.04),
    29: (-1.42, 0.09),
    31: (-1.44, -0.08),
}


@dataclass
class SignumSyntheticConfig:
    """Settings of a synthetic SIGNUM-format set (defaults: SIGNUM scale).

    Attributes
    ----------
    n_signs : int
        Signs 1..n_signs, 2 <= n_signs <= 450 (default 450).
    n_signers : int
        Signers 1..n_signers, 1 <= n_signers <= 25 (default 25).
    n_repetitions : int
        Repetitions per sign and signer (default 1).
    min_frames, max_frames : int
        Bounds of the sample length T (default 80, 80).
    noise, difficulty : float
        As in :class:`geokd.data.synthetic.SyntheticConfig` (default 0.002 m, 0.5).
    layout : str
        ``"flat"``: arrays (T, 225); ``"stacked"``: (T, 75, 3) (default flat).
    seed : int
        Master seed (default 0).
    """

    n_signs: int = N_SIGNS
    n_signers: int = N_SIGNERS
    n_repetitions: int = 1
    min_frames: int = 80
    max_frames: int = 80
    noise: float = 0.002
    difficulty: float = 0.5
    layout: str = "flat"
    seed: int = 0

    def __post_init__(self) -> None:
        self.synthetic_config()

    def synthetic_config(self) -> SyntheticConfig:
        """The :class:`SyntheticConfig` of the hands; ValueError naming a bad setting."""
        for name, top in (("n_signs", N_SIGNS), ("n_signers", N_SIGNERS)):
            value = getattr(self, name)
            if isinstance(value, int | np.integer) and not isinstance(value, bool) and value > top:
                raise ValueError(f"synthetic SIGNUM config: {name} must be <= {top}, got {value}")
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"synthetic SIGNUM config: layout must be one of {LAYOUTS}, got {self.layout!r}"
            )
        try:
            return SyntheticConfig(
                n_classes=self.n_signs,
                n_subjects=self.n_signers,
                n_trials=self.n_repetitions,
                min_frames=self.min_frames,
                max_frames=self.max_frames,
                noise=self.noise,
                difficulty=self.difficulty,
                topology="two_hands",
                seed=self.seed,
                dataset="signum",
            )
        except ValueError as exc:
            message = str(exc).replace("synthetic config", "synthetic SIGNUM config")
            for old, new in _RENAME.items():
                message = message.replace(old, new)
            raise ValueError(message) from None


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(101, *key)))


def _elbow(shoulder, wrist, l1: float, l2: float, pole) -> np.ndarray:
    """Elbow positions (T, 3) of a two-link arm reaching from shoulder (T, 3) to wrist (T, 3)."""
    d = wrist - shoulder
    n = np.linalg.norm(d, axis=1, keepdims=True)
    u = d / np.maximum(n, 1e-9)
    n = np.clip(n, 1e-6, l1 + l2 - 1e-6)
    a = (l1 * l1 - l2 * l2 + n * n) / (2 * n)  # along the shoulder -> wrist line
    h = np.sqrt(np.maximum(l1 * l1 - a * a, 0.0))  # off the line, towards the pole
    v = np.asarray(pole, dtype=float) - (u @ np.asarray(pole, dtype=float))[:, None] * u
    return shoulder + a * u + h * v / np.linalg.norm(v, axis=1, keepdims=True)


def holistic_frames(hands: np.ndarray, seed: int, key: tuple[int, int, int]) -> np.ndarray:
    """MediaPipe Holistic landmarks (T, 75, 3) around synthetic hands (T, 42, 3), metres.

    ``hands`` holds the left then the right hand (wrist first, :mod:`geokd.data.synthetic`
    ``two_hands``); ``key`` = (sign, signer, repetition) seeds the signer's body and the
    sample's sway and noise.
    """
    sign, signer, rep = key
    g = _rng(seed, 0, signer)
    neck = np.array([g.uniform(-0.02, 0.02), g.uniform(0.2, 0.25), g.uniform(0.72, 0.8)])
    sh, hip, l1, l2 = g.uniform((0.16, 0.11, 0.26, 0.23), (0.2, 0.14, 0.31, 0.28))
    g = _rng(seed, 1, sign, signer, rep)
    t = np.linspace(0.0, 1.0, len(hands))[:, None]
    sway = g.uniform(0, 0.015, 3) * np.sin(2 * np.pi * g.uniform(0.5, 1.5) * t + g.uniform(0, 7))
    pose = np.empty((len(hands), 33, 3))
    neck = neck + sway  # (T, 3)
    for i, off in _HEAD.items():
        pose[:, i] = neck + off
        if i in _MIRROR:
            pose[:, _MIRROR[i]] = neck + np.multiply(off, (-1, 1, 1))
    for side, s in ((0, -1.0), (1, 1.0)):  # left (x < 0), right
        h, x = hands[:, 21 * side : 21 * side + 21], np.array([s, 1.0, 1.0])
        shoulder = neck + x * (sh, -0.02, 0.0)
        pose[:, 11 + side] = shoulder
        pose[:, 13 + side] = _elbow(shoulder, h[:, 0], l1, l2, x * (0.4, -1.0, 0.3))
        pose[:, [15 + side, 17 + side, 19 + side, 21 + side]] = h[:, [0, 17, 5, 3]]
        for i, (dy, dz) in _LEGS.items():
            pose[:, i + side] = neck + x * (hip, dy, dz)
    own = np.ones(33, bool)
    own[15:23] = False  # points copied from the (already noisy) hands
    pose[:, own] += 0.003 * g.standard_normal((len(hands), int(own.sum()), 3))
    out = np.concatenate([pose, hands], axis=1)  # (T, 75, 3)
    img = np.empty_like(out)
    img[..., 0] = 0.5 + out[..., 0] / _W
    img[..., 1] = 0.5 - (out[..., 1] - _Y0) / _H
    hip_z = pose[:, 23:25, 2].mean(axis=1)[:, None]
    img[:, :33, 2] = (out[:, :33, 2] - hip_z) / _W
    for o in (33, 54):
        img[:, o : o + 21, 2] = (out[:, o : o + 21, 2] - out[:, o : o + 1, 2]) / _W
    return img


def write_synthetic_signum(
    out_dir: str | os.PathLike, cfg: SignumSyntheticConfig | None = None
) -> Path:
    """Write a synthetic SIGNUM-format folder (``manifest.csv`` + ``.npy`` samples).

    The folder is built beside ``out_dir`` and renamed into place, so it appears complete or
    not at all; ``out_dir`` must not exist or be an empty folder. Returns the manifest path.
    """
    cfg = SignumSyntheticConfig() if cfg is None else cfg
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(out_dir, "already exists and is not an empty folder")
    sequences, meta, _ = generate(cfg.synthetic_config())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        rows = []
        for seq, row in zip(sequences, meta.itertuples(index=False), strict=True):
            sign, signer, rep = int(row.label) + 1, int(row.subject), int(row.trial)
            arr = holistic_frames(seq, cfg.seed, (sign, signer, rep)).astype("<f4")
            if cfg.layout == "flat":
                arr = arr.reshape(len(arr), 225)
            rel = f"s{signer:02d}/sign{sign:03d}_r{rep}.npy"
            (tmp / rel).parent.mkdir(exist_ok=True)
            np.save(tmp / rel, arr, allow_pickle=False)
            rows.append((rel, sign, signer, rep, row.label_name))
        table = pd.DataFrame(rows, columns=["path", "sign", "signer", "repetition", "gloss"])
        (tmp / "manifest.csv").write_text(table.to_csv(index=False, lineterminator="\n"))
        for p in (tmp, *tmp.iterdir()):
            if p.is_dir():
                p.chmod(0o755)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "manifest.csv"
