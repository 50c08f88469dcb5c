"""Several students as one module: stacked weights, one forward pass for all of them.

A :class:`BatchedStudent` holds ``G`` members of one :class:`.student.SkeletonTransformer`
architecture (same config, input width, classes and memory size). Every parameter is stacked
along a leading member axis and all of them live in one tensor ``flat`` of shape (G, P), each
member's parameters in its own row, so that the optimiser, the gradient clipping and the
selection of a member's best epoch are row operations. The forward pass computes every
member's output in the same tensor operations (grouped matrix products), which is what makes
training several seeds at once faster than one after the other: a step of this small model is
dominated by per-operation costs, not by arithmetic.

The forward pass is the same function as ``SkeletonTransformer.forward`` in training mode (the
``nn.TransformerEncoderLayer`` slow path: pre- or post-LN, attention dropout on the weights,
dropout after attention, inside and after the feed-forward block), written out with grouped
operations; :meth:`member` rebuilds member ``g`` as a plain ``SkeletonTransformer`` (its state
dict has the same keys and shapes), which is what checkpoints hold. Dropout masks come from
:class:`Noise`: one generator per member, so a member's randomness does not depend on the other
members of its group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .nngk import nngk_log_proba
from .streams import stream_features
from .student import SkeletonTransformer, padding_mask


class Noise:
    """Dropout masks of one forward pass, drawn per member from its own generator.

    A member's generator is a NumPy ``SFC64`` bit generator (fast: about 0.6 ns per value,
    several times ``torch.bernoulli_`` on a CPU); each value keeps its unit with probability
    ``1 - p`` (a uniform 32-bit integer at or above ``round(p * 2**32)``: ``p`` to 2e-10) and
    is ``1 / (1 - p)`` or 0, as ``torch.nn.functional.dropout``'s mask. ``draw(n)`` draws ``n``
    values per member; ``take(shape)`` hands out the next ``prod(shape)`` of them as a
    (G, *shape) view.
    """

    def __init__(self, generators: Sequence[np.random.BitGenerator], p: float):
        self.generators, self.p = list(generators), p
        self._threshold = np.uint32(min(round(p * 2**32), 2**32 - 1))
        self._scale = np.float32(1 / (1 - p))
        self._buf: torch.Tensor | None = None
        self._at = 0

    def draw(self, n: int, device: torch.device) -> None:
        buf = np.empty((len(self.generators), n), dtype=np.float32)  # (G, n)
        for row, gen in zip(buf, self.generators, strict=True):
            bits = gen.random_raw((n + 1) // 2).view(np.uint32)[:n]
            np.multiply(bits >= self._threshold, self._scale, out=row, dtype=np.float32)
        self._buf, self._at = torch.from_numpy(buf).to(device), 0

    def take(self, shape: Sequence[int]) -> torch.Tensor:
        n = math.prod(shape)
        out = self._buf[:, self._at : self._at + n]  # (G, n)
        self._at += n
        return out.reshape(-1, *shape)


def dropout_generator(seed_word: int) -> np.random.BitGenerator:
    """The dropout generator of a member (:class:`Noise`), from a 32-bit seed word."""
    return np.random.SFC64(int(seed_word))


def generator_state(gen: np.random.BitGenerator) -> dict:
    """``gen``'s state as plain values (a resumable state holds no NumPy arrays)."""
    st = gen.state
    return {"state": [int(v) for v in st["state"]["state"]],
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}  # fmt: skip


def set_generator_state(gen: np.random.BitGenerator, state: dict) -> None:
    """Restore what :func:`generator_state` saved."""
    gen.state = {
        "bit_generator": "SFC64",
        "state": {"state": np.array(state["state"], dtype=np.uint64)},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }


def grouped_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``x @ W^T + b`` per member: x (G, N, in), weight (G, out, in), bias (G, out) or None."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))  # (G, N, out)


def _expand_to(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (G, d) parameter viewed as (G, 1, ..., 1, d) for x of shape (G, ..., d)."""
    return p.view(p.shape[0], *([1] * (x.dim() - 2)), p.shape[1])


def grouped_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis (eps 1e-5) with per-member weight and bias (G, d)."""
    y = F.layer_norm(x, x.shape[-1:])
    return torch.addcmul(_expand_to(bias, x), y, _expand_to(weight, x))


class BatchedStudent(nn.Module):
    """``G`` students of one architecture with stacked weights (module docstring).

    Parameters
    ----------
    members : sequence of SkeletonTransformer
        Their weights are copied; ``member(g)`` gives member ``g`` back.
    """

    def __init__(self, members: Sequence[SkeletonTransformer]):
        super().__init__()
        m0 = members[0]
        self.cfg, self.in_features, self.n_classes = m0.cfg, m0.in_features, m0.n_classes
        self.n_memory = 0 if m0.nngk is None else int(m0.nngk.memory.shape[0])
        self.G = len(members)
        for m in members[1:]:
            same = (m.cfg, m.in_features, m.n_classes) == (self.cfg, self.in_features, m0.n_classes)
            if not same or (m.nngk is None) != (m0.nngk is None):
                raise ValueError("members of a BatchedStudent must share one architecture")
        self.bones = m0.bones
        self._fold()
        if m0.pos is not None and not isinstance(m0.pos, nn.Parameter):
            self.register_buffer("pos_table", m0.pos.clone(), persistent=False)
        named = [dict(m.named_parameters()) for m in members]
        # the linear layer of an NNGK head is never used: kept aside, never trained
        unused = {"head.1.weight", "head.1.bias"} if m0.nngk is not None else set()
        names = [n for n in named[0] if n not in unused]
        matrices = [n for n in names if named[0][n].ndim >= 2]
        #: parameter names in the column order of ``flat``: weight matrices (ndim >= 2 in one
        #: member) first, then the 1-D ones (LayerNorm weights, biases, the NNGK log sigma)
        self.names = matrices + [n for n in names if n not in matrices]
        #: columns of ``flat`` that hold weight matrices (the ones weight decay applies to)
        self.n_matrix_columns = sum(named[0][n].numel() for n in matrices)
        self.has_nngk = m0.nngk is not None
        self.shapes = {n: tuple(named[0][n].shape) for n in self.names}
        blocks = [torch.stack([p[n].detach() for p in named]).reshape(self.G, -1) for n in names]
        order = [names.index(n) for n in self.names]
        self.flat = torch.cat([blocks[i] for i in order], dim=1).contiguous()  # (G, P)
        self.params = nn.ParameterList()
        self._index: dict[str, int] = {}
        start = 0
        for n in self.names:
            size = math.prod(self.shapes[n])
            view = self.flat[:, start : start + size].view(self.G, *self.shapes[n])
            self._index[n] = len(self.params)
            self.params.append(nn.Parameter(view))
            start += size
        self.frozen = {n: torch.stack([p[n].detach().clone() for p in named]) for n in unused}
        if m0.nngk is not None:
            self.register_buffer("memory", torch.stack([m.nngk.memory for m in members]).clone())
            self.register_buffer(
                "memory_y", torch.stack([m.nngk.memory_y for m in members]).clone()
            )

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        # keep the parameters views of `flat` on the new device
        flat = fn(self.flat)
        if flat is not self.flat:
            self.flat = flat
            start = 0
            for n in self.names:
                size = math.prod(self.shapes[n])
                view = flat[:, start : start + size].view(self.G, *self.shapes[n])
                self.params[self._index[n]] = nn.Parameter(view)
                start += size
        return out

    def p(self, name: str) -> torch.Tensor:
        """The stacked parameter ``name`` (a key of a member's state dict), (G, *shape)."""
        return self.params[self._index[name]]

    def grad_flat(self) -> torch.Tensor:
        """The gradients in ``flat``'s layout (G, P); zeros where a parameter got none."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        return torch.cat([g.reshape(self.G, -1) for g in grads], dim=1)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    # ------------------------------------------------------------------ forward
    def noise_size(self, B: int, T: int) -> int:
        """Dropout values one member needs for a batch of B sequences of T steps."""
        cfg, d = self.cfg, self.cfg.d_model
        T1 = T + (cfg.pooling == "cls")
        per_layer = B * cfg.n_heads * T1 * T1 + B * T1 * (2 * d + cfg.ff_dim)
        return B * T1 * d * cfg.input_projection + cfg.n_layers * per_layer

    def _fold(self) -> None:
        """The linear map from joints to the projected streams (:meth:`_project`)."""
        cfg, K = self.cfg, self.in_features // 3
        self.folded = cfg.input_projection and not cfg.input_layernorm
        self._cols: dict[str, slice] = {}
        start = 0
        for name in cfg.streams:
            n = 3 * (len(self.bones) if name == "bones" else K)
            self._cols[name], start = slice(start, start + n), start + n
        if "bones" in cfg.streams:  # bones = joints @ Mb^T (child minus parent, per axis)
            Mb = torch.zeros(3 * len(self.bones), 3 * K)
            for i, (parent, child) in enumerate(self.bones):
                for c in range(3):
                    Mb[3 * i + c, 3 * child + c] = 1.0
                    Mb[3 * i + c, 3 * parent + c] = -1.0
            self.register_buffer("bone_map", Mb, persistent=False)

    def _project(self, x: torch.Tensor, lengths: torch.Tensor, shared: bool) -> torch.Tensor:
        """The input projection of the streams, (G, B, T, d), without building the streams:
        they are linear in the joints, so ``streams @ W^T = joints @ Wa^T + velocity term``
        with ``Wa = W_joints + W_bones Mb`` and the velocity term the next frame's minus this
        frame's ``joints @ W_velocity^T`` (times ``velocity_scale``, 0 at a last valid frame).
        The same function as ``stream_features`` then ``proj`` (to rounding).

        x : (G, B, T, K*3), or (B, T, K*3) shared by every member; lengths (G, B).
        """
        G, cfg = self.G, self.cfg
        B, T = x.shape[-3], x.shape[-2]
        W, bias = self.p("proj.weight"), self.p("proj.bias")  # (G, d, width), (G, d)
        d = W.shape[1]
        Wa = None
        if "joints" in cfg.streams:
            Wa = W[:, :, self._cols["joints"]]
        if "bones" in cfg.streams:
            Wb = torch.matmul(W[:, :, self._cols["bones"]], self.bone_map)  # (G, d, K*3)
            Wa = Wb if Wa is None else Wa + Wb
        parts = ([Wa] if Wa is not None else []) + (
            [W[:, :, self._cols["velocity"]]] if "velocity" in cfg.streams else []
        )
        Wx = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (G, k*d, K*3)
        # a shared x: each member's product has the shape it has alone (a member's bits do not
        # depend on its group; one (B*T, K*3) @ (K*3, G*k*d) product would round otherwise)
        out = grouped_linear(x.reshape(-1, B * T, x.shape[-1]).expand(G, -1, -1), Wx, None)
        out = out.reshape(G, B, T, -1)
        h = out[..., :d] if Wa is not None else None
        if "velocity" in cfg.streams:
            C = out[..., -d:]
            v = C[:, :, 1:] - C[:, :, :-1]  # (G, B, T-1, d)
            if cfg.velocity_scale != 1.0:
                v = v * cfg.velocity_scale
            if bool((lengths < T).any()):  # no velocity at a last valid frame
                has_next = torch.arange(1, T, device=x.device) < lengths[..., None]
                v = v * has_next[..., None].to(v.dtype)
            v = F.pad(v, (0, 0, 0, 1))
            h = v if h is None else h + v
        return h + bias[:, None, None, :]

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        noise: Noise | None = None,
        exclude: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (G, B, C) (log probabilities for the NNGK head) and embeddings (G, B, d).

        Parameters
        ----------
        x : Tensor, shape (G, B, T, K*3), or (B, T, K*3) for every member
            Member ``g``'s batch is ``x[g]`` (or ``x``).
        lengths : Tensor of int64, shape (G, B) (or (B,) with a shared x), optional
        noise : Noise, optional
            Dropout masks (training); None: no dropout (evaluation).
        exclude : Tensor of int64, shape (G, B), optional
            NNGK head in training: the memory row of each query, left out.
        """
        cfg, G = self.cfg, self.G
        shared = x.dim() == 3
        B, T, Fin = x.shape[-3:]
        if T > cfg.max_frames:
            raise ValueError(f"{T} frames > max_frames={cfg.max_frames}")
        if lengths is None or not cfg.padding_mask:
            lengths = torch.full((G, B), T, dtype=torch.long, device=x.device)
        lengths = lengths.expand(G, B)
        if noise is not None:
            noise.draw(self.noise_size(B, T), x.device)
        if self.folded:
            h = self._project(x, lengths, shared)  # (G, B, T, d)
        else:
            xs = x.expand(G, B, T, Fin).reshape(G * B, T, Fin)
            feats = stream_features(xs, lengths.reshape(G * B), cfg.streams, self.bones,
                                    cfg.velocity_scale)  # fmt: skip
            h = feats.reshape(G, B * T, -1)  # (G, B*T, W)
            if cfg.input_layernorm:
                h = grouped_layer_norm(h, self.p("input_norm.weight"), self.p("input_norm.bias"))
            if cfg.input_projection:
                h = grouped_linear(h, self.p("proj.weight"), self.p("proj.bias"))
            h = h.view(G, B, T, -1)
        d = h.shape[-1]
        if cfg.positional == "sinusoidal":
            h = h + self.pos_table[:T]
        elif cfg.positional == "learned":
            h = h + self.p("pos")[:, None, :T]
        pad = padding_mask(lengths.reshape(G * B), T).view(G, B, T)  # (G, B, T) True = padding
        if cfg.pooling == "cls":
            h = torch.cat([self.p("cls").view(G, 1, 1, d).expand(G, B, 1, d), h], dim=2)
            pad = torch.cat([pad.new_zeros(G, B, 1), pad], dim=2)
        T1 = h.shape[2]
        bias = None
        if bool(pad.any()):  # additive key mask (G*B, 1, 1, T1); none without padding
            bias = torch.zeros(G * B, 1, 1, T1, device=x.device, dtype=h.dtype)
            bias = bias.masked_fill(pad.view(G * B, 1, 1, T1), float("-inf"))
        if noise is not None and cfg.input_projection:
            h = h * noise.take((B, T1, d))
        for i in range(cfg.n_layers):
            h = self._layer(h, f"encoder.layers.{i}.", bias, noise)
        if cfg.pooling == "cls":
            pooled = h[:, :, 0]  # (G, B, d)
        elif cfg.pooling == "last":
            at = (lengths - 1)[:, :, None, None].expand(G, B, 1, d)
            pooled = torch.gather(h, 2, at)[:, :, 0]
        elif bias is None:
            pooled = h.mean(dim=2)  # (G, B, d)
        else:
            keep = (~pad)[..., None].to(h.dtype)  # (G, B, T, 1)
            pooled = (h * keep).sum(dim=2) / lengths[..., None].to(h.dtype)  # (G, B, d)
        e = grouped_layer_norm(pooled, self.p("head.0.weight"), self.p("head.0.bias"))
        if self.has_nngk:
            return self._nngk(e, exclude), e
        return grouped_linear(e, self.p("head.1.weight"), self.p("head.1.bias")), e

    def _residual(self, h, y, noise: Noise | None) -> torch.Tensor:
        """``h + dropout(y)`` in one operation."""
        return h + y if noise is None else torch.addcmul(h, y, noise.take(y.shape[1:]))

    def _drop(self, x: torch.Tensor, noise: Noise | None) -> torch.Tensor:
        return x if noise is None else x * noise.take(x.shape[1:])

    def _layer(self, h, p: str, bias, noise) -> torch.Tensor:
        """One ``nn.TransformerEncoderLayer`` (training-mode path) per member; h (G, B, T, d)."""

        def ln(x, k):
            return grouped_layer_norm(x, self.p(f"{p}{k}.weight"), self.p(f"{p}{k}.bias"))

        if self.cfg.norm_first:
            h = self._residual(h, self._attention(ln(h, "norm1"), p, bias, noise), noise)
            return self._residual(h, self._feed_forward(ln(h, "norm2"), p, noise), noise)
        h = ln(self._residual(h, self._attention(h, p, bias, noise), noise), "norm1")
        return ln(self._residual(h, self._feed_forward(h, p, noise), noise), "norm2")

    def _attention(self, x, p: str, bias, noise) -> torch.Tensor:
        G, B, T, d = x.shape
        H = self.cfg.n_heads
        dh = d // H
        w, b = self.p(f"{p}self_attn.in_proj_weight"), self.p(f"{p}self_attn.in_proj_bias")
        qkv = grouped_linear(x.reshape(G, B * T, d), w, b)  # (G, B*T, 3d)
        qkv = qkv.view(G * B, T, 3, H, dh).permute(2, 0, 3, 1, 4)  # (3, G*B, H, T, dh)
        q, k, v = (t.reshape(G * B * H, T, dh) for t in qkv)
        scores = torch.baddbmm(
            q.new_empty(()), q, k.transpose(1, 2), beta=0.0, alpha=1.0 / math.sqrt(dh)
        )  # (G*B*H, T, T); fmt: skip
        if bias is not None:
            scores = (scores.view(G * B, H, T, T) + bias).view(G * B * H, T, T)
        attn = torch.softmax(scores, dim=-1)
        if noise is not None:
            attn = attn * noise.take((B * H, T, T)).reshape(G * B * H, T, T)
        out = torch.bmm(attn, v).view(G, B, H, T, dh).transpose(2, 3).reshape(G, B * T, d)
        w, b = self.p(f"{p}self_attn.out_proj.weight"), self.p(f"{p}self_attn.out_proj.bias")
        return grouped_linear(out, w, b).view(G, B, T, d)  # dropout1: in _residual

    def _feed_forward(self, x, p: str, noise) -> torch.Tensor:
        G, B, T, d = x.shape
        h = grouped_linear(x.reshape(G, B * T, d), self.p(f"{p}linear1.weight"),
                           self.p(f"{p}linear1.bias"))  # fmt: skip
        h = F.gelu(h) if self.cfg.activation == "gelu" else F.relu(h)
        h = self._drop(h.view(G, B, T, -1), noise).view(G, B * T, -1)
        h = grouped_linear(h, self.p(f"{p}linear2.weight"), self.p(f"{p}linear2.bias"))
        return h.view(G, B, T, d)  # dropout2: in _residual

    def _nngk(self, e: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
        memory = self.memory.clone() if self.training else self.memory
        sigma = self.p("nngk.log_sigma").exp()  # (G,)
        out = [
            nngk_log_proba(e[g], memory[g], self.memory_y[g], self.n_classes, self.cfg.nngk_k,
                           sigma[g], self.cfg.nngk_floor, None if exclude is None else exclude[g])
            for g in range(self.G)
        ]  # fmt: skip
        return torch.stack(out)  # (G, B, C)

    @torch.no_grad()
    def store(self, idx: torch.Tensor, e: torch.Tensor, y: torch.Tensor) -> None:
        """NNGK memory: keep embeddings ``e`` (G, B, d) of rows ``idx`` (G, B), labels ``y``."""
        rows = torch.arange(self.G, device=idx.device)[:, None]
        self.memory[rows, idx] = e.detach()
        self.memory_y[rows, idx] = y

    # ------------------------------------------------------------------ members
    def member(self, g: int) -> SkeletonTransformer:
        """Member ``g`` as a plain ``SkeletonTransformer`` (eval mode, CPU): its weights, and its
        NNGK memory where it has one."""
        model = SkeletonTransformer(self.in_features, self.n_classes, self.cfg, self.n_memory)
        state = {n: self.p(n)[g].detach().cpu().clone() for n in self.names}
        state |= {n: t[g].cpu().clone() for n, t in self.frozen.items()}
        if model.nngk is not None:
            state["nngk.memory"] = self.memory[g].cpu().clone()
            state["nngk.memory_y"] = self.memory_y[g].cpu().clone()
        model.load_state_dict(state)
        return model.eval()
