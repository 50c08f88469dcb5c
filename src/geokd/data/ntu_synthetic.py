"""Synthetic data in the NTU RGB+D input format: a folder of real ``.skeleton`` text files.

The files are what :mod:`geokd.data.ntu` reads, ``SsssCcccPpppRrrrAaaa.skeleton``: the frame
count, then per frame the body count and per body the info line (tracking ID and 9 values),
the joint count (25) and 25 joint lines of 12 values (x, y, z in metres with 7 significant
digits, then depth and colour pixel positions, orientation and tracking state).

The motion of a sample is :mod:`geokd.data.synthetic`'s 20-joint ``body`` sequence of class
``action - 1``, subject ``performer`` and trial ``replication``, extended to Kinect v2's 25
joints (neck between shoulder centre and head, hand tips and thumbs beyond the hands). Every
sample is seen by each of the ``n_cameras`` cameras (1-3 at -45, 0 and +45 degrees about the
vertical axis, the body about 3 m away), each with its own sensor noise; performer ``p`` is
recorded in setup ``(p - 1) % n_setups + 1``. The last ``two_body_actions`` actions are
two-person interactions: a second body (the next performer, same action) faces the first 1 m
to its side and enters the view after 1-3 frames (one body only in those frames). Each file
starts and ends with up to ``empty_frames`` frames without any body, and the last
``missing_skeletons`` files (in file-name order) have no body in any frame, like NTU's
"missing skeleton" samples. The same settings give the same bytes.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .ntu import N_CAMERAS, N_PERFORMERS, N_SETUPS
from .skeleton import NTU_ACTIONS, NTU_JOINTS, UTD_MHAD_JOINTS
from .synthetic import SyntheticConfig, generate

__all__ = ["NtuSyntheticConfig", "kinect_v2", "write_synthetic_ntu"]

_CAMERA_DEGREES = (-45.0, 0.0, 45.0)
_DEPTH = 3.0  # metres from the sensor
_BODY_ID = 72057594037927936  # the high bits of a Kinect v2 tracking ID


@dataclass
class NtuSyntheticConfig:
    """Settings of a synthetic NTU-format folder (defaults: NTU RGB+D 60's shape).

    Attributes
    ----------
    n_actions : int
        Actions 1..n_actions, 2 <= n_actions <= 120 (default 60).
    n_performers : int
        Performers 1..n_performers, 1 <= n_performers <= 106 (default 40).
    n_setups : int
        Setups 1..n_setups (1..32); performer p is in setup (p - 1) % n_setups + 1 (default 17).
    n_cameras : int
        Cameras 1..n_cameras (1..3), each sees every sample (default 3).
    n_replications : int
        Replications per action and performer (default 2).
    two_body_actions : int
        The last this many actions have a second body (default 11: NTU-60's 50-60).
    min_frames, max_frames : int
        Bounds of the number of frames with bodies (default 50, 100).
    empty_frames : int
        Up to this many frames without a body at each end of a file (default 2).
    missing_skeletons : int
        The last this many files have no body at all (default 0).
    noise, difficulty : float
        As in :class:`geokd.data.synthetic.SyntheticConfig` (default 0.01 m, 0.5).
    seed : int
        Master seed (default 0).
    """

    n_actions: int = 60
    n_performers: int = 40
    n_setups: int = 17
    n_cameras: int = 3
    n_replications: int = 2
    two_body_actions: int = 11
    min_frames: int = 50
    max_frames: int = 100
    empty_frames: int = 2
    missing_skeletons: int = 0
    noise: float = 0.01
    difficulty: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        self.synthetic_config()

    def synthetic_config(self) -> SyntheticConfig:
        """The :class:`SyntheticConfig` of the motions; ValueError naming a bad setting."""
        bounds = {
            "n_actions": (2, len(NTU_ACTIONS)),
            "n_performers": (1, N_PERFORMERS),
            "n_setups": (1, N_SETUPS),
            "n_cameras": (1, N_CAMERAS),
            "n_replications": (1, 999),
            "two_body_actions": (0, self.n_actions),
            "empty_frames": (0, math.inf),
            "missing_skeletons": (0, math.inf),
        }
        for name, (low, high) in bounds.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or not low <= v <= high:
                raise ValueError(
                    f"synthetic NTU config: {name} must be an integer in [{low}, {high}], got {v!r}"
                )
        try:
            return SyntheticConfig(
                n_classes=self.n_actions,
                n_subjects=self.n_performers,
                n_trials=self.n_replications,
                min_frames=self.min_frames,
                max_frames=self.max_frames,
                noise=0.0,  # each camera adds its own
                difficulty=self.difficulty,
                topology="body",
                seed=self.seed,
                dataset="ntu",
            )
        except ValueError as exc:
            message = str(exc).replace("synthetic config", "synthetic NTU config")
            for old, new in (("n_classes", "n_actions"), ("n_subjects", "n_performers"),
                             ("n_trials", "n_replications")):  # fmt: skip
                message = message.replace(old, new)
            raise ValueError(message) from None


_U = {name: i for i, name in enumerate(UTD_MHAD_JOINTS)}
#: NTU joint -> the UTD-MHAD (Kinect v1) joint it copies, where there is one
_SAME = {
    "spine_base": "hip_center",
    "spine_mid": "spine",
    "head": "head",
    "spine_shoulder": "shoulder_center",
    **{
        f"{side}_{part}": f"{side}_{part}"
        for side in ("left", "right")
        for part in ("shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "foot")
    },
}


def kinect_v2(body: np.ndarray) -> np.ndarray:
    """A Kinect v1 body (T, 20, 3) (UTD-MHAD joint order) as Kinect v2's 25 joints (T, 25, 3):
    the 20 shared joints copied, the neck 40 % of the way from the shoulder centre to the head,
    each hand tip 70 % of a wrist-hand length beyond the hand, each thumb halfway between wrist
    and hand moved 3 cm towards the body's front (the hips' cross product with the spine)."""
    out = np.empty((len(body), len(NTU_JOINTS), 3))
    j = {name: i for i, name in enumerate(NTU_JOINTS)}
    for ntu, utd in _SAME.items():
        out[:, j[ntu]] = body[:, _U[utd]]
    out[:, j["neck"]] = body[:, _U["shoulder_center"]] + 0.4 * (
        body[:, _U["head"]] - body[:, _U["shoulder_center"]]
    )
    hips = body[:, _U["right_hip"]] - body[:, _U["left_hip"]]
    spine = body[:, _U["shoulder_center"]] - body[:, _U["hip_center"]]
    front = np.cross(hips, spine)
    front /= np.maximum(np.linalg.norm(front, axis=1, keepdims=True), 1e-9)
    for side in ("left", "right"):
        wrist, hand = body[:, _U[f"{side}_wrist"]], body[:, _U[f"{side}_hand"]]
        out[:, j[f"{side}_hand_tip"]] = hand + 0.7 * (hand - wrist)
        out[:, j[f"{side}_thumb"]] = 0.5 * (wrist + hand) + 0.03 * front
    return out


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(211, *key)))


def _yaw(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _view(x: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    """``x`` (T, K, 3) rotated about the vertical axis through ``centre`` and put _DEPTH away."""
    return (x - centre) @ _yaw(degrees).T + np.array([0.0, centre[1], _DEPTH])


def _body_lines(body_id: int, joints: np.ndarray, g: np.random.Generator) -> list[str]:
    lines = [f"{body_id} 0 1 2 1 2 0 {g.uniform(-0.1, 0.1):.7g} {g.uniform(-0.1, 0.1):.7g} 2"]
    lines.append(str(len(joints)))
    for x, y, z in joints:
        u, v = 256 + 365 * x / z, 212 - 365 * y / z  # depth pixel (512 x 424)
        lines.append(
            f"{x:.7g} {y:.7g} {z:.7g} {u:.7g} {v:.7g} {3.75 * u:.7g} {2.55 * v:.7g} 0.9 0 0.1 0 2"
        )
    return lines


def _sample_text(
    bodies: list[np.ndarray | None], empty: tuple[int, int], ids: tuple[int, int], g
) -> str:
    """The file text: ``bodies[b]`` (T, 25, 3) with NaN frames absent (or None: no body)."""
    T = max(len(b) for b in bodies if b is not None) if any(b is not None for b in bodies) else 0
    lines = [str(empty[0] + T + empty[1])]
    lines += ["0"] * empty[0]
    for t in range(T):
        present = [(i, b[t]) for i, b in zip(ids, bodies, strict=False) if b is not None]
        present = [(i, x) for i, x in present if np.isfinite(x).all()]
        lines.append(str(len(present)))
        for body_id, joints in present:
            lines += _body_lines(body_id, joints, g)
    lines += ["0"] * empty[1]
    return "\n".join(lines) + "\n"


def write_synthetic_ntu(out_dir: str | os.PathLike, cfg: NtuSyntheticConfig | None = None) -> Path:
    """Write a synthetic NTU-format folder of ``.skeleton`` files (see the module docstring).

    The folder is built beside ``out_dir`` and renamed into place, so it appears complete or
    not at all; ``out_dir`` must not exist or be an empty folder. Returns ``out_dir``.
    """
    cfg = NtuSyntheticConfig() if cfg is None else cfg
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(out_dir, "already exists and is not an empty folder")
    sequences, meta, _ = generate(cfg.synthetic_config())
    index = {
        (int(r.label) + 1, int(r.subject), int(r.trial)): i
        for i, r in enumerate(meta.itertuples(index=False))
    }
    samples = []
    for (action, performer, rep), i in sorted(index.items()):
        setup = (performer - 1) % cfg.n_setups + 1
        for camera in range(1, cfg.n_cameras + 1):
            name = f"S{setup:03d}C{camera:03d}P{performer:03d}R{rep:03d}A{action:03d}.skeleton"
            samples.append((name, action, performer, rep, camera, i))
    samples.sort()
    missing = {s[0] for s in samples[len(samples) - cfg.missing_skeletons :]}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        for name, action, performer, rep, camera, i in samples:
            g = _rng(cfg.seed, action, performer, rep, camera)
            first = kinect_v2(sequences[i])
            centre = first.reshape(-1, 3).mean(axis=0)
            bodies: list[np.ndarray | None] = [first]
            if action > cfg.n_actions - cfg.two_body_actions:
                partner = performer % cfg.n_performers + 1
                other = kinect_v2(sequences[index[(action, partner, rep)]])
                other = other[np.minimum(np.arange(len(first)), len(other) - 1)]
                c2 = other.reshape(-1, 3).mean(axis=0)
                other = (
                    (other - c2) @ _yaw(180.0).T + centre + np.array([1.0, c2[1] - centre[1], 0])
                )
                other[: int(g.integers(1, 4))] = np.nan  # enters the view after 1-3 frames
                bodies.append(other)
            deg = _CAMERA_DEGREES[camera - 1]
            bodies = [
                _view(b, deg, centre) + cfg.noise * g.standard_normal(b.shape) for b in bodies
            ]
            if name in missing:
                bodies = [np.full_like(b, np.nan) for b in bodies]
            empty = (int(g.integers(0, cfg.empty_frames + 1)),
                     int(g.integers(0, cfg.empty_frames + 1)))  # fmt: skip
            ids = (_BODY_ID + 1000 * performer + 7, _BODY_ID + 1000 * performer + 8)
            (tmp / name).write_text(_sample_text(bodies, empty, ids, g))
        tmp.chmod(0o755)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
