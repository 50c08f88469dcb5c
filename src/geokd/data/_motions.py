"""The bank of motion primitives the synthetic classes are composed of (waveforms on a phase
grid and the joint-angle channels they drive), for bodies and hands."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_G = 257  # phase grid on which class templates are tabulated
_PHI = np.linspace(0.0, 1.0, _G)


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
_BODY_KINDS: Kinds = {
    "arm_raise": lambda g: [
        (_win(g), {"shoulder_flex": _u(g, 1.3, 2.8), "elbow_flex": _u(g, 0, 0.6)})
    ],
    "arm_circle": lambda g: _circle(
        g, {"shoulder_flex": _u(g, 1, 1.6)}, "shoulder_flex", "shoulder_abduct", (0.4, 0.8)
    ),
    "kick": lambda g: [
        (_win(g) * _pulse(g, (1, 2)), {"hip_flex": _u(g, 0.8, 1.5), "knee_flex": _u(g, 0.2, 0.8)})
    ],
    "squat": lambda g: [
        (
            _win(g) * _pulse(g, (1, 2)),
            {
                k: w * _u(g, 0.5, 1)
                for k, w in (
                    ("both_hip_flex", 1.3),
                    ("both_knee_flex", 2.2),
                    ("both_ankle_flex", 0.9),
                    ("spine_flex", 0.4),
                    ("both_shoulder_flex", 1.0),
                )
            },
        )
    ],
    "arm_swing": lambda g: [
        (_win(g) * _osc(g, (1, 1.5, 2, 3)), {"shoulder_flex": _u(g, 0.5, 1)}),
        (_win(g), {"shoulder_flex": _u(g, 0, 0.4), "elbow_flex": _u(g, 0.2, 0.6)}),
    ],
    "torso_bend": lambda g: [
        (
            _win(g),
            {
                "spine_flex": _u(g, 0.5, 1.2),
                "chest_flex": _u(g, 0, 0.4),
                "both_shoulder_flex": _u(g, 0, 0.6),
            },
        )
    ],
    "wave": lambda g: [
        (_win(g), {"shoulder_abduct": _u(g, 2, 2.6), "elbow_flex": _u(g, 0.8, 1.5)}),
        (_win(g) * _osc(g, (2, 3, 4)), {"forearm_wave": _u(g, 0.3, 0.7)}),
    ],
    "elbow_curl": lambda g: [
        (_win(g) * _pulse(g, (1, 2, 3)), {"elbow_flex": _u(g, 1.2, 2.2)}),
        (_win(g), {"shoulder_flex": _u(g, 0, 0.5)}),
    ],
    "arm_abduct": lambda g: [
        (_win(g), {"shoulder_abduct": _u(g, 1.2, 2.6), "elbow_flex": _u(g, 0, 0.5)})
    ],
    "punch": lambda g: [
        (_win(g), {"shoulder_flex": _u(g, 1.3, 1.7), "elbow_flex": _u(g, 1.2, 1.8)}),
        (_win(g) * _pulse(g, (1, 2, 3)), {"elbow_flex": -_u(g, 1, 1.6)}),
    ],
    "torso_twist": lambda g: [(_win(g) * _osc(g, (1, 2)), {"spine_twist": _u(g, 0.3, 0.8)})],
    "step": lambda g: [
        (_win(g), {"step": _u(g, 0.2, 0.45)}),
        (_win(g) * _pulse(g, (2,)), {"hip_abduct": _u(g, 0.3, 0.6), "knee_flex": 0.5}),
    ],
    "side_bend": lambda g: [(_win(g), {"spine_side": _u(g, 0.25, 0.5), "shoulder_abduct": 0.3})],
    "head_nod": lambda g: [
        (_win(g) * _osc(g, (2, 3)), {"neck_flex": _u(g, 0.2, 0.5)}),
        (_win(g), {"chest_flex": _u(g, 0, 0.3)}),
    ],
}
_HAND_KINDS: Kinds = {
    "fist": lambda g: [
        (_win(g) * _pulse(g, (1, 2, 3)), {f"curl{i}": _u(g, 0.7, 1.1) for i in range(5)})
    ],
    "point": lambda g: _shape(g, {1}),
    "v_sign": lambda g: _shape(g, {1, 2}),
    "pinch": lambda g: [
        (_win(g) * _pulse(g, (1, 2, 3)), {"curl0": _u(g, 0.5, 0.8), "curl1": _u(g, 0.6, 1)})
    ],
    "spread": lambda g: [(_win(g) * _pulse(g, (1, 2, 3)), {"spread": _u(g, 0.15, 0.35)})],
    "wiggle": lambda g: [
        (_win(g) * _pulse(g, (2, 3), lag=0.6 * i), {f"curl{i}": _u(g, 0.4, 0.8)})
        for i in range(1, 5)
    ],
    "thumb_up": lambda g: _shape(g, {0}, wrist_z=_u(g, 1, 1.5)),
    "wrist_twist": lambda g: [(_win(g) * _osc(g, (1, 2, 3)), {"wrist_y": _u(g, 0.5, 1.2)})],
    "wrist_flex": lambda g: [(_win(g) * _osc(g, (1, 2, 3)), {"wrist_x": _u(g, 0.4, 0.9)})],
    "tap": lambda g: [
        (_win(g) * _pulse(g, (2, 3, 4)), {str(g.choice(["pos_y", "pos_z"])): _u(g, 0.02, 0.06)})
    ],
    "circle": lambda g: _circle(g, {}, "pos_x", "pos_y", (0.04, 0.1)),
    "move": lambda g: [
        (
            _win(g),
            dict(
                zip(
                    ("pos_x", "pos_y", "pos_z"),
                    _u(g, 0.08, 0.25) * _unit(g.standard_normal(3)),
                    strict=True,
                )
            ),
        )
    ],
    "shake": lambda g: [(_win(g) * _osc(g, (3, 4, 5)), {"pos_x": _u(g, 0.02, 0.05)})],
}
