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
import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .checksum import sha256_bytes
from .skeleton import HAND_BONES, HAND_LANDMARKS, UTD_MHAD_BONES, UTD_MHAD_JOINTS
from .store import StoreInfo, write_store

__all__ = ["TOPOLOGIES", "SyntheticConfig", "generate", "write_synthetic"]

TOPOLOGIES = ("body", "hand", "two_hands")
_G = 257  # phase grid on which class templates are tabulated
_PHI = np.linspace(0.0, 1.0, _G)
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
            raise ValueError(f"synthetic config: topology must be one of {TOPOLOGIES}, got "
                             f"{self.topology!r}")  # fmt: skip
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"synthetic config: dataset must be a non-empty name, got "
                             f"{self.dataset!r}")  # fmt: skip


# ---------------------------------------------------------------- waveforms and primitives
Terms = list[tuple[np.ndarray, dict[str, float]]]  # [(waveform (G,), {channel: weight})]


def _u(g: np.random.Generator, low: float, high: float) -> float:
    return float(g.uniform(low, high))


def _win(g: np.random.Generator) -> np.ndarray:
    """Smooth on-hold-off envelope over the phase grid, shape (G,)."""
    a, b, r = _u(g, 0.05, 0.3), _u(g, 0.7, 0.95), _u(g, 0.1, 0.2)
    ramp = np.clip(np.stack([(_PHI - a) / r, (b - _PHI) / r]), 0.0, 1.0)  # (2, G)
    return np.prod(ramp * ramp * (3 - 2 * ramp), axis=0)


def _osc(g: np.random.Generator, freqs: tuple) -> np.ndarray:
    """Sinusoid with a random frequency (cycles per sequence) and phase, shape (G,)."""
    return np.sin(2 * np.pi * g.choice(freqs) * _PHI + _u(g, 0, 2 * np.pi))


def _pulse(g: np.random.Generator, freqs: tuple, lag: float = 0.0) -> np.ndarray:
    """Repeated 0 -> 1 -> 0 pulses, shape (G,)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * g.choice(freqs) * _PHI - lag)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _circle(g, hold: dict, ch_a: str, ch_b: str, radius: tuple) -> Terms:
    """Circle: ``ch_a`` and ``ch_b`` in quadrature, on top of a held pose."""
    e, f, p, r = _win(g), g.choice((1, 2, 3)), _u(g, 0, 2 * np.pi), _u(g, *radius)
    arg = 2 * np.pi * f * _PHI + p
    return [(e, hold), (e * np.sin(arg), {ch_a: r}), (e * np.cos(arg), {ch_b: g.choice((-r, r))})]


def _shape(g, extended: set, **extra: float) -> Terms:
    """Hold a handshape: every finger not in ``extended`` curls (0 thumb .. 4 pinky)."""
    curl = {f"curl{i}": _u(g, 0.8, 1.2) * (0.6 if i == 0 else 1) for i in range(5)}
    return [(_win(g), {k: v for k, v in curl.items() if int(k[-1]) not in extended} | extra)]


Kinds = dict[str, Callable[[np.random.Generator], Terms]]
# fmt: off
_BODY_KINDS: Kinds = {
    "arm_raise": lambda g: [(_win(g), {"shoulder_flex": _u(g, 1.3, 2.8),
                                       "elbow_flex": _u(g, 0, .6)})],
    "arm_circle": lambda g: _circle(g, {"shoulder_flex": _u(g, 1, 1.6)}, "shoulder_flex",
                                    "shoulder_abduct", (0.4, 0.8)),
    "kick": lambda g: [(_win(g) * _pulse(g, (1, 2)), {"hip_flex": _u(g, .8, 1.5),
                                                       "knee_flex": _u(g, .2, .8)})],
    "squat": lambda g: [(_win(g) * _pulse(g, (1, 2)), {k: w * _u(g, .5, 1) for k, w in (
        ("both_hip_flex", 1.3), ("both_knee_flex", 2.2), ("both_ankle_flex", 0.9),
        ("spine_flex", 0.4), ("both_shoulder_flex", 1.0))})],
    "arm_swing": lambda g: [(_win(g) * _osc(g, (1, 1.5, 2, 3)), {"shoulder_flex": _u(g, .5, 1)}),
                            (_win(g), {"shoulder_flex": _u(g, 0, .4),
                                       "elbow_flex": _u(g, .2, .6)})],
    "torso_bend": lambda g: [(_win(g), {"spine_flex": _u(g, .5, 1.2), "chest_flex": _u(g, 0, .4),
                                        "both_shoulder_flex": _u(g, 0, .6)})],
    "wave": lambda g: [(_win(g), {"shoulder_abduct": _u(g, 2, 2.6), "elbow_flex": _u(g, .8, 1.5)}),
                       (_win(g) * _osc(g, (2, 3, 4)), {"forearm_wave": _u(g, .3, .7)})],
    "elbow_curl": lambda g: [(_win(g) * _pulse(g, (1, 2, 3)), {"elbow_flex": _u(g, 1.2, 2.2)}),
                             (_win(g), {"shoulder_flex": _u(g, 0, .5)})],
    "arm_abduct": lambda g: [(_win(g), {"shoulder_abduct": _u(g, 1.2, 2.6),
                                        "elbow_flex": _u(g, 0, .5)})],
    "punch": lambda g: [(_win(g), {"shoulder_flex": _u(g, 1.3, 1.7),
                                   "elbow_flex": _u(g, 1.2, 1.8)}),
                        (_win(g) * _pulse(g, (1, 2, 3)), {"elbow_flex": -_u(g, 1, 1.6)})],
    "torso_twist": lambda g: [(_win(g) * _osc(g, (1, 2)), {"spine_twist": _u(g, .3, .8)})],
    "step": lambda g: [(_win(g), {"step": _u(g, .2, .45)}),
                       (_win(g) * _pulse(g, (2,)), {"hip_abduct": _u(g, .3, .6), "knee_flex": .5})],
    "side_bend": lambda g: [(_win(g), {"spine_side": _u(g, .25, .5), "shoulder_abduct": .3})],
    "head_nod": lambda g: [(_win(g) * _osc(g, (2, 3)), {"neck_flex": _u(g, .2, .5)}),
                           (_win(g), {"chest_flex": _u(g, 0, .3)})],
}
_HAND_KINDS: Kinds = {
    "fist": lambda g: [(_win(g) * _pulse(g, (1, 2, 3)), {f"curl{i}": _u(g, .7, 1.1)
                                                         for i in range(5)})],
    "point": lambda g: _shape(g, {1}),
    "v_sign": lambda g: _shape(g, {1, 2}),
    "pinch": lambda g: [(_win(g) * _pulse(g, (1, 2, 3)), {"curl0": _u(g, .5, .8),
                                                          "curl1": _u(g, .6, 1)})],
    "spread": lambda g: [(_win(g) * _pulse(g, (1, 2, 3)), {"spread": _u(g, .15, .35)})],
    "wiggle": lambda g: [(_win(g) * _pulse(g, (2, 3), lag=0.6 * i), {f"curl{i}": _u(g, .4, .8)})
                         for i in range(1, 5)],
    "thumb_up": lambda g: _shape(g, {0}, wrist_z=_u(g, 1, 1.5)),
    "wrist_twist": lambda g: [(_win(g) * _osc(g, (1, 2, 3)), {"wrist_y": _u(g, .5, 1.2)})],
    "wrist_flex": lambda g: [(_win(g) * _osc(g, (1, 2, 3)), {"wrist_x": _u(g, .4, .9)})],
    "tap": lambda g: [(_win(g) * _pulse(g, (2, 3, 4)), {str(g.choice(["pos_y", "pos_z"])):
                                                        _u(g, .02, .06)})],
    "circle": lambda g: _circle(g, {}, "pos_x", "pos_y", (0.04, 0.1)),
    "move": lambda g: [(_win(g), dict(zip(("pos_x", "pos_y", "pos_z"), _u(g, .08, .25)
                                          * _unit(g.standard_normal(3)), strict=True)))],
    "shake": lambda g: [(_win(g) * _osc(g, (3, 4, 5)), {"pos_x": _u(g, .02, .05)})],
}
_BODY_COORDS = "synthetic Kinect-like camera space: x right, y up, z away from the sensor (metres)"
_HAND_COORDS = "synthetic camera space: x right, y up, z away from the camera (metres)"
_BILATERAL = {"squat", "torso_bend", "torso_twist", "head_nod"}
# body channel: (joint at the child end of the rotated bone, rotation axis for the right side)
_BODY_CHANNELS = {
    "shoulder_flex": ("{}_elbow", (1, 0, 0)), "shoulder_abduct": ("{}_elbow", (0, 0, 1)),
    "elbow_flex": ("{}_wrist", (1, 0, 0)), "forearm_wave": ("{}_wrist", (0, 0, 1)),
    "wrist_flex": ("{}_hand", (1, 0, 0)), "hip_flex": ("{}_knee", (1, 0, 0)),
    "hip_abduct": ("{}_knee", (0, 0, 1)), "knee_flex": ("{}_ankle", (-1, 0, 0)),
    "ankle_flex": ("{}_foot", (1, 0, 0)), "spine_flex": ("spine", (-1, 0, 0)),
    "spine_twist": ("spine", (0, 1, 0)), "spine_side": ("spine", (0, 0, -1)),
    "chest_flex": ("shoulder_center", (-1, 0, 0)), "neck_flex": ("head", (-1, 0, 0)),
}
_BODY_REST = np.array([
    [0, .60, 0], [0, .42, 0], [0, .07, 0], [0, 0, 0], [-.17, .30, 0], [-.21, .03, 0],
    [-.21, -.20, 0], [-.21, -.28, 0], [.17, .30, 0], [.21, .03, 0], [.21, -.20, 0],
    [.21, -.28, 0], [-.075, -.075, 0], [-.08, -.54, 0], [-.075, -.90, 0], [-.08, -.97, -.05],
    [.075, -.075, 0], [.08, -.54, 0], [.075, -.90, 0], [.08, -.97, -.05]])  # (20, 3), metres
_HAND_REST = np.array([
    [0, 0, 0], [-.030, .030, -.005], [-.052, .055, -.012], [-.068, .080, -.016],
    [-.080, .102, -.018], [-.024, .092, 0], [-.028, .132, 0], [-.030, .156, 0], [-.031, .176, 0],
    [-.002, .095, 0], [-.002, .140, 0], [-.002, .167, 0], [-.002, .190, 0], [.018, .088, 0],
    [.021, .129, 0], [.023, .154, 0], [.024, .175, 0], [.035, .078, 0], [.040, .108, 0],
    [.043, .127, 0], [.045, .144, 0]])  # (21, 3), right hand, palm towards the camera
# fmt: on


# ---------------------------------------------------------------------------- topologies
@dataclass(frozen=True)
class _Topology:
    """A skeleton with its pose vector q of length D = 3 (R + B + R): root rotation vectors,
    bone rotation vectors (each in its parent's frame, about rest-pose axes), root positions."""

    names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    offsets: np.ndarray  # (B, 3) rest bone vectors
    frame: np.ndarray  # (B,) parent frame of each bone among the R + B frames
    roots: np.ndarray  # (R,) root joints
    levels: tuple  # per depth: (bones, parent joints, child joints)
    chan: dict  # "side.channel" -> (D,) coefficients
    base: np.ndarray  # (D,) rest posture
    active: np.ndarray  # (D,) scale of posture style and jitter (0 on rigid parts)
    moving: np.ndarray  # (R + B,) frames that ever rotate
    kinds: Kinds
    sides: tuple[str, ...]
    feet: tuple[int, ...]  # joints kept on the floor
    origin: tuple  # mean global position
    spread: tuple  # half-range of the global translation
    group: np.ndarray  # (B,) subject length factor of each bone
    coords: str


def _build(names, bones, rest, spec, posture, **fields) -> _Topology:
    """Index the bones by depth and turn channel specs into pose-vector coefficients.

    ``spec(side)`` maps channel names to ``[(joint, axis (3,), is_position)]`` written for the
    right side; the left side's are mirrored (x -> -x).
    """
    child = {c: i for i, (_, c) in enumerate(bones)}
    roots = [j for j in range(len(names)) if j not in child]
    n_r, n_b = len(roots), len(bones)
    frame, depth = [], []
    for p, _ in bones:  # parents come first
        frame.append(n_r + child[p] if p in child else roots.index(p))
        depth.append(depth[child[p]] + 1 if p in child else 0)
    levels = tuple(
        (b, np.array([bones[i][0] for i in b]), np.array([bones[i][1] for i in b]))
        for b in (np.flatnonzero(np.array(depth) == k) for k in range(max(depth) + 1))
    )
    dim, chan = 3 * (2 * n_r + n_b), {}
    for side in fields["sides"]:
        mirror = side == "left"
        for name, entries in spec(side).items():
            v = np.zeros(dim)
            for joint, axis, is_pos in entries:
                f = (
                    n_r + n_b + roots.index(joint)
                    if is_pos
                    else (roots.index(joint) if joint in roots else n_r + child[joint])
                )
                flip = (-1, 1, 1) if is_pos else (1, -1, -1)
                v[3 * f : 3 * f + 3] += np.asarray(axis, float) * (flip if mirror else 1)
            chan[f"{side}.{name}"] = v
    base = sum(w * chan[f"{s}.{k}"] for s in fields["sides"] for k, w in posture.items())
    active = np.any([v != 0 for v in chan.values()], axis=0).astype(float)
    active[3 * (n_r + n_b) :] *= 0.1  # root positions: metres, not radians
    offsets = rest[[c for _, c in bones]] - rest[[p for p, _ in bones]]
    moving = active[: 3 * (n_r + n_b)].reshape(-1, 3).any(1)
    return _Topology(tuple(names), tuple(bones), offsets, np.array(frame), np.array(roots),
                     levels, chan, base, active, moving, **fields)  # fmt: skip


def _body_spec(side: str) -> dict:
    j = {name: i for i, name in enumerate(UTD_MHAD_JOINTS)}
    spec = {
        k: [(j[joint.format(side)], axis, False)] for k, (joint, axis) in _BODY_CHANNELS.items()
    }
    for k in ("shoulder_flex", "hip_flex", "knee_flex", "ankle_flex"):  # both sides at once
        joint, axis = _BODY_CHANNELS[k]
        spec["both_" + k] = [(j[joint.format(s)], axis, False) for s in ("right", "left")]
    return spec | {"step": [(j["hip_center"], (1, 0, 0), True)]}


def _hand_spec(sides: tuple, side: str) -> dict:
    o, spec = 21 * sides.index(side), {}
    for f in range(5):  # curl: flex the three joints of the finger towards the palm
        d = _HAND_REST[4 * f + 2] - _HAND_REST[4 * f + 1]
        ax = _unit(np.cross(d, (0.8, 0.0, -0.6) if f == 0 else (0.0, 0.0, -1.0)))
        spec[f"curl{f}"] = [(o + 4 * f + 2 + k, w * ax, False) for k, w in enumerate((1, 1.2, 0.8))]
    spec["spread"] = [(o + 4 * f + 2, (0, 0, s), False) for f, s in enumerate((1, 1, 0, -1, -1))]
    for a, x in enumerate("xyz"):
        spec[f"wrist_{x}"] = [(o, np.eye(3)[a], False)]
        spec[f"pos_{x}"] = [(o, np.eye(3)[a], True)]
    return spec


@functools.cache
def _topology(name: str) -> _Topology:
    if name == "body":
        return _build(UTD_MHAD_JOINTS, UTD_MHAD_BONES, _BODY_REST, _body_spec,
                      {"shoulder_abduct": 0.12, "elbow_flex": 0.2, "knee_flex": 0.05},
                      kinds=_BODY_KINDS, sides=("right", "left"), feet=(14, 15, 18, 19),
                      origin=(0, -0.1, 2.8), spread=(0.4, 0.1, 0.4),
                      group=np.arange(len(UTD_MHAD_BONES)), coords=_BODY_COORDS)  # fmt: skip
    sides = ("right",) if name == "hand" else ("left", "right")
    names = [f"{s}_{n}" if len(sides) > 1 else n for s in sides for n in HAND_LANDMARKS]
    bones = [(p + 21 * h, c + 21 * h) for h in range(len(sides)) for p, c in HAND_BONES]
    rest = np.concatenate([_HAND_REST * ((-1, 1, 1) if s == "left" else 1) for s in sides])
    return _build(names, bones, rest, functools.partial(_hand_spec, sides),
                  {f"curl{f}": 0.15 for f in range(5)} | {"pos_x": 0.12},
                  kinds=_HAND_KINDS, sides=sides, feet=(), origin=(0, 0, 0.6),
                  spread=(0.1, 0.1, 0.1), group=np.tile(np.arange(len(HAND_BONES)), len(sides)),
                  coords=_HAND_COORDS)  # fmt: skip


# ---------------------------------------------------------------------------- kinematics
def _rodrigues(rv: np.ndarray) -> np.ndarray:
    """Rotation matrices (3, 3, ...) of rotation vectors (3, ...), components first."""
    th = np.sqrt(rv[0] * rv[0] + rv[1] * rv[1] + rv[2] * rv[2])  # (...,)
    c, s = np.cos(th), np.sin(th)
    x, y, z = rv / np.maximum(th, 1e-12)  # unit axis
    tx, ty, tz, sx, sy, sz = (1 - c) * x, (1 - c) * y, (1 - c) * z, s * x, s * y, s * z
    r = [
        [c + tx * x, tx * y - sz, tx * z + sy],
        [tx * y + sz, c + ty * y, ty * z - sx],
        [tx * z - sy, ty * z + sx, c + tz * z],
    ]
    return np.array(r)


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Products (3, 3, ...) @ (3, m, ...) of matrices stored components first."""
    return a[:, 0, None] * b[None, 0] + a[:, 1, None] * b[None, 1] + a[:, 2, None] * b[None, 2]


def _fk(topo: _Topology, q: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Joint positions (3, K, T) from poses q (D, T) and bone length factors (B,)."""
    n, n_r, n_b = q.shape[1], len(topo.roots), len(topo.bones)
    rv = q[: 3 * (n_r + n_b)].reshape(n_r + n_b, 3, n).transpose(1, 0, 2)  # (3, R+B, T)
    frames = np.zeros((3, 3, n_r + n_b, n))  # local rotations, then global frames
    frames[[0, 1, 2], [0, 1, 2]] = 1.0
    frames[:, :, topo.moving] = _rodrigues(rv[:, topo.moving])
    x = np.empty((3, len(topo.names), n))
    x[:, topo.roots] = q[3 * (n_r + n_b) :].reshape(n_r, 3, n).transpose(1, 0, 2)
    offsets = topo.offsets.T[:, :, None] * lengths[:, None]  # (3, B, 1)
    for b, parent, child in topo.levels:
        g = _mm(frames[:, :, topo.frame[b]], frames[:, :, n_r + b])  # (3, 3, n, T)
        frames[:, :, n_r + b] = g
        x[:, child] = x[:, parent] + _mm(g, offsets[:, None, b])[:, 0]
    return x


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
    return _Subject(per_bone[topo.group], g.random(), g.uniform(-1 / 3, 1 / 3, 3),
                    g.standard_normal(len(topo.base)), g.standard_normal())  # fmt: skip


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
    info = StoreInfo(dataset=cfg.dataset, landmark_names=list(topo.names), units="m",
                     bones=[(int(p), int(c)) for p, c in topo.bones], coordinate_system=topo.coords,
                     source_info=dataclasses.asdict(cfg))  # fmt: skip
    return sequences, pd.DataFrame(rows, columns=columns), info


def write_synthetic(out_path: str | os.PathLike, cfg: SyntheticConfig | None = None) -> int:
    """Generate the dataset of ``cfg`` and write it to the store ``out_path``, atomically.

    Returns the number of sequences written.
    """
    sequences, meta, info = generate(cfg)
    write_store(out_path, sequences, meta, info)
    return len(sequences)
