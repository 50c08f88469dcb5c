"""Training and evaluation of the student: losses, the training loop, predictions.

Losses (per batch, averaged over its samples): :mod:`geokd.models.losses`.

Batched training
----------------
:func:`train_many` trains several students that differ only in their seed at once, as one
:class:`geokd.models.batched.BatchedStudent` (stacked weights, one forward and backward pass
for all of them, one :class:`geokd.models.optim.FlatAdam` step); :func:`train` is
:func:`train_many` with one member. Each member has its own initialisation (exactly that of
the per-seed loop: the seed's ``torch.manual_seed`` before the model is built), shuffling,
augmentation and dropout generators, validation rows, best epoch and early stop, so what a
member learns does not depend on the others of its group: with fixed-length inputs (every
sequence ``max_frames`` long, e.g. ``resampling: linear``) and one thread, a seed trained in a
group ends with the bytes it has when trained alone (tested). The per-seed loop that this
replaced is :func:`geokd.models.train_reference.train_reference` (same recipe; equal in
distribution, not in bits: its dropout masks come from another stream).

Model selection
---------------
Only a validation set selects: the ``val`` argument of :func:`train` (the split table's ``val``
split in :func:`run_training`) or, when there is none, a stratified ``val_fraction`` of the
training set (per seed). With a validation set the returned weights are those of the epoch
with the best validation accuracy (ties: lower validation cross-entropy, then the earlier
epoch) and training stops after ``patience`` epochs without improvement (0: never). Without
one, the model of the last epoch is returned. ``eval_sets`` (e.g. test) are logged for the
curves and never select.

Determinism
-----------
Inside :func:`train_many` the global torch RNG is forked (and restored afterwards),
``torch.use_deterministic_algorithms(True)`` is on, and every draw comes from the members'
seeded ``torch.Generator``s; batches are built in-process. On the CPU the same seeds and thread
count give identical losses, metrics and weights.

Resuming
--------
Given a :class:`.resume.ResumePoint`, :func:`train_many` saves its whole state there every
``resume_every`` epochs and, when a saved state of the same fingerprint is there at the start,
continues after its epoch instead of starting at epoch 1; the result is the same to the bit
(:mod:`geokd.models.resume`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .batched import BatchedStudent, Noise, dropout_generator, generator_state, set_generator_state
from .config import StudentConfig, TrainConfig
from .members import Member, fill_memory, log_epoch, member_losses, member_outputs, member_scores
from .metrics import metrics
from .optim import FlatAdam, clip_rows_
from .resume import ResumePoint
from .student import SkeletonTransformer, augment


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_log = logging.getLogger("geokd.train")


def resolve_device(device: str) -> torch.device:
    """The torch device of a :class:`TrainConfig` ``device`` (``auto``: cuda if available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def _deterministic(cfg: TrainConfig) -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch_threads(cfg.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        torch.use_deterministic_algorithms(True, warn_only=resolve_device(cfg.device).type != "cpu")
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before, warn_only=warn_before)


def trim(model: SkeletonTransformer, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Cut a masked batch to its longest sequence (exact: padding is masked); else keep T."""
    return X[:, : int(lengths.max())] if model.cfg.padding_mask else X


def _logits(model, X, lengths, batch_size: int = 256) -> torch.Tensor:
    """Eval-mode logits (N, C) on the CPU, in batches; the model's mode is restored."""
    was_training, dev = model.training, next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(X), batch_size):
            xb, lb = X[s : s + batch_size], lengths[s : s + batch_size]
            out.append(model(trim(model, xb, lb).to(dev), lb.to(dev)).float().cpu())
    model.train(was_training)
    return torch.cat(out)  # (N, C)


def predict_proba(model, X, lengths, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, C), float64, of inputs ``X`` (N, T, K*3) with ``lengths`` (N,)."""
    return torch.softmax(_logits(model, X, lengths, batch_size).double(), dim=1).numpy()


def evaluate(model, X, lengths, y, n_classes: int | None = None, batch_size: int = 256) -> dict:
    """:func:`.metrics.metrics` of the argmax predictions plus ``cross_entropy`` (mean, nats).

    Parameters
    ----------
    X : Tensor, shape (N, T, K*3); lengths : Tensor (N,); y : array of int (N,)
    n_classes : int, optional
        Default: the model's number of classes.
    """
    logits = _logits(model, X, lengths, batch_size)  # (N, C)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    result = metrics(y_t.numpy(), logits.argmax(dim=1).numpy(), n_classes or model.n_classes)
    result["cross_entropy"] = float(F.cross_entropy(logits, y_t)) if len(y_t) else float("nan")
    return result


def _holdout(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean (N,): a stratified random ``fraction`` per class (>= 1 of classes with >= 2)."""
    rng = np.random.default_rng([seed, 1])
    held = np.zeros(y.size, dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = min(max(round(fraction * idx.size), 1), idx.size - 1)
        held[rng.permutation(idx)[:n]] = True
    return held


def _lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    warm, total = cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if cfg.scheduler == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """Optimiser groups: weight matrices decayed; LayerNorm weights, biases and other 1-D
    parameters (e.g. the NNGK head's log sigma) not, unless ``cfg.decay_norms_biases``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_norms_biases:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


#: sequences per member in one evaluation pass of the batched trainer (small passes reuse the
#: training steps' buffers; fixed, so a member's scores do not depend on its group)
EVAL_BATCH = 32


def _epoch_finished(epoch: int) -> None:
    """Called after every epoch, once its resumable state is saved (a hook for fault tests)."""


def _tensor(v) -> torch.Tensor:
    """A tensor of ``v`` (a tensor as is; an array copied: it may be read-only)."""
    return v if torch.is_tensor(v) else torch.as_tensor(np.array(v))


def _check_members(cfgs: Sequence[TrainConfig]) -> TrainConfig:
    if not cfgs:
        raise ValueError("no members to train")
    cfg = cfgs[0]
    if any(replace(c, seed=cfg.seed) != cfg for c in cfgs):
        raise ValueError("the members of a batched training may differ in their seed only")
    if len({c.seed for c in cfgs}) < len(cfgs):
        raise ValueError(f"duplicate seeds: {[c.seed for c in cfgs]}")
    return cfg


def train(
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
    """Train one :class:`SkeletonTransformer`: :func:`train_many` with one member.

    Parameters
    ----------
    train_X : Tensor, shape (N, T, K*3); train_len : Tensor (N,); train_y : array of int (N,)
        Output of :func:`geokd.models.student.prepare` and the labels.
    teacher_P : ndarray, shape (N, C), optional
        Soft labels aligned with the rows; required in distilled mode, ignored otherwise.
    teacher_D : ndarray, shape (N, N), optional
        Procrustes-DTW distances among the rows; required in metric mode, ignored otherwise.
    eval_sets : dict of name -> (X, lengths, y), optional
        Logged every ``eval_every`` epochs; never used for selection.
    val : (X, lengths, y), optional
        Validation set for selection and early stopping (module docstring).
    n_classes : int, optional
        Default: teacher columns, else ``max label + 1`` over all given labels.
    resume : ResumePoint, optional
        Save the resumable state there every ``resume.every`` epochs, and continue from a
        saved state of the same fingerprint (module docstring). The caller deletes it.

    Returns
    -------
    model : SkeletonTransformer (eval mode, on ``cfg.device``)
    history : dict
        Per epoch ``epoch, loss, ce, kl`` (the second loss term: KL to the teacher, or the
        metric term; None in the other modes), ``lr``, ``seconds``;
        ``eval`` and ``val``: ``{name: {"epoch", "accuracy", "cross_entropy"}}``;
        ``best_epoch``, ``stopped_epoch``, ``selection``, ``n_train``.
    """
    return train_many(
        train_X, train_len, train_y, teacher_P, [cfg], student_cfg, eval_sets, val, n_classes,
        teacher_D, resume,
    )[0]  # fmt: skip


def train_many(
    train_X,
    train_len,
    train_y,
    teacher_P,
    cfgs: Sequence[TrainConfig],
    student_cfg: StudentConfig,
    eval_sets: dict | None = None,
    val: tuple | None = None,
    n_classes: int | None = None,
    teacher_D=None,
    resume: ResumePoint | None = None,
) -> list[tuple[SkeletonTransformer, dict]]:
    """Train one student per config of ``cfgs`` (configs that differ in their seed only) at
    once, as one :class:`.batched.BatchedStudent`; arguments as :func:`train`.

    ``teacher_P`` may also be one set of soft labels per member, shape (G, N, C) (e.g. each
    seed's own pseudo-labels). Each member keeps its own initialisation (the seed's, as a
    single run), shuffling,
    augmentation and dropout streams, held-out validation rows (``val_fraction``), best epoch
    and early stop. Returns ``(model, history)`` per config, in order.
    """
    cfg = _check_members(cfgs)
    seeds = [c.seed for c in cfgs]
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    X, L, eval_sets = torch.as_tensor(train_X), torch.as_tensor(train_len), eval_sets or {}
    P = None
    if cfg.mode == "distilled":
        if teacher_P is None:
            raise ValueError("mode 'distilled' needs teacher_P")
        P = torch.as_tensor(np.asarray(teacher_P), dtype=torch.float32)
        if P.dim() == 3 and P.shape[0] != len(cfgs):
            raise ValueError(f"teacher_P has {P.shape[0]} members' soft labels, {len(cfgs)} seeds")
        if P.shape[-2] != len(y):
            raise ValueError(f"teacher_P has {P.shape[-2]} rows for {len(y)} samples")
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
        n_classes = P.shape[-1] if P is not None else int(max(a.max() for a in labels)) + 1
    G = len(cfgs)
    if val is None and cfg.val_fraction > 0:  # per member: its own held-out rows
        held = [_holdout(y.numpy(), cfg.val_fraction, s) for s in seeds]
        rows = torch.stack([torch.from_numpy(np.flatnonzero(~h)) for h in held])  # (G, N)
        vrows = torch.stack([torch.from_numpy(np.flatnonzero(h)) for h in held])  # (G, Nv)
        val = (X[vrows], L[vrows], y[vrows])
    else:
        rows = torch.arange(len(y)).expand(G, len(y))
        val = None if val is None else tuple(_tensor(v) for v in val)
    N = rows.shape[1]
    dev = resolve_device(cfg.device)
    if val is not None and "val" in eval_sets:
        raise ValueError("eval_sets may not use the name 'val' when a val set is given")
    eval_sets = {k: tuple(_tensor(v) for v in s) for k, s in eval_sets.items()}
    names = [*eval_sets, *(["val"] if val is not None else [])]
    members = [Member(names, N, val is not None) for _ in cfgs]
    augmenting = any(
        getattr(student_cfg, f"augment_{a}") > 0
        for a in ("rotate", "scale", "time_warp", "frame_drop")
    )
    with _deterministic(cfg):
        n_memory = N if student_cfg.head == "nngk" else 0
        singles = []
        for s in seeds:  # each member initialised as a single run of its seed
            torch.manual_seed(s)
            singles.append(SkeletonTransformer(X.shape[2], n_classes, student_cfg, n_memory))
        model = BatchedStudent(singles).to(dev)
        del singles
        n_decayed = model.flat.shape[1] if cfg.decay_norms_biases else model.n_matrix_columns
        opt = FlatAdam(model.flat, n_decayed, cfg.weight_decay, cfg.optimizer == "adamw")
        steps = math.ceil(N / cfg.batch_size)
        streams = [np.random.SeedSequence(s).generate_state(3) for s in seeds]
        g_shuffle, g_aug = (
            [torch.Generator().manual_seed(int(st[i])) for st in streams] for i in range(2)
        )
        g_drop = [dropout_generator(st[2]) for st in streams]
        first, step = 1, 0
        saved = resume.load(cfg.epochs) if resume is not None else None
        if saved is not None:
            model.flat.copy_(saved["flat"])
            opt.load_state_dict(saved["optimizer"])
            for gens, key in ((g_shuffle, "shuffle"), (g_aug, "augment")):
                for gen, st in zip(gens, saved["rng"][key], strict=True):
                    gen.set_state(st)
            for gen, st in zip(g_drop, saved["rng"]["dropout"], strict=True):
                set_generator_state(gen, st)
            for m, st in zip(members, saved["members"], strict=True):
                m.load(st)
            first, step = saved["epoch"] + 1, int(saved["step"])
        Xd, Ld, yd = X.to(dev), L.to(dev), y.to(dev)
        Pd = None if P is None else P.to(dev)
        Dd = None if D is None else D.to(dev)
        rows_d = rows.to(dev)
        bar = tqdm(range(first, cfg.epochs + 1), initial=first - 1, total=cfg.epochs,
                   disable=None if cfg.progress else True, unit="ep")  # fmt: skip
        epoch = first - 1
        for epoch in bar:
            t0, sums = time.perf_counter(), torch.zeros(G, 3)
            if model.has_nngk:
                fill_memory(model, X, L, y, rows, EVAL_BATCH, dev)
            model.train()
            if cfg.shuffle:
                order = torch.stack([torch.randperm(N, generator=g) for g in g_shuffle])
            else:
                order = torch.arange(N).expand(G, N)
            order = order.to(dev)
            for s in range(0, N, cfg.batch_size):
                pos = order[:, s : s + cfg.batch_size]  # (G, B) positions in members' rows
                src = torch.gather(rows_d, 1, pos)  # (G, B) rows of X
                B = pos.shape[1]
                xb, lb = Xd[src], Ld[src]  # (G, B, T, K*3), (G, B)
                if augmenting:
                    xb, lb = augment(xb.reshape(G * B, *xb.shape[2:]), lb.reshape(-1),
                                     student_cfg, g_aug)  # fmt: skip
                    xb, lb = xb.view(G, B, *xb.shape[1:]), lb.view(G, B)
                if student_cfg.padding_mask:
                    xb = xb[:, :, : int(lb.max())]
                if Pd is None:
                    pb = None
                else:  # one teacher for every member, or one per member (G, N, C)
                    pb = Pd[src] if Pd.dim() == 2 else Pd[torch.arange(G)[:, None], src]
                db = None if Dd is None else Dd[src[:, :, None], src[:, None, :]]  # (G, B, B)
                noise = Noise(g_drop, student_cfg.dropout) if student_cfg.dropout > 0 else None
                loss, ce, kl = member_losses(model, xb, lb, yd[src], pos, cfg, pb, db, noise)
                model.zero_grad()
                loss.sum().backward()
                grad = model.grad_flat()
                if cfg.grad_clip > 0:
                    clip_rows_(grad, cfg.grad_clip)
                opt.step(grad, cfg.lr * _lr_factor(step, cfg, steps))
                step += 1
                parts = [loss, ce, kl if kl is not None else torch.zeros_like(loss)]
                sums += B * torch.stack(parts, dim=1).detach().cpu().double()
            seconds = time.perf_counter() - t0
            mean = (sums / N).tolist()
            lr = cfg.lr * _lr_factor(step, cfg, steps)
            evaluating = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
            scores = {}
            if evaluating:
                for name, (ex, el, ey) in [*eval_sets.items(), *([("val", val)] if val else [])]:
                    logits = member_outputs(model, ex, el, EVAL_BATCH, dev)
                    scores[name] = member_scores(logits, ey, n_classes)
            for g, m in enumerate(members):
                if m.stopped:
                    continue
                h = m.history
                h["epoch"].append(epoch)
                h["loss"].append(float(mean[g][0]))
                h["ce"].append(float(mean[g][1]))
                h["kl"].append(float(mean[g][2]) if P is not None or D is not None else None)
                h["lr"].append(float(lr))
                for name, per in scores.items():
                    log = h["eval"][name]
                    log["epoch"].append(epoch)
                    log["accuracy"].append(per[g][0])
                    log["cross_entropy"].append(per[g][1])
                if evaluating and val is not None:
                    acc, ce_val = scores["val"][g]
                    if m.best is None or (acc, -ce_val) > m.best:
                        m.best, m.waited, h["best_epoch"] = (acc, -ce_val), 0, epoch
                        m.best_row = model.flat[g].detach().cpu().clone()
                    else:
                        m.waited += cfg.eval_every
                        m.stopped = cfg.patience > 0 and m.waited >= cfg.patience
                h["seconds"].append(seconds)
                h["stopped_epoch"] = epoch
            bar.set_postfix(loss=f"{mean[0][0]:.4f}")
            log_epoch(epoch, cfg.epochs, first, members, val is not None)
            done = all(m.stopped for m in members)
            if resume is not None and not done and resume.due(epoch, cfg.epochs):
                resume.save(epoch, {
                    "flat": model.flat.detach().cpu().clone(),
                    "optimizer": {k: v.cpu() if torch.is_tensor(v) else v
                                  for k, v in opt.state_dict().items()},
                    "rng": {"shuffle": [g.get_state() for g in g_shuffle],
                            "augment": [g.get_state() for g in g_aug],
                            "dropout": [generator_state(g) for g in g_drop]},
                    "members": [m.state() for m in members],
                    "step": step,
                })  # fmt: skip
            _epoch_finished(epoch)
            if done:
                break
        with torch.no_grad():
            for g, m in enumerate(members):
                if m.best_row is not None:
                    model.flat[g].copy_(m.best_row.to(dev))
        if model.has_nngk:  # the final models' embeddings
            fill_memory(model, X, L, y, rows, EVAL_BATCH, dev)
        return [(model.member(g).to(dev), m.history) for g, m in enumerate(members)]
