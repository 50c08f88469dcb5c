"""The transformer student: data preparation, augmentation and the model.

Input contract: a sequence is a (T, K, 3) array of landmarks (the store's frames, natural time
order: frame ``t`` is ``seq[t]``). :func:`prepare` turns a list of them into one zero-padded
float32 tensor ``X`` of shape (N, T_max, K*3) (each frame's landmarks flattened row-major,
``x0 y0 z0 x1 ...``) and the valid lengths (N,).

Documented choices
------------------
* **Normalisation** (``normalise=True``): per *sequence*, not per frame. The centre is the mean
  landmark position over all frames and landmarks of the sequence; the scale is the RMS distance
  of all points to that centre. ``(x - centre) / scale`` is invariant to a translation and a
  uniform scaling of the whole sequence but keeps the body's motion through space within the
  sequence (a per-frame centre would erase steps and jumps). A degenerate sequence (all points
  equal) gets scale 1.
* **Length**: sequences are zero-padded to ``max_frames``. A longer sequence is resampled
  uniformly: frames ``round(linspace(0, T - 1, max_frames))`` are kept (nearest-frame
  subsampling, no interpolation, first and last frames kept).
* **Padding**: with ``padding_mask=True`` padded frames are excluded from attention
  (``src_key_padding_mask``) and from pooling, so their values never affect the output.
* **Augmentation** (training only, all off by default): see :func:`augment`.

The :meth:`StudentConfig.paper` preset reproduces the original student (no input projection,
no positional encoding, no padding mask, raw coordinates, post-LN, ReLU) on natural frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..data.resample import resample
from .config import POOLINGS, POSITIONALS, StudentConfig
from .nngk import NNGKHead
from .streams import body_frame, bones_for, n_stream_features, stream_features

__all__ = [
    "POOLINGS",
    "POSITIONALS",
    "SkeletonTransformer",
    "StudentConfig",
    "augment",
    "normalise_sequence",
    "padding_mask",
    "prepare",
]


def normalise_sequence(seq: np.ndarray) -> np.ndarray:
    """Centre a (T, K, 3) sequence on its mean point and divide by the RMS distance to it.

    Parameters
    ----------
    seq : ndarray, shape (T, K, 3)

    Returns
    -------
    ndarray of float64, shape (T, K, 3)
        Zero mean over all points, RMS distance 1 (unchanged scale if degenerate).
    """
    seq = np.asarray(seq, dtype=np.float64)
    centred = seq - seq.reshape(-1, 3).mean(axis=0)  # (T, K, 3)
    rms = float(np.sqrt((centred**2).sum(axis=-1).mean()))
    return centred / rms if rms > 0 else centred


def resample_indices(n_frames: int, max_frames: int) -> np.ndarray:
    """Frame indices kept from a sequence of ``n_frames``: all, or ``max_frames`` uniform ones."""
    if n_frames <= max_frames:
        return np.arange(n_frames)
    return np.round(np.linspace(0, n_frames - 1, max_frames)).astype(np.int64)


def prepare(
    sequences: Sequence[np.ndarray],
    max_frames: int = 128,
    normalise: bool = True,
    frame: str = "none",
    resampling: str = "nearest",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T, K, 3) sequences into a zero-padded model input.

    Parameters
    ----------
    sequences : sequence of ndarray, each shape (T_i, K, 3)
        Same ``K`` for all.
    max_frames : int
        Padded length ``T_max``; longer sequences are resampled uniformly.
    normalise : bool
        Apply :func:`normalise_sequence` (before resampling, to the whole sequence) when
        ``frame`` is ``"none"``.
    frame : {"none", "body_sequence", "body_frame"}
        Body-frame coordinates (:func:`geokd.models.streams.body_frame`) instead.
    resampling : {"nearest", "linear"}
        :func:`geokd.data.resample.resample`.

    Returns
    -------
    X : Tensor of float32, shape (N, T_max, K*3)
        Frames flattened row-major; zeros after each sequence's length.
    lengths : Tensor of int64, shape (N,)
        Valid frames per sequence, ``1 <= lengths <= T_max``.
    """
    if len(sequences) == 0:
        raise ValueError("no sequences to prepare")
    k = np.asarray(sequences[0]).shape[1]
    X = np.zeros((len(sequences), max_frames, k * 3), dtype=np.float32)  # (N, T_max, K*3)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for i, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.float64)
        if seq.ndim != 3 or seq.shape[1:] != (k, 3) or seq.shape[0] < 1:
            raise ValueError(f"sequence {i}: expected shape (T >= 1, {k}, 3), got {seq.shape}")
        if frame != "none":
            seq = body_frame(seq, per_frame=frame == "body_frame")
        elif normalise:
            seq = normalise_sequence(seq)
        seq = resample(seq, max_frames, resampling)  # (T_i', K, 3)
        lengths[i] = seq.shape[0]
        X[i, : seq.shape[0]] = seq.reshape(seq.shape[0], k * 3)
    return torch.from_numpy(X), torch.from_numpy(lengths)


def padding_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Boolean mask (B, T) that is True at padded steps ``t >= lengths[b]``."""
    return torch.arange(n_steps, device=lengths.device)[None, :] >= lengths[:, None]  # (B, T)


def augment(
    X: torch.Tensor,
    lengths: torch.Tensor,
    cfg: StudentConfig,
    generator: torch.Generator | Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training augmentation of a batch; a no-op when every ``augment_*`` is 0.

    Order: frame drop, time warp, rotation about the vertical (y) axis and scaling, both about
    the centre of each sequence's valid points. Padded frames stay zero. All draws come from
    ``generator`` (CPU), so a seeded generator reproduces the batch exactly.

    Parameters
    ----------
    X : Tensor, shape (B, T, K*3)
    lengths : Tensor of int64, shape (B,)
    cfg : StudentConfig
    generator : torch.Generator, or a sequence of G of them
        With G generators the batch is G equal blocks of B / G rows (the members of a
        batched training) and block ``g`` draws from ``generator[g]`` exactly what a batch of
        B / G rows draws from one generator.

    Returns
    -------
    X : Tensor, shape (B, T, K*3)
    lengths : Tensor of int64, shape (B,)
    """
    B, T, F = X.shape
    dev = X.device
    x = X.reshape(B, T, F // 3, 3)  # (B, T, K, 3)
    valid = ~padding_mask(lengths, T)  # (B, T)

    gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
    if B % len(gens):
        raise ValueError(f"{B} rows do not split into {len(gens)} equal blocks")

    def rand(*shape: int) -> torch.Tensor:  # shape[0] == B
        rest = shape[1:]
        draws = [torch.rand(B // len(gens), *rest, generator=g) for g in gens]
        return (draws[0] if len(draws) == 1 else torch.cat(draws)).to(dev)

    if cfg.augment_frame_drop > 0:
        keep = (rand(B, T) >= cfg.augment_frame_drop) & valid  # (B, T)
        keep[:, 0] |= ~keep.any(dim=1)  # at least one frame
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept frames first
        x = torch.gather(x, 1, order[:, :, None, None].expand_as(x))
        lengths = keep.sum(dim=1)
        valid = ~padding_mask(lengths, T)
    if cfg.augment_time_warp > 0:
        c = cfg.augment_time_warp * (2 * rand(B, 1) - 1)  # (B, 1)
        last = (lengths - 1).to(x.dtype)[:, None]  # (B, 1)
        u = torch.arange(T, device=dev, dtype=x.dtype)[None] / last.clamp(min=1)  # (B, T)
        pos = (last * (u + c * torch.sin(math.pi * u))).clamp(min=0)
        pos = torch.minimum(pos, last)  # (B, T) source positions in [0, L-1]
        lo = pos.floor().long()
        hi = torch.minimum(lo + 1, (lengths - 1)[:, None])
        w = (pos - lo)[:, :, None, None]  # (B, T, 1, 1)
        x_lo = torch.gather(x, 1, lo[:, :, None, None].expand_as(x))
        x_hi = torch.gather(x, 1, hi[:, :, None, None].expand_as(x))
        x = (1 - w) * x_lo + w * x_hi
    if cfg.augment_rotate > 0 or cfg.augment_scale > 0:
        vm = valid[:, :, None, None].to(x.dtype)  # (B, T, 1, 1)
        n_points = (vm.sum(dim=(1, 2, 3)) * x.shape[2]).clamp(min=1)  # (B,)
        centre = (x * vm).sum(dim=(1, 2)) / n_points[:, None]  # (B, 3)
        x = x - centre[:, None, None]
        if cfg.augment_rotate > 0:  # about y: x' = cos x + sin z, z' = cos z - sin x
            a = math.radians(cfg.augment_rotate) * (2 * rand(B) - 1)  # (B,)
            cos, sin = (t.to(x.dtype)[:, None, None] for t in (a.cos(), a.sin()))  # (B, 1, 1)
            px, py, pz = x.unbind(-1)  # (B, T, K) each
            x = torch.stack([cos * px + sin * pz, py, cos * pz - sin * px], dim=-1)
        if cfg.augment_scale > 0:
            s = 1 + cfg.augment_scale * (2 * rand(B) - 1)  # (B,)
            x = x * s[:, None, None, None].to(x.dtype)
        x = x + centre[:, None, None]
    x = x * valid[:, :, None, None].to(x.dtype)  # padded frames back to zero
    return x.reshape(B, T, F), lengths


def sinusoidal_encoding(n_steps: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine positional encoding of "Attention is all you need", (T, d_model)."""
    pos = torch.arange(n_steps, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    pe = torch.zeros(n_steps, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return pe


class SkeletonTransformer(nn.Module):
    """Transformer encoder classifier over landmark sequences (batch first).

    input LayerNorm (optional) -> linear projection K*3 -> d_model (or identity) -> positional
    encoding -> dropout -> ``nn.TransformerEncoder`` with ``src_key_padding_mask`` -> pooling
    -> LayerNorm -> Linear(d_model, n_classes). ``in_features``, ``n_classes`` and ``cfg`` are
    kept as attributes (checkpoints rebuild the model from them).

    Parameters
    ----------
    in_features : int
        K*3.
    n_classes : int
        Number of classes.
    cfg : StudentConfig
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        cfg: StudentConfig | None = None,
        n_memory: int = 0,
    ):
        super().__init__()
        cfg = cfg or StudentConfig()
        self.cfg, self.in_features, self.n_classes = cfg, in_features, n_classes
        self.bones = bones_for(in_features // 3) if "bones" in cfg.streams else ()
        width = n_stream_features(cfg.streams, in_features // 3)  # per frame, all streams
        if not cfg.input_projection and cfg.d_model != width:
            raise ValueError(
                f"input_projection=False needs d_model == K*3 (all streams: {width}), "
                f"got {cfg.d_model}"
            )
        d = cfg.d_model
        self.input_norm = nn.LayerNorm(width) if cfg.input_layernorm else nn.Identity()
        self.proj = nn.Linear(width, d) if cfg.input_projection else nn.Identity()
        if cfg.positional == "sinusoidal":
            self.register_buffer("pos", sinusoidal_encoding(cfg.max_frames, d), persistent=False)
        elif cfg.positional == "learned":
            self.pos = nn.Parameter(torch.randn(cfg.max_frames, d) * 0.02)
        else:
            self.pos = None
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02) if cfg.pooling == "cls" else None
        self.dropout = nn.Dropout(cfg.dropout) if cfg.input_projection else nn.Identity()
        layer = nn.TransformerEncoderLayer(
            d,
            cfg.n_heads,
            cfg.ff_dim,
            cfg.dropout,
            activation=cfg.activation,
            batch_first=True,
            norm_first=cfg.norm_first,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, n_classes))
        if cfg.head == "nngk":  # the linear layer stays unused: one layout for every head
            self.nngk = NNGKHead(n_memory, d, n_classes, cfg.nngk_k, cfg.nngk_floor)
        else:
            self.nngk = None

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        return_embedding: bool = False,
        exclude: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Class logits (log probabilities for the NNGK head), and the embedding.

        Parameters
        ----------
        x : Tensor, shape (B, T, K*3)
            ``T <= max_frames``; zero-padded after each length.
        lengths : Tensor of int64, shape (B,), optional
            Valid frames; default all ``T``. Ignored for masking when ``padding_mask=False``.

        return_embedding : bool
            Also return the embedding (B, d_model): the LayerNorm'd pooled representation.
        exclude : Tensor of int64, shape (B,), optional
            NNGK head in training: the memory row of each query, left out.

        Returns
        -------
        Tensor, shape (B, n_classes) (and the embedding)
        """
        B, T, _ = x.shape
        if T > self.cfg.max_frames:
            raise ValueError(f"{T} frames > max_frames={self.cfg.max_frames}")
        if lengths is None or not self.cfg.padding_mask:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        mask = padding_mask(lengths, T)  # (B, T) True = padding
        x = stream_features(x, lengths, self.cfg.streams, self.bones, self.cfg.velocity_scale)
        h = self.proj(self.input_norm(x))  # (B, T, C)
        if self.pos is not None:
            h = h + self.pos[:T]  # (B, T, C)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(B, -1, -1), h], dim=1)  # (B, 1+T, C)
            mask = torch.cat([mask.new_zeros(B, 1), mask], dim=1)  # (B, 1+T)
        h = self.encoder(self.dropout(h), src_key_padding_mask=mask)  # (B, T', C)
        if self.cfg.pooling == "cls":
            pooled = h[:, 0]  # (B, C)
        elif self.cfg.pooling == "last":
            pooled = h[torch.arange(B, device=x.device), lengths - 1]  # (B, C)
        else:
            keep = (~mask)[:, :, None].to(h.dtype)  # (B, T, 1)
            pooled = (h * keep).sum(dim=1) / lengths[:, None].to(h.dtype)  # (B, C)
        e = self.head[0](pooled)  # (B, C) embedding
        z = self.nngk(e, exclude) if self.nngk is not None else self.head[1](e)  # (B, n_classes)
        return (z, e) if return_embedding else z
