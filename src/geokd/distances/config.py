"""The distance kernel's settings (:class:`DistanceConfig`): the one place their defaults are
written. ``geokd.settings.DistanceSettings`` (the config's ``distances`` section) extends it;
the kernel's functions take these defaults by reference."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DistanceConfig:
    """How distance matrices are computed.

    Attributes
    ----------
    block_size : int
        Rows and columns per distance block, one workflow job each (default 64).
    window : int or None
        Sakoe-Chiba band in frames; None: no band, as in the paper (default).
    backend : {"cpu", "torch", "cuda", "auto"}
        Kernel of the blocks (default ``"cpu"``: numba).
    precision : {"float64", "float32"}
        Precision of the frame costs (default ``"float64"``; DTW sums and matrices are
        float64 either way).
    frames : int or None
        Frame budget: every sequence resampled in time (linear interpolation) to this many
        frames before DTW, so a pair costs ``frames**2`` cells; None: all frames (default).
    """

    block_size: int = 64
    window: int | None = None
    backend: str = "cpu"
    precision: str = "float64"
    frames: int | None = None
