"""The articulated skeletons of the synthetic datasets (Kinect body, MediaPipe hands): bones,
rest poses, joint-angle channels and forward kinematics."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ._motions import _BODY_KINDS, _HAND_KINDS, Kinds, _unit
from .skeleton import HAND_BONES, HAND_LANDMARKS, UTD_MHAD_BONES, UTD_MHAD_JOINTS

_BODY_COORDS = "synthetic Kinect-like camera space: x right, y up, z away from the sensor (metres)"
_HAND_COORDS = "synthetic camera space: x right, y up, z away from the camera (metres)"
_BILATERAL = {"squat", "torso_bend", "torso_twist", "head_nod"}
# body channel: (joint at the child end of the rotated bone, rotation axis for the right side)
_BODY_CHANNELS = {
    "shoulder_flex": ("{}_elbow", (1, 0, 0)),
    "shoulder_abduct": ("{}_elbow", (0, 0, 1)),
    "elbow_flex": ("{}_wrist", (1, 0, 0)),
    "forearm_wave": ("{}_wrist", (0, 0, 1)),
    "wrist_flex": ("{}_hand", (1, 0, 0)),
    "hip_flex": ("{}_knee", (1, 0, 0)),
    "hip_abduct": ("{}_knee", (0, 0, 1)),
    "knee_flex": ("{}_ankle", (-1, 0, 0)),
    "ankle_flex": ("{}_foot", (1, 0, 0)),
    "spine_flex": ("spine", (-1, 0, 0)),
    "spine_twist": ("spine", (0, 1, 0)),
    "spine_side": ("spine", (0, 0, -1)),
    "chest_flex": ("shoulder_center", (-1, 0, 0)),
    "neck_flex": ("head", (-1, 0, 0)),
}
# fmt: off
_BODY_REST = np.array(
    [
        [0, 0.60, 0],
        [0, 0.42, 0],
        [0, 0.07, 0],
        [0, 0, 0],
        [-0.17, 0.30, 0],
        [-0.21, 0.03, 0],
        [-0.21, -0.20, 0],
        [-0.21, -0.28, 0],
        [0.17, 0.30, 0],
        [0.21, 0.03, 0],
        [0.21, -0.20, 0],
        [0.21, -0.28, 0],
        [-0.075, -0.075, 0],
        [-0.08, -0.54, 0],
        [-0.075, -0.90, 0],
        [-0.08, -0.97, -0.05],
        [0.075, -0.075, 0],
        [0.08, -0.54, 0],
        [0.075, -0.90, 0],
        [0.08, -0.97, -0.05],
    ]
)  # (20, 3), metres
_HAND_REST = np.array(
    [
        [0, 0, 0],
        [-0.030, 0.030, -0.005],
        [-0.052, 0.055, -0.012],
        [-0.068, 0.080, -0.016],
        [-0.080, 0.102, -0.018],
        [-0.024, 0.092, 0],
        [-0.028, 0.132, 0],
        [-0.030, 0.156, 0],
        [-0.031, 0.176, 0],
        [-0.002, 0.095, 0],
        [-0.002, 0.140, 0],
        [-0.002, 0.167, 0],
        [-0.002, 0.190, 0],
        [0.018, 0.088, 0],
        [0.021, 0.129, 0],
        [0.023, 0.154, 0],
        [0.024, 0.175, 0],
        [0.035, 0.078, 0],
        [0.040, 0.108, 0],
        [0.043, 0.127, 0],
        [0.045, 0.144, 0],
    ]
)  # (21, 3), right hand, palm towards the camera
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
    return _Topology(
        tuple(names),
        tuple(bones),
        offsets,
        np.array(frame),
        np.array(roots),
        levels,
        chan,
        base,
        active,
        moving,
        **fields,
    )


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
        return _build(
            UTD_MHAD_JOINTS,
            UTD_MHAD_BONES,
            _BODY_REST,
            _body_spec,
            {"shoulder_abduct": 0.12, "elbow_flex": 0.2, "knee_flex": 0.05},
            kinds=_BODY_KINDS,
            sides=("right", "left"),
            feet=(14, 15, 18, 19),
            origin=(0, -0.1, 2.8),
            spread=(0.4, 0.1, 0.4),
            group=np.arange(len(UTD_MHAD_BONES)),
            coords=_BODY_COORDS,
        )
    sides = ("right",) if name == "hand" else ("left", "right")
    names = [f"{s}_{n}" if len(sides) > 1 else n for s in sides for n in HAND_LANDMARKS]
    bones = [(p + 21 * h, c + 21 * h) for h in range(len(sides)) for p, c in HAND_BONES]
    rest = np.concatenate([_HAND_REST * ((-1, 1, 1) if s == "left" else 1) for s in sides])
    return _build(
        names,
        bones,
        rest,
        functools.partial(_hand_spec, sides),
        {f"curl{f}": 0.15 for f in range(5)} | {"pos_x": 0.12},
        kinds=_HAND_KINDS,
        sides=sides,
        feet=(),
        origin=(0, 0, 0.6),
        spread=(0.1, 0.1, 0.1),
        group=np.tile(np.arange(len(HAND_BONES)), len(sides)),
        coords=_HAND_COORDS,
    )


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
