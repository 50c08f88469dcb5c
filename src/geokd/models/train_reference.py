"""The per-seed training loop as it was before batched training: the reference.

:func:`train_reference` is the loop that trained every student until the batched trainer
(:func:`geokd.models.train.train_many`) replaced it: one ``nn.Module`` per seed, one optimiser
step per batch, ``torch.optim.AdamW``. It learns the same recipe (same losses, initialisation,
shuffling and augmentation draws; the dropout masks come from another stream), and stays
callable for the training benchmark (``bench/bench_train.py``) and for the tests that hold the
batched trainer to it in distribution. Not used by the workflow.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import StudentConfig, TrainConfig
from .losses import distillation_loss, kd_loss, neighbourhood_loss, rkd_distance_loss
from .resume import ResumePoint, rng_states, set_rng_states
from .student import SkeletonTransformer, augment
from .train import (
    _deterministic,
    _holdout,
    _lr_factor,
    evaluate,
    param_groups,
    resolve_device,
    trim,
)

_log = logging.getLogger("geokd.train")


def _log_epoch(epoch: int, epochs: int, first: int, history: dict, has_val: bool) -> None:
    """One INFO line per epoch (the job's log): loss, validation accuracy where it was
    evaluated (never the test split's), time so far and the estimated time left."""
    spent = sum(history["seconds"][-(epoch - first + 1) :])
    left = spent / (epoch - first + 1) * (epochs - epoch)
    val = history["eval"].get("val") if has_val else None
    acc = ""
    if val and val["epoch"] and val["epoch"][-1] == epoch:
        acc = f", val accuracy {val['accuracy'][-1]:.4f}"
    _log.info(
        "epoch %d/%d: loss %.4f%s, %.1f s, about %.0f s left",
        epoch,
        epochs,
        history["loss"][-1],
        acc,
        spent,
        left,
    )


def _cpu(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _batch_loss(model, xb, lb, yb, idx, cfg: TrainConfig, P, D):
    """``(total, ce, second term or None)`` of one batch for ``cfg.mode``."""
    if cfg.mode == "nngk":
        logp = model(xb, lb, exclude=idx)  # (B, C) log probabilities, own entry left out
        ce = F.nll_loss(logp, yb)
        return ce, ce, None
    logits, emb = model(xb, lb, return_embedding=True)  # (B, C), (B, d)
    if cfg.mode == "label_smoothing":
        loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        return loss, F.cross_entropy(logits, yb), None
    if cfg.mode == "distilled":
        if cfg.distillation == "paper":
            return distillation_loss(logits, yb, P, cfg.alpha, cfg.beta, cfg.temperature)
        return kd_loss(logits, yb, P, cfg.kd_weight)
    ce = F.cross_entropy(logits, yb)
    if cfg.mode == "metric":
        Db = D[idx][:, idx].to(emb.device)  # (B, B)
        if cfg.metric_loss == "rkd":
            rel = rkd_distance_loss(emb, Db)
        else:
            rel = neighbourhood_loss(emb, Db, cfg.metric_tau)
        return ce + cfg.metric_weight * rel, ce, rel
    return ce, ce, None


@torch.no_grad()
def fill_memory(model: SkeletonTransformer, X, L, y, batch_size: int = 256) -> None:
    """Store every training sample's embedding in the NNGK head (eval mode, no dropout)."""
    was_training, dev = model.training, next(model.parameters()).device
    model.eval()
    for s in range(0, len(y), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(y)))
        _, e = model(trim(model, X[idx], L[idx]).to(dev), L[idx].to(dev), return_embedding=True)
        model.nngk.store(idx.to(dev), e, y[idx].to(dev))
    model.train(was_training)


def train_reference(
    train_X,
    train_len,
    train_y,
    teacher_P,
    cfg: TrainConfig,
    student_cfg: StudentConfig,
    eval_sets: dict | None = None,
    val: tuple | None = None,
    n_classes: int | None = None,
    teacher_D=None,
    resume: ResumePoint | None = None,
) -> tuple[SkeletonTransformer, dict]:
    """Train a :class:`SkeletonTransformer` with the per-seed loop: the arguments and the
    returned ``(model, history)`` are those of :func:`geokd.models.train.train`."""
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    X, L, eval_sets = torch.as_tensor(train_X), torch.as_tensor(train_len), eval_sets or {}
    P = None
    if cfg.mode == "distilled":
        if teacher_P is None:
            raise ValueError("mode 'distilled' needs teacher_P")
        P = torch.as_tensor(np.asarray(teacher_P), dtype=torch.float32)
        if P.shape[0] != len(y):
            raise ValueError(f"teacher_P has {P.shape[0]} rows for {len(y)} samples")
    D = None
    if cfg.mode == "metric":
        if teacher_D is None:
            raise ValueError("mode 'metric' needs teacher_D")
        D = torch.as_tensor(np.asarray(teacher_D), dtype=torch.float32)
        if D.shape != (len(y), len(y)):
            raise ValueError(f"teacher_D has shape {tuple(D.shape)} for {len(y)} samples")
    if cfg.mode == "nngk" and student_cfg.head != "nngk":
        student_cfg = replace(student_cfg, head="nngk")
    if n_classes is None:
        labels = [y.numpy()] + [np.asarray(s[2]) for s in [*eval_sets.values(), val] if s]
        n_classes = P.shape[1] if P is not None else int(max(a.max() for a in labels)) + 1
    if val is None and cfg.val_fraction > 0:
        held = torch.from_numpy(_holdout(y.numpy(), cfg.val_fraction, cfg.seed))
        val, X, L, y = (X[held], L[held], y[held]), X[~held], L[~held], y[~held]
        P = None if P is None else P[~held]
        D = None if D is None else D[~held][:, ~held]
    dev = resolve_device(cfg.device)
    if val is not None and "val" in eval_sets:
        raise ValueError("eval_sets may not use the name 'val' when a val set is given")
    history: dict = {k: [] for k in ("epoch", "loss", "ce", "kl", "lr", "seconds")}
    names = [*eval_sets, *(["val"] if val else [])]
    history["eval"] = {n: {"epoch": [], "accuracy": [], "cross_entropy": []} for n in names}
    history.update(best_epoch=None, stopped_epoch=None, n_train=len(y))
    history["selection"] = "best val accuracy" if val else "last epoch"
    augmenting = any(
        getattr(student_cfg, f"augment_{a}") > 0
        for a in ("rotate", "scale", "time_warp", "frame_drop")
    )
    with _deterministic(cfg):
        n_memory = len(y) if student_cfg.head == "nngk" else 0
        model = SkeletonTransformer(X.shape[2], n_classes, student_cfg, n_memory).to(dev)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(param_groups(model, cfg), lr=cfg.lr)
        steps = math.ceil(len(y) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg, steps))
        seeds = np.random.SeedSequence(cfg.seed).generate_state(2)
        g_shuffle = torch.Generator().manual_seed(int(seeds[0]))
        g_aug = torch.Generator().manual_seed(int(seeds[1]))
        best, best_state, waited, first = None, None, 0, 1
        saved = resume.load(cfg.epochs) if resume is not None else None
        if saved is not None:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            set_rng_states(saved["rng"])
            g_shuffle.set_state(saved["rng"]["shuffle"])
            g_aug.set_state(saved["rng"]["augment"])
            loop = saved["loop"]
            history, best, best_state, waited = (
                loop["history"],
                loop["best"],
                loop["best_state"],
                loop["waited"],
            )
            best = None if best is None else tuple(best)
            first = saved["epoch"] + 1
        bar = tqdm(
            range(first, cfg.epochs + 1),
            initial=first - 1,
            total=cfg.epochs,
            disable=None if cfg.progress else True,
            unit="ep",
        )
        for epoch in bar:
            t0, sums = time.perf_counter(), np.zeros(3)
            if model.nngk is not None:
                fill_memory(model, X, L, y, cfg.eval_batch_size)  # this epoch's neighbours
            model.train()
            order = torch.randperm(len(y), generator=g_shuffle) if cfg.shuffle else None
            for s in range(0, len(y), cfg.batch_size):
                idx = torch.arange(s, min(s + cfg.batch_size, len(y)))
                idx = order[idx] if order is not None else idx
                xb, lb = X[idx], L[idx]  # (B, T, K*3), (B,)
                if augmenting:
                    xb, lb = augment(xb, lb, student_cfg, g_aug)
                pb = None if P is None else P[idx].to(dev)
                xb = trim(model, xb, lb).to(dev)
                loss, ce, kl = _batch_loss(model, xb, lb.to(dev), y[idx].to(dev), idx, cfg, pb, D)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                parts = [loss.item(), ce.item(), kl.item() if kl is not None else 0.0]
                sums += len(idx) * np.array(parts)
            mean = sums / len(y)
            history["epoch"].append(epoch)
            history["loss"].append(float(mean[0]))
            history["ce"].append(float(mean[1]))
            history["kl"].append(float(mean[2]) if P is not None or D is not None else None)
            history["lr"].append(float(sched.get_last_lr()[0]))
            stop = False
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                for name, (ex, el, ey) in [*eval_sets.items(), *([("val", val)] if val else [])]:
                    r = evaluate(model, ex, el, ey, n_classes, cfg.eval_batch_size)
                    log = history["eval"][name]
                    log["epoch"].append(epoch)
                    log["accuracy"].append(r["accuracy"])
                    log["cross_entropy"].append(r["cross_entropy"])
                if val:  # r is the val result (evaluated last)
                    score = (r["accuracy"], -r["cross_entropy"])
                    if best is None or score > best:
                        best, waited, history["best_epoch"] = score, 0, epoch
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        waited += cfg.eval_every
                        stop = cfg.patience > 0 and waited >= cfg.patience
            history["seconds"].append(time.perf_counter() - t0)
            bar.set_postfix(loss=f"{mean[0]:.4f}")
            _log_epoch(epoch, cfg.epochs, first, history, val is not None)
            if resume is not None and not stop and resume.due(epoch, cfg.epochs):
                rng = {**rng_states(dev), "shuffle": g_shuffle.get_state()}
                rng["augment"] = g_aug.get_state()
                loop = {"history": history, "best": best, "waited": waited}
                loop["best_state"] = None if best_state is None else _cpu(best_state)
                resume.save(
                    epoch,
                    {
                        "model": _cpu(model.state_dict()),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "rng": rng,
                        "loop": loop,
                    },
                )
            if stop:
                break
        history["stopped_epoch"] = epoch
        if best_state is not None:
            model.load_state_dict(best_state)
        if model.nngk is not None:
            fill_memory(model, X, L, y, cfg.eval_batch_size)  # the final model's embeddings
    return model.eval(), history
