"""Per-member pieces of the batched trainer (:func:`geokd.models.train.train_many`): what the
loop keeps per member, its losses, evaluation passes and the NNGK memory, and its log line."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from .batched import BatchedStudent
from .config import TrainConfig
from .losses import cross_entropy, distillation_loss, kd_loss, neighbourhood_loss, rkd_distance_loss
from .metrics import metrics

_log = logging.getLogger("geokd.train")


class Member:
    """What the loop keeps per member: its history, best score and weights, patience."""

    def __init__(self, names: list[str], n_train: int, has_val: bool):
        h: dict = {k: [] for k in ("epoch", "loss", "ce", "kl", "lr", "seconds")}
        h["eval"] = {n: {"epoch": [], "accuracy": [], "cross_entropy": []} for n in names}
        h.update(best_epoch=None, stopped_epoch=None, n_train=n_train)
        h["selection"] = "best val accuracy" if has_val else "last epoch"
        self.history, self.best, self.best_row, self.waited, self.stopped = h, None, None, 0, False

    def state(self) -> dict:
        best = None if self.best is None else list(self.best)
        return {"history": self.history, "best": best, "best_row": self.best_row,
                "waited": self.waited, "stopped": self.stopped}  # fmt: skip

    def load(self, state: dict) -> None:
        self.history, self.best_row = state["history"], state["best_row"]
        self.best = None if state["best"] is None else tuple(state["best"])
        self.waited, self.stopped = state["waited"], state["stopped"]


def log_epoch(epoch: int, epochs: int, first: int, members: list, has_val: bool) -> None:
    """One INFO line per epoch (the job's log): each member's loss, validation accuracy where
    it was evaluated (never the test split's), time so far and the estimated time left."""
    h0 = members[0].history
    spent = sum(h0["seconds"][-(epoch - first + 1) :])
    left = spent / (epoch - first + 1) * (epochs - epoch)
    active = [m.history for m in members if m.history["epoch"][-1:] == [epoch]]
    loss = " ".join(f"{h['loss'][-1]:.4f}" for h in active)
    accs = [h["eval"]["val"] for h in active] if has_val else []
    acc = " ".join(f"{v['accuracy'][-1]:.4f}" for v in accs if v["epoch"][-1:] == [epoch])
    acc = f", val accuracy {acc}" if acc else ""
    _log.info("epoch %d/%d: loss %s%s, %.1f s, about %.0f s left", epoch, epochs, loss, acc,
              spent, left)  # fmt: skip


def member_losses(model: BatchedStudent, xb, lb, yb, pos, cfg: TrainConfig, P, D, noise):
    """Per member ``(total, ce, second term or None)`` of one batch (each (G,))."""
    if cfg.mode == "nngk":
        logp, _ = model(xb, lb, noise, exclude=pos)  # (G, B, C), own entry left out
        ce = -logp.gather(2, yb[..., None])[..., 0].mean(dim=1)
        return ce, ce, None
    logits, emb = model(xb, lb, noise)  # (G, B, C), (G, B, d)
    if cfg.mode == "label_smoothing":
        return cross_entropy(logits, yb, cfg.label_smoothing), cross_entropy(logits, yb), None
    if cfg.mode == "distilled":
        if cfg.distillation == "paper":
            return distillation_loss(logits, yb, P, cfg.alpha, cfg.beta, cfg.temperature)
        return kd_loss(logits, yb, P, cfg.kd_weight)
    ce = cross_entropy(logits, yb)
    if cfg.mode == "metric":
        if cfg.metric_loss == "rkd":
            rel = rkd_distance_loss(emb, D)
        else:
            rel = neighbourhood_loss(emb, D, cfg.metric_tau)
        return ce + cfg.metric_weight * rel, ce, rel
    return ce, ce, None


@torch.no_grad()
def member_outputs(model: BatchedStudent, X, L, batch_size: int, dev, embeddings=False):
    """Eval-mode logits (G, N, C) (or embeddings (G, N, d)) of every member on ``X``:
    (G, N, T, F) per member, or (N, T, F) shared; CPU float32."""
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, X.shape[-3], batch_size):
        xb, lb = X[..., s : s + batch_size, :, :], L[..., s : s + batch_size]
        if model.cfg.padding_mask:
            xb = xb[..., : int(lb.max()), :]
        z, e = model(xb.to(dev), lb.to(dev))  # a shared (B, T, F) xb: one input product
        out.append((e if embeddings else z).float().cpu())
    model.train(was_training)
    return torch.cat(out, dim=1)


def member_scores(
    logits: torch.Tensor, y: torch.Tensor, n_classes: int
) -> list[tuple[float, float]]:
    """(accuracy, mean cross-entropy) per member; logits (G, N, C), y (G, N) or (N,)."""
    y = y.expand(logits.shape[:2])
    out = []
    for z, t in zip(logits, y, strict=True):
        acc = metrics(t.numpy(), z.argmax(dim=1).numpy(), n_classes)["accuracy"]
        out.append((acc, float(F.cross_entropy(z, t)) if len(t) else float("nan")))
    return out


def fill_memory(model: BatchedStudent, X, L, y, rows, batch_size: int, dev) -> None:
    """Store every member's training embeddings in its NNGK memory (eval mode)."""
    e = member_outputs(model, X[rows], L[rows], batch_size, dev, embeddings=True)
    pos = torch.arange(rows.shape[1]).expand(rows.shape).to(dev)
    model.store(pos, e.to(dev), y[rows].to(dev))
