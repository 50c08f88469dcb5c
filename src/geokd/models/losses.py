"""The students' losses, one per model family (batch means).

* ``transformer``: ``CE(z, y)``.
* ``label_smoothing``: CE against ``(1 - eps) onehot(y) + eps / C`` (the control of
  ``distilled``: the same mixture with the uniform distribution in place of the teacher).
* ``distilled`` (``distillation="kl"``): ``(1 - w) CE(z, y) + w KL(P || softmax(z))``. The
  teacher's soft labels ``P`` are tempered once, when distances become probabilities, and
  used as given; the gradient is that of CE against the target ``(1 - w) onehot(y) + w P``.
  ``distillation="paper"``: the original ``alpha CE + beta T^2 KL(P || softmax(z / T))``.
* ``metric``: ``CE + lambda * L_rel`` with a relational term on the batch's embeddings and
  Procrustes-DTW distances (:func:`rkd_distance_loss` or :func:`neighbourhood_loss`).
* ``nngk``: ``-log p_y`` of the NNGK head (:mod:`geokd.models.nngk`).

Every function takes a batch (B samples) or a stack of batches with leading axes (e.g. the G
members of a batched training: logits (G, B, C)) and returns the mean over each batch's
samples: a scalar, or one value per leading index.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy averaged over the batch; logits (..., B, C), y (..., B) -> (...)."""
    per = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        y.reshape(-1),
        label_smoothing=label_smoothing,
        reduction="none",
    )
    return per.view(y.shape).mean(dim=-1)


def kl_to_teacher(log_q: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """``KL(P || q)`` averaged over the batch, ``0 log 0 = 0``; log_q, P (..., B, C)."""
    return (torch.xlogy(P, P) - P * log_q).sum(dim=-1).mean(dim=-1)


def distillation_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    teacher_P: torch.Tensor | None,
    alpha: float = 0.5,
    beta: float = 0.5,
    temperature: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The original loss ``(total, ce, kl)``: ``alpha CE + beta T^2 KL(P || softmax(z / T))``;
    plain CE when ``teacher_P`` is None (``kl`` before its weight; None without teacher)."""
    ce = cross_entropy(logits, y)
    if teacher_P is None:
        return ce, ce, None
    kl = kl_to_teacher(F.log_softmax(logits / temperature, dim=-1), teacher_P)
    return alpha * ce + beta * temperature**2 * kl, ce, kl


def kd_loss(
    logits: torch.Tensor, y: torch.Tensor, teacher_P: torch.Tensor, weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, ce, kl)`` of ``(1 - w) CE(z, y) + w KL(P || softmax(z))``."""
    ce = cross_entropy(logits, y)
    kl = kl_to_teacher(F.log_softmax(logits, dim=-1), teacher_P)
    return (1 - weight) * ce + weight * kl, ce, kl


def _pairwise(e: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (..., B, B) with a differentiable zero diagonal; e (..., B, d)."""
    return ((e[..., :, None, :] - e[..., None, :, :]).pow(2).sum(-1) + 1e-12).sqrt()


def rkd_distance_loss(emb: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Scale-invariant distance matching (RKD-D, Park et al., CVPR 2019): the off-diagonal
    embedding distances and teacher distances of the batch, each divided by its mean,
    compared with smooth-L1. emb (..., B, d), D (..., B, B)."""
    off = ~torch.eye(emb.shape[-2], dtype=torch.bool, device=emb.device)
    de, dt = _pairwise(emb)[..., off], D[..., off].to(emb.dtype)  # (..., B (B - 1))
    de = de / de.mean(dim=-1, keepdim=True).clamp_min(1e-8)
    dt = dt / dt.mean(dim=-1, keepdim=True).clamp_min(1e-8)
    return F.smooth_l1_loss(de, dt, reduction="none").mean(dim=-1)


def neighbourhood_loss(emb: torch.Tensor, D: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Mean over rows of ``KL(p_i || q_i)`` with ``p_i = softmax_j(-D_ij / tau)`` and
    ``q_i = softmax_j(-d_ij / tau)`` over the batch (self excluded), each distance set divided
    by its mean off-diagonal value. emb (..., B, d), D (..., B, B)."""
    eye = torch.eye(emb.shape[-2], dtype=torch.bool, device=emb.device)
    de, dt = _pairwise(emb), D.to(emb.dtype)
    de = de / de[..., ~eye].mean(dim=-1)[..., None, None].clamp_min(1e-8)
    dt = dt / dt[..., ~eye].mean(dim=-1)[..., None, None].clamp_min(1e-8)
    log_p = F.log_softmax((-dt / tau).masked_fill(eye, -float("inf")), dim=-1)
    log_q = F.log_softmax((-de / tau).masked_fill(eye, -float("inf")), dim=-1)
    return (log_p.exp() * (log_p - log_q)).masked_fill(eye, 0).sum(-1).mean(-1)
