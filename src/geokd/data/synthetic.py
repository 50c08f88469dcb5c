"""Seeded synthetic skeleton-motion datasets: the project's embedded default dataset.

An articulated skeleton (the 20-joint UTD-MHAD Kinect body, a 21-landmark MediaPipe hand or
two hands) is animated by forward kinematics along its bones. A **class** composes motion
primitives acting on joint angles (raise, swing or circle an arm, bend an elbow, kick, squat,
bend or twist the torso, step; finger curls, spread, wrist rotation and hand moves for hands):
its dominant primitive names it, secondary primitives come from the same shared bank and a
motion common to all classes is mixed in. A **subject** has its own bone lengths (+-10 %),
tempo, rhythm, amplitude habit and posture style. A **sequence** adds a smooth time warp,
joint-angle jitter, a random rotation (mostly about the vertical axis), scale, translation,
a length in [min_frames, max_frames] and Gaussian sensor noise. ``difficulty`` shrinks the
class-specific motion against the shared one and widens every nuisance variation.

Random draws come from ``numpy.random.SeedSequence`` keyed by (seed, class), (seed, subject)
and (seed, class, subject, trial), so a sequence does not change when the dataset grows.
Coordinates: metres, x right, y up, z away from the camera, which the subject faces.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..checksum import sha256_bytes
from ._kinematics import _BILATERAL, _fk, _mm, _rodrigues, _Topology, _topology
from ._motions import _G, _HAND_KINDS, Terms, _u
from .store import StoreInfo, write_store

__all__ = ["TOPOLOGIES", "SyntheticConfig", "generate", "write_synthetic"]

TOPOLOGIES = ("body", "hand", "two_hands")
_RANGES = {  # allowed [low, high] of each numeric setting; a name as low: that setting's value
    "n_classes": (2, math.inf),
    "n_subjects": (1, math.inf),
    "n_trials": (1, math.inf),
    "min_frames": (2, math.inf),
    "max_frames": ("min_frames", math.inf),
    "seed": (0, math.inf),
    "noise": (0.0, math.inf),
    "difficulty": (0.0, 1.0),
}


@dataclass
class SyntheticConfig:
    """Settings of the synthetic dataset, validated on construction and by :func:`generate`.

    Attributes
    ----------
    n_classes : int
        Number of action classes, >= 2 (default 8).
    n_subjects : int
        Number of subjects, numbered 1..n_subjects (default 6).
    n_trials : int
        Repetitions per (class, subject), numbered 1..n_trials (default 3).
    min_frames, max_frames : int
        Bounds of the sequence length T, 2 <= min_frames <= max_frames (default 30, 60).
    noise : float
        Standard deviation of the Gaussian sensor noise in metres, >= 0 (default 0.01; a
        finger bone is 2-5 cm long, so use a few millimetres for the hand topologies).
    difficulty : float
        In [0, 1] (default 0.5): 0 = distinct classes and little nuisance variation,
        1 = classes close to each other and large subject, trial and view variation.
    topology : str
        ``"body"`` (20-joint UTD-MHAD Kinect skeleton), ``"hand"`` (21 MediaPipe hand
        landmarks of a right hand) or ``"two_hands"`` (42 landmarks: left hand, right hand).
    seed : int
        Master seed, >= 0 (default 0).
    dataset : str
        Dataset name written to the store (default ``"synthetic"``).
    """

    n_classes: int = 8
    n_subjects: int = 6
    n_trials: int = 3
    min_frames: int = 30
    max_frames: int = 60
    noise: float = 0.01
    difficulty: float = 0.5
    topology: str = "body"
    seed: int = 0
    dataset: str = "synthetic"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting; make numbers plain Python ones."""
        for name, (low, high) in _RANGES.items():
            v, low = getattr(self, name), getattr(self, low) if isinstance(low, str) else low
            integer = name not in ("noise", "difficulty")
            kind = int | np.integer if integer else int | float | np.integer | np.floating
            if (
                isinstance(v, bool)
                or not isinstance(v, kind)
                or not (low <= v <= high and (integer or math.isfinite(v)))
            ):
                what = "an integer" if integer else "a finite number"
                where = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
                raise ValueError(f"synthetic config: {name} must be {what} {where}, got {v!r}")
            setattr(self, name, int(v) if integer else float(v))  # JSON-safe source_info
        if self.topology not in TOPOLOGIES:
            raise ValueError(
                f"synthetic config: topology must be one of {TOPOLOGIES}, got {self.topology!r}"
            )
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(
                f"synthetic config: dataset must be a non-empty name, got {self.dataset!r}"
            )


# ---------------------------------------------------------------------------- generation
def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _realize(topo: _Topology, terms: Terms, side: str) -> np.ndarray:
    """Pose trajectory (G, D) of primitive terms performed with ``side``."""
    zero = np.zeros(len(topo.base))
    coef = [sum((w * topo.chan[f"{side}.{k}"] for k, w in d.items()), zero) for _, d in terms]
    return np.stack([w for w, _ in terms], axis=1) @ np.stack(coef)


def _primitive(topo: _Topology, g: np.random.Generator, kind: int | None = None):
    """(kind name, terms, side) of a random primitive of the topology's bank."""
    names = list(topo.kinds)
    name = names[int(g.integers(len(names))) if kind is None else kind % len(names)]
    side = topo.sides[int(g.integers(len(topo.sides)))]
    return name, topo.kinds[name](g), side


def _class_template(topo: _Topology, seed: int, c: int, d: float, common: np.ndarray):
    """Label name and pose template (G, D) of class c."""
    g, hands = _rng(seed, 0, c), topo.kinds is _HAND_KINDS
    kind, terms, side = _primitive(topo, g, c)
    side = "right" if hands else side  # the dominant hand leads a sign
    spec = _realize(topo, terms, side)
    secondary = [_primitive(topo, g) for _ in range(int(g.integers(1, 3)))]
    sec = sum(_u(g, 0.3, 0.6) * _realize(topo, t, s) for _, t, s in secondary)
    name = kind if hands or kind in _BILATERAL else f"{side}_{kind}"
    if hands and len(topo.sides) == 2:  # the other hand moves too
        if g.random() < 0.4:
            spec, name = spec + _realize(topo, terms, "left"), f"{name}_both"
        else:
            spec = spec + _u(g, 0.5, 1.0) * _realize(topo, _primitive(topo, g)[1], "left")
    return f"c{c:02d}_{name}", (1 - 0.5 * d) * spec + (0.4 + 0.6 * d) * sec + d * common


@dataclass(frozen=True)
class _Subject:
    lengths: np.ndarray  # (B,) bone length factors
    tempo: float  # 0 = fast (short sequences) .. 1 = slow
    warp: np.ndarray  # (3,) personal timing rhythm
    style: np.ndarray  # (D,) standard-normal posture offsets
    amp: float  # standard-normal amplitude habit


def _subject(topo: _Topology, seed: int, s: int) -> _Subject:
    g = _rng(seed, 1, s)
    per_bone = g.uniform(0.9, 1.1, topo.group.max() + 1) * g.uniform(0.93, 1.07)
    return _Subject(
        per_bone[topo.group],
        g.random(),
        g.uniform(-1 / 3, 1 / 3, 3),
        g.standard_normal(len(topo.base)),
        g.standard_normal(),
    )


def _sequence(topo: _Topology, cfg: SyntheticConfig, template, subj: _Subject, key) -> np.ndarray:
    """One sequence (T, K, 3) of the class template (G, D) performed by ``subj``."""
    g, d = _rng(cfg.seed, 2, *key), cfg.difficulty
    r = g.random(13)  # length, warp (3), crop (2), rotation (3), scale, shift (3)
    z = g.standard_normal((7, len(topo.base)))  # amplitude habit, jitter coefficients (6)
    n = cfg.min_frames + round((cfg.max_frames - cfg.min_frames) * (0.6 * r[0] + 0.4 * subj.tempo))
    u, k = np.arange(n) / (n - 1), np.arange(1, 4)[:, None]
    coef = (0.2 + 0.6 * d) * (subj.warp + (2 * r[1:4] - 1) / 3) / 2  # sum |coef| < 1
    phi = u + coef @ (np.sin(np.pi * k * u) / (np.pi * k))  # (T,) monotone time warp
    crop = r[4:6] * (0.03 + 0.1 * d)
    phi = np.clip(crop[0] + (1 - crop.sum()) * phi, 0.0, 1.0) * (_G - 1)
    i = np.minimum(phi.astype(int), _G - 2)
    w = (phi - i)[:, None]
    q = template[i] * (1 - w) + template[i + 1] * w  # (T, D)
    basis = np.concatenate([np.sin(np.pi * k * u), np.cos(np.pi * k * u)]).T  # (T, 6)
    style = (0.05 + 0.2 * d) * subj.style + (0.03 + 0.15 * d) / np.sqrt(6) * (basis @ z[1:])
    q = q * (1 + (0.05 + 0.15 * d) * (subj.amp + z[0])) + topo.base + topo.active * style
    x = _fk(topo, np.ascontiguousarray(q.T), subj.lengths)  # (3, K, T)
    if topo.feet:  # keep the lowest foot on the floor
        x[1] -= x[1, topo.feet].min(axis=0) + 0.95
    rot = _rodrigues((2 * r[6:9] - 1) * np.radians([2 + 6 * d, 10 + 40 * d, 2 + 6 * d]))
    x = _mm(rot[:, :, None], x) * (1 + (2 * r[9] - 1) * (0.03 + 0.07 * d))  # mostly yaw
    x = x.transpose(2, 1, 0) + np.add(topo.origin, (2 * r[10:] - 1) * topo.spread)  # (T, K, 3)
    return np.ascontiguousarray(x + cfg.noise * g.standard_normal(x.shape), "<f8")


def generate(
    cfg: SyntheticConfig | None = None,
) -> tuple[list[np.ndarray], pd.DataFrame, StoreInfo]:
    """Generate the synthetic dataset of ``cfg`` (default :class:`SyntheticConfig`).

    Parameters
    ----------
    cfg : SyntheticConfig, optional
        The settings; the same settings give byte-identical arrays.

    Returns
    -------
    sequences : list of numpy.ndarray
        ``n_classes * n_subjects * n_trials`` float64 arrays of shape (T, K, 3), ordered by
        class, subject, trial; K = 20 (body), 21 (hand) or 42 (two_hands).
    meta : pandas.DataFrame
        One row per sequence: ``sequence_id`` (``c03_s02_t1``: label, subject, trial),
        ``label`` (0-based), ``label_name`` (e.g. ``c03_squat``), ``subject`` and ``trial``
        (1-based), ``source`` (``synthetic:seed=S``) and ``sha256`` (hex SHA-256 of the
        array's float64 little-endian bytes).
    info : StoreInfo
        Landmark names and bones of the topology, units ``"m"``, the coordinate system and
        the config as ``source_info``.
    """
    cfg = SyntheticConfig() if cfg is None else cfg
    cfg.validate()
    topo = _topology(cfg.topology)
    g = _rng(cfg.seed, 3)
    common = sum(_realize(topo, t, s) for _, t, s in [_primitive(topo, g) for _ in range(2)])
    subjects = [_subject(topo, cfg.seed, s) for s in range(1, cfg.n_subjects + 1)]
    trials, source = range(1, cfg.n_trials + 1), f"synthetic:seed={cfg.seed}"
    sequences, rows = [], []
    for c in range(cfg.n_classes):
        name, template = _class_template(topo, cfg.seed, c, cfg.difficulty, common)
        for (s, subj), t in ((st, t) for st in enumerate(subjects, start=1) for t in trials):
            x = _sequence(topo, cfg, template, subj, (c, s, t))
            sequences.append(x)
            sha = sha256_bytes(x.tobytes())
            rows.append((f"c{c:02d}_s{s:02d}_t{t}", c, name, s, t, source, sha))
    columns = ["sequence_id", "label", "label_name", "subject", "trial", "source", "sha256"]
    info = StoreInfo(
        dataset=cfg.dataset,
        landmark_names=list(topo.names),
        units="m",
        bones=[(int(p), int(c)) for p, c in topo.bones],
        coordinate_system=topo.coords,
        source_info=dataclasses.asdict(cfg),
    )
    return sequences, pd.DataFrame(rows, columns=columns), info


def write_synthetic(out_path: str | os.PathLike, cfg: SyntheticConfig | None = None) -> int:
    """Generate the dataset of ``cfg`` and write it to the store ``out_path``, atomically.

    Returns the number of sequences written.
    """
    sequences, meta, info = generate(cfg)
    write_store(out_path, sequences, meta, info)
    return len(sequences)
