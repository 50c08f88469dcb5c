"""Adam(W) and gradient clipping over the flat (G, P) weights of a batched training.

:class:`FlatAdam` updates a (G, P) tensor whose row ``g`` holds member ``g``'s parameters with
the arithmetic of ``torch.optim.Adam``/``AdamW``'s single-tensor path (the CPU default), element
for element: the same operations in the same order, so for the same gradients it gives the same
bits as those optimisers applied to each member's parameters. Weight decay applies to the
columns ``[0, n_decayed)`` (the weight matrices come first in ``BatchedStudent.flat``).
:func:`clip_rows_` clips each member's gradient to a maximal global norm, as
``torch.nn.utils.clip_grad_norm_`` does for one model.
"""

from __future__ import annotations

import torch


class FlatAdam:
    """Adam (``decoupled=False``: L2 added to the gradient) or AdamW over a (G, P) tensor.

    Parameters
    ----------
    flat : Tensor, shape (G, P)
        Updated in place.
    n_decayed : int
        Columns ``[0, n_decayed)`` get weight decay.
    weight_decay : float
    decoupled : bool
        AdamW's decoupled decay (``param *= 1 - lr * wd``) instead of Adam's L2 term.
    betas, eps : as torch.optim.Adam (default (0.9, 0.999), 1e-8).
    """

    def __init__(
        self,
        flat: torch.Tensor,
        n_decayed: int,
        weight_decay: float,
        decoupled: bool = True,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.flat, self.n_decayed, self.weight_decay = flat, n_decayed, weight_decay
        self.decoupled, self.betas, self.eps = decoupled, betas, eps
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.steps = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lr: float) -> None:
        """One update with gradients ``grad`` (G, P) (not modified) at learning rate ``lr``."""
        beta1, beta2 = self.betas
        self.steps += 1
        decayed = self.flat[:, : self.n_decayed]
        if self.weight_decay != 0 and self.n_decayed:
            if self.decoupled:
                decayed.mul_(1 - lr * self.weight_decay)
            else:
                grad = grad.clone()
                grad[:, : self.n_decayed].add_(decayed, alpha=self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2 = 1 - beta2**self.steps
        step_size = lr / bias_correction1
        denom = (self.exp_avg_sq.sqrt() / bias_correction2**0.5).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict:
        return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(),
                "steps": self.steps}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.steps = int(state["steps"])


@torch.no_grad()
def clip_rows_(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale each row of ``grad`` (G, P) in place to a 2-norm of at most ``max_norm``
    (``clip_grad_norm_``'s rule: factor ``max_norm / (norm + 1e-6)``, at most 1); returns the
    rows' norms before clipping (G,)."""
    norms = torch.linalg.vector_norm(grad, 2, dim=1)  # (G,)
    grad.mul_((max_norm / (norms + 1e-6)).clamp(max=1.0)[:, None])
    return norms
