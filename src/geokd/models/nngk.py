"""The nearest-neighbour Gaussian kernel (NNGK) head of Meyer, Harwood and Drummond (ICIP 2018).

Class probabilities of a query embedding ``e`` from its ``k`` nearest stored training
embeddings ``e_j`` (exact search, squared Euclidean distance, ties to the lower index):

    w_j = exp(-||e - e_j||^2 / (2 sigma^2)),   q_c = sum_{j in kNN, y_j = c} w_j / sum_j w_j,
    p = (1 - floor) q + floor / C.

Trained end to end on labels only: a memory holds one (detached) embedding per training
sample, refreshed with every batch; the loss is ``-log p_y`` of the batch against the memory
with each query's own entry left out; gradients reach the query embeddings and the learnable
``log sigma``. After training the memory is refilled with the final model's embeddings (eval
mode): they are part of the checkpoint and the head's inference needs nothing else.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def nngk_log_proba(
    q: torch.Tensor,
    memory: torch.Tensor,
    memory_y: torch.Tensor,
    n_classes: int,
    k: int,
    sigma: torch.Tensor,
    floor: float = 1e-3,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log class probabilities (B, C) of queries ``q`` (B, d) against ``memory`` (N, d) with
    labels ``memory_y`` (N,); ``exclude`` (B,): memory row left out per query (-1: none)."""
    d2 = torch.cdist(q, memory).pow(2)  # (B, N)
    if exclude is not None:
        rows = torch.arange(q.shape[0], device=q.device)
        hit = exclude >= 0
        d2 = d2.clone()
        d2[rows[hit], exclude[hit]] = float("inf")
    k = min(k, memory.shape[0] - (1 if exclude is not None else 0))
    d2k, idx = torch.topk(d2, k, dim=1, largest=False, sorted=True)  # (B, k)
    logw = -d2k / (2 * sigma**2)
    w = (logw - logw[:, :1].detach()).exp()  # the nearest weighs 1: no underflow
    sums = torch.zeros(q.shape[0], n_classes, device=q.device, dtype=q.dtype)
    sums = sums.scatter_add(1, memory_y[idx], w)  # (B, C)
    return torch.log((1 - floor) * sums / sums.sum(1, keepdim=True) + floor / n_classes)


def nngk_reference(q, memory, memory_y, n_classes: int, k: int, sigma: float, floor=1e-3):
    """Brute-force loops of :func:`nngk_log_proba` (probabilities, nothing excluded)."""
    out = np.zeros((len(q), n_classes))
    for i in range(len(q)):
        d2 = [float(((q[i] - m) ** 2).sum()) for m in memory]
        order = sorted(range(len(memory)), key=lambda j: (d2[j], j))[:k]
        w = {j: math.exp(-d2[j] / (2 * sigma**2)) for j in order}
        total = sum(w.values())
        for j in order:
            out[i, memory_y[j]] += w[j] / total
    return (1 - floor) * out + floor / n_classes


class NNGKHead(nn.Module):
    """Memory of training embeddings and a learnable kernel width.

    Parameters
    ----------
    n_memory : int
        Training samples stored.
    dim : int
        Embedding width.
    n_classes, k : int
    floor : float
    """

    def __init__(self, n_memory: int, dim: int, n_classes: int, k: int = 50, floor: float = 1e-3):
        super().__init__()
        self.n_classes, self.k, self.floor = n_classes, k, floor
        # LayerNorm'd embeddings: unrelated ones lie about sqrt(2 dim) apart
        self.log_sigma = nn.Parameter(torch.tensor(0.5 * math.log(dim / 4)))
        self.register_buffer("memory", torch.zeros(n_memory, dim))
        self.register_buffer("memory_y", torch.zeros(n_memory, dtype=torch.long))

    def store(self, idx: torch.Tensor, e: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the (detached) embeddings ``e`` (B, d) of training samples ``idx`` (B,)."""
        self.memory[idx] = e.detach()
        self.memory_y[idx] = y

    def forward(self, e: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Log class probabilities (B, C) (usable as logits: log_softmax leaves them as is)."""
        memory = self.memory.clone() if self.training else self.memory
        sigma = self.log_sigma.exp()
        return nngk_log_proba(
            e, memory, self.memory_y, self.n_classes, self.k, sigma, self.floor, exclude
        )
