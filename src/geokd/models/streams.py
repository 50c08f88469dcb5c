"""The student's input: body-frame coordinates, resampling, and joint/bone/velocity streams.

Once per sequence (numpy): :func:`body_frame` expresses the landmarks in a canonical body
frame and :func:`resample` brings them to a fixed length. Per batch (torch, inside the model,
after augmentation of the joints): :func:`stream_features` computes the streams and
concatenates them per frame. Because every stream is computed from the augmented joints,
a rotation of the joints rotates bones and velocities about the origin exactly like joints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.skeleton import HAND_BONES, NTU_BONES, NTU_JOINTS, UTD_MHAD_BONES, UTD_MHAD_JOINTS

_J = {name: i for i, name in enumerate(UTD_MHAD_JOINTS)}
_N = {name: i for i, name in enumerate(NTU_JOINTS)}
#: what a body frame is built from, per skeleton (Kinect v1's 20 joints, Kinect v2's 25, and
#: two v2 bodies, 50, framed by the first): hip centre, shoulder centre, left and right hip,
#: left and right shoulder
_FRAME_JOINTS = {
    len(UTD_MHAD_JOINTS): [_J[n] for n in ("hip_center", "shoulder_center", "left_hip",
                                           "right_hip", "left_shoulder", "right_shoulder")],
    len(NTU_JOINTS): [_N[n] for n in ("spine_base", "spine_shoulder", "left_hip", "right_hip",
                                      "left_shoulder", "right_shoulder")],
}  # fmt: skip
_FRAME_JOINTS[2 * len(NTU_JOINTS)] = _FRAME_JOINTS[len(NTU_JOINTS)]
#: glitch frames (about 0.2 % of real Kinect frames) take no part in the body frame
MIN_HIP_WIDTH = 0.08  # metres
MAX_ABS_COS_SPINE_HIPS = 0.5


def bones_for(n_landmarks: int) -> tuple[tuple[int, int], ...]:
    """(parent, child) pairs of the skeleton with ``n_landmarks``: the 20-joint Kinect body,
    one MediaPipe hand (21) or two hands (42), the 25-joint NTU (Kinect v2) body or two of them
    (50: body 1's joints, then body 2's); ValueError otherwise."""
    if n_landmarks == len(UTD_MHAD_JOINTS):
        return tuple(UTD_MHAD_BONES)
    if n_landmarks in (len(NTU_JOINTS), 2 * len(NTU_JOINTS)):
        k = len(NTU_JOINTS)
        return tuple((a + k * b, c + k * b) for b in range(n_landmarks // k) for a, c in NTU_BONES)
    if n_landmarks in (21, 42):
        hands = n_landmarks // 21
        return tuple((a + 21 * h, b + 21 * h) for h in range(hands) for a, b in HAND_BONES)
    raise ValueError(f"no known skeleton with {n_landmarks} landmarks for the bones stream")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _rotation(up: np.ndarray, lateral: np.ndarray) -> np.ndarray:
    """Rows x, y, z of the body frame: y = up, x = lateral made orthogonal to y, z = x cross y."""
    y = _unit(up)
    x = _unit(lateral - (lateral * y).sum(-1, keepdims=True) * y)
    return np.stack([x, y, np.cross(x, y)], axis=-2)  # (..., 3, 3)


def body_frame(seq: np.ndarray, per_frame: bool = False) -> np.ndarray:
    """A Kinect body sequence (T, K, 3) in its canonical body frame: K = 20 (Kinect v1,
    UTD-MHAD), 25 (Kinect v2, NTU RGB+D) or 50 (two v2 bodies: both moved by the frame of the
    first, so that their relative position is kept).

    Up is hip centre -> shoulder centre; lateral is the sum of the unit left -> right hip and
    shoulder vectors. A *glitch* frame (hip width under 8 cm, or spine and hip axis closer
    than 60 degrees to parallel) takes no part: with ``per_frame=False`` the rotation is built
    from the mean up and lateral unit vectors over the valid frames and the origin is their mean
    hip centre (the body's motion through space is kept); with ``per_frame=True`` every frame
    is rotated and centred on its own hip centre, a glitch frame reusing the previous valid
    frame's rotation (the first valid one for leading glitches). No valid frame at all: every
    frame counts. Coordinates are divided by the median torso length over the valid frames.

    Parameters
    ----------
    seq : ndarray, shape (T, K, 3)
    per_frame : bool

    Returns
    -------
    ndarray of float64, shape (T, K, 3): x = body left -> right, y = up, z = x cross y.
    """
    seq = np.asarray(seq, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[2] != 3 or seq.shape[1] not in _FRAME_JOINTS:
        raise ValueError(
            f"body frames need Kinect sequences (T, K, 3), K in {sorted(_FRAME_JOINTS)}, "
            f"got {seq.shape}"
        )
    centre, shoulder, left_hip, right_hip, left_shoulder, right_shoulder = _FRAME_JOINTS[
        seq.shape[1]
    ]
    hip = seq[:, centre]  # (T, 3)
    up = seq[:, shoulder] - hip  # (T, 3)
    hips = seq[:, right_hip] - seq[:, left_hip]  # (T, 3)
    shoulders = seq[:, right_shoulder] - seq[:, left_shoulder]  # (T, 3)
    lateral = _unit(hips) + _unit(shoulders)  # (T, 3)
    cos = np.abs((_unit(up) * _unit(hips)).sum(-1))  # (T,)
    valid = (np.linalg.norm(hips, axis=-1) >= MIN_HIP_WIDTH) & (cos <= MAX_ABS_COS_SPINE_HIPS)
    valid &= np.linalg.norm(up, axis=-1) > 1e-6
    if not valid.any():
        valid = np.ones_like(valid)
    if per_frame:
        R_all = _rotation(up, lateral)  # (T, 3, 3)
        last = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
        last[last < 0] = np.flatnonzero(valid)[0]  # leading glitches: the first valid frame
        R, origin = R_all[last], hip  # (T, 3, 3), (T, 3)
    else:
        R = _rotation(_unit(up)[valid].mean(0), lateral[valid].mean(0))[None]  # (1, 3, 3)
        origin = hip[valid].mean(0)[None]  # (1, 3)
    out = np.einsum("tij,tkj->tki", np.broadcast_to(R, (len(seq), 3, 3)), seq - origin[:, None])
    torso = float(np.median(np.linalg.norm(up[valid], axis=-1)))
    return out / torso if torso > 1e-6 else out


def n_stream_features(streams: Sequence[str], n_landmarks: int) -> int:
    """Width of one frame of :func:`stream_features`."""
    n_bones = len(bones_for(n_landmarks)) if "bones" in streams else 0
    per = {"joints": n_landmarks, "bones": n_bones, "velocity": n_landmarks}
    return 3 * sum(per[s] for s in streams)


def stream_features(
    x: torch.Tensor,
    lengths: torch.Tensor,
    streams: Sequence[str] = ("joints",),
    bones: Sequence[tuple[int, int]] = (),
    velocity_scale: float = 1.0,
) -> torch.Tensor:
    """Per-frame features from joints: ``streams`` in order, concatenated.

    Parameters
    ----------
    x : Tensor, shape (B, T, K*3)
        Joints, zero after each length.
    lengths : Tensor of int64, shape (B,)
    streams : subset of ("joints", "bones", "velocity")
        ``bones``: child minus parent for each of ``bones``; ``velocity``: next frame minus
        this frame, times ``velocity_scale``, 0 at the last valid frame.

    Returns
    -------
    Tensor, shape (B, T, F); zero on padded frames.
    """
    if list(streams) == ["joints"]:
        return x  # the plain student: no copy
    B, T, F = x.shape
    j = x.reshape(B, T, F // 3, 3)  # (B, T, K, 3)
    valid = (torch.arange(T, device=x.device)[None] < lengths[:, None]).to(x.dtype)  # (B, T)
    parts = []
    for name in streams:
        if name == "joints":
            parts.append(j)
        elif name == "bones":
            parent = torch.tensor([a for a, _ in bones], device=x.device)
            child = torch.tensor([b for _, b in bones], device=x.device)
            parts.append(j.index_select(2, child) - j.index_select(2, parent))  # (B, T, nb, 3)
        else:
            step = torch.cat([j[:, 1:] - j[:, :-1], torch.zeros_like(j[:, :1])], dim=1)
            has_next = torch.cat([valid[:, 1:], torch.zeros_like(valid[:, :1])], dim=1)
            parts.append(step * (has_next * velocity_scale)[:, :, None, None])
    out = torch.cat([p.reshape(B, T, -1) for p in parts], dim=-1)  # (B, T, F')
    return out * valid[:, :, None]
