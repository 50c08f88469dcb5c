"""Training and evaluation of the student, checkpoints, inference latency.

Losses (per batch, averaged over its samples)
----------------------------------------------
* ``"transformer"``: ``CE(z, y)`` (cross-entropy only, weight 1).
* ``"distilled"``: ``alpha * CE(z, y) + beta * T^2 * KL(P || softmax(z / T))`` with ``P`` the
  teacher's soft labels used as given (they are already a tempered distribution),
  ``KL(P || Q) = sum_c P_c (log P_c - log Q_c)`` and ``0 log 0 = 0``.

Model selection
---------------
Only a validation set selects: the ``val`` argument of :func:`train` (the split table's ``val``
split in :func:`run_training`) or, when there is none, a stratified ``val_fraction`` of the
training set. With a validation set the returned weights are those of the epoch with the best
validation accuracy (ties: lower validation cross-entropy, then the earlier epoch) and training
stops after ``patience`` epochs without improvement (0: never). Without one, the model of the
last epoch is returned. ``eval_sets`` (e.g. test) are logged for the curves and never select.

Determinism
-----------
Inside :func:`train` the global torch RNG is forked and seeded with ``seed`` (initialisation,
dropout), ``torch.use_deterministic_algorithms(True)`` is on, shuffling and augmentation draw
from their own seeded ``torch.Generator`` and batches are built in-process; the previous global
state is restored afterwards. On the CPU the same seed and thread count give identical losses,
metrics and weights.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .atomic import write_many
from .checksum import read_verified, sha256_file, sidecar_bytes, sidecar_path
from .errors import InputError
from .knn import metrics
from .provenance import git_revision
from .splits import read_split
from .store import load_sequences
from .student import SkeletonTransformer, StudentConfig, augment, prepare
from .teacher import read_soft_labels

__all__ = [
    "TrainConfig",
    "checkpoint_bytes",
    "distillation_loss",
    "evaluate",
    "git_revision",
    "latency_ms_per_sample",
    "load_checkpoint",
    "predict_proba",
    "run_training",
    "save_checkpoint",
    "train",
]

MODES = ("transformer", "distilled")
CHECKPOINT_FORMAT = "geokd.student/1"


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes
    ----------
    epochs : int
        Training epochs (default 200).
    batch_size : int
        Samples per step; the last batch of an epoch may be smaller (default 32).
    lr, weight_decay : float
        Peak learning rate and decoupled weight decay (default 1e-3, 1e-2).
    seed : int
        Seed of initialisation, dropout, shuffling and augmentation (default 0).
    mode : {"transformer", "distilled"}
        Loss (module docstring; default ``"transformer"``).
    alpha, beta, temperature : float
        Distillation weights and temperature ``T`` (default 0.5, 0.5, 3.0).
    optimizer : {"adamw", "adam"}
        ``"adam"`` adds weight decay to the gradient (L2), as ``torch.optim.Adam``.
    scheduler : {"cosine", "constant"}
        Learning rate per step after warm-up: cosine decay to 0, or constant.
    warmup_epochs : int
        Linear warm-up length in epochs (default 5).
    grad_clip : float
        Maximal global gradient norm, 0 = off (default 1.0).
    shuffle : bool
        Reshuffle the training set every epoch (default True; the original did not).
    val_fraction : float
        Stratified fraction of the training set held out for selection when ``train`` gets no
        ``val`` set (default 0: none). In distilled mode the teacher rows of held-out samples
        are dropped (the teacher itself was computed with them as references).
    patience : int
        Early stopping after this many epochs without validation improvement, 0 = off.
    eval_every : int
        Evaluate ``val`` and ``eval_sets`` every this many epochs and at the last (default 1).
    latency_batch_size : int
        Besides batch 1, the batch size at which the inference latency per sample is measured
        (default 256: throughput of batched inference).
    eval_batch_size : int
        Batch size of evaluation and prediction (default 256).
    device : str
        Torch device (default ``"cpu"``; bitwise determinism is promised on the CPU only).
    num_threads : int, optional
        ``torch.set_num_threads`` during training; None keeps the current setting.
    progress : bool
        tqdm bar over epochs (shown only when stderr is a terminal).
    """

    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    mode: str = "transformer"
    alpha: float = 0.5
    beta: float = 0.5
    temperature: float = 3.0
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup_epochs: int = 5
    grad_clip: float = 1.0
    shuffle: bool = True
    val_fraction: float = 0.0
    patience: int = 0
    eval_every: int = 1
    latency_batch_size: int = 256
    eval_batch_size: int = 256
    device: str = "cpu"
    num_threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.optimizer not in ("adamw", "adam") or self.scheduler not in ("cosine", "constant"):
            raise ValueError("optimizer must be adamw|adam and scheduler cosine|constant")
        sizes = (self.epochs, self.batch_size, self.eval_every, self.eval_batch_size,
                 self.latency_batch_size)  # fmt: skip
        if min(sizes) < 1:
            raise ValueError(
                "epochs, batch_size, eval_every, eval_batch_size and latency_batch_size "
                "must be >= 1"
            )
        if not self.temperature > 0 or not 0 <= self.val_fraction < 1:
            raise ValueError("temperature must be > 0 and val_fraction in [0, 1)")

    @classmethod
    def paper(cls, dataset: str = "utd_mhad", **overrides) -> TrainConfig:
        """The original optimisation: Adam, lr 1e-4, batch 16, no shuffling, constant lr,
        no clipping; 2000 epochs (``"utd_mhad"``) or 400 (``"signum"``); alpha = beta = 0.5,
        T = 3."""
        epochs = {"utd_mhad": 2000, "signum": 400}.get(dataset)
        if epochs is None:
            raise ValueError(f"no paper preset for dataset {dataset!r}; use 'utd_mhad' or 'signum'")
        base = dict(
            epochs=epochs,
            batch_size=16,
            lr=1e-4,
            weight_decay=0.0,
            optimizer="adam",
            scheduler="constant",
            warmup_epochs=0,
            grad_clip=0.0,
            shuffle=False,
        )
        return cls(**{**base, **overrides})


def distillation_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    teacher_P: torch.Tensor | None,
    alpha: float = 0.5,
    beta: float = 0.5,
    temperature: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Loss of one batch: ``(total, ce, kl)``; plain CE when ``teacher_P`` is None.

    Parameters
    ----------
    logits : Tensor, shape (B, C)
    y : Tensor of int64, shape (B,)
    teacher_P : Tensor, shape (B, C), optional
        Teacher probabilities (rows sum to 1).

    Returns
    -------
    total, ce, kl : Tensor (scalars); ``kl`` is ``KL(P || softmax(logits / T))`` averaged over
    the batch, before the ``beta * T^2`` weight, or None without a teacher.
    """
    ce = F.cross_entropy(logits, y)
    if teacher_P is None:
        return ce, ce, None
    log_q = F.log_softmax(logits / temperature, dim=1)  # (B, C)
    kl = (torch.xlogy(teacher_P, teacher_P) - teacher_P * log_q).sum(dim=1).mean()
    return alpha * ce + beta * temperature**2 * kl, ce, kl


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _deterministic(cfg: TrainConfig) -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    with _threads(cfg.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        torch.use_deterministic_algorithms(True, warn_only=not cfg.device.startswith("cpu"))
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before, warn_only=warn_before)


def _trim(model: SkeletonTransformer, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
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
            out.append(model(_trim(model, xb, lb).to(dev), lb.to(dev)).float().cpu())
    model.train(was_training)
    return torch.cat(out)  # (N, C)


def predict_proba(model, X, lengths, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, C), float64, of inputs ``X`` (N, T, K*3) with ``lengths`` (N,)."""
    return torch.softmax(_logits(model, X, lengths, batch_size).double(), dim=1).numpy()


def evaluate(model, X, lengths, y, n_classes: int | None = None, batch_size: int = 256) -> dict:
    """:func:`geokd.knn.metrics` of the argmax predictions plus ``cross_entropy`` (mean, nats).

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
) -> tuple[SkeletonTransformer, dict]:
    """Train a :class:`SkeletonTransformer`.

    Parameters
    ----------
    train_X : Tensor, shape (N, T, K*3); train_len : Tensor (N,); train_y : array of int (N,)
        Output of :func:`geokd.student.prepare` and the labels.
    teacher_P : ndarray, shape (N, C), optional
        Soft labels aligned with the rows; required in distilled mode, ignored otherwise.
    eval_sets : dict of name -> (X, lengths, y), optional
        Logged every ``eval_every`` epochs; never used for selection.
    val : (X, lengths, y), optional
        Validation set for selection and early stopping (module docstring).
    n_classes : int, optional
        Default: teacher columns, else ``max label + 1`` over all given labels.

    Returns
    -------
    model : SkeletonTransformer (eval mode, on ``cfg.device``)
    history : dict
        Per epoch ``epoch, loss, ce, kl`` (None in transformer mode), ``lr``, ``seconds``;
        ``eval`` and ``val``: ``{name: {"epoch", "accuracy", "cross_entropy"}}``;
        ``best_epoch``, ``stopped_epoch``, ``selection``, ``n_train``.
    """
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    X, L, eval_sets = torch.as_tensor(train_X), torch.as_tensor(train_len), eval_sets or {}
    P = None
    if cfg.mode == "distilled":
        if teacher_P is None:
            raise ValueError("mode 'distilled' needs teacher_P")
        P = torch.as_tensor(np.asarray(teacher_P), dtype=torch.float32)
        if P.shape[0] != len(y):
            raise ValueError(f"teacher_P has {P.shape[0]} rows for {len(y)} samples")
    if n_classes is None:
        labels = [y.numpy()] + [np.asarray(s[2]) for s in [*eval_sets.values(), val] if s]
        n_classes = P.shape[1] if P is not None else int(max(a.max() for a in labels)) + 1
    if val is None and cfg.val_fraction > 0:
        held = torch.from_numpy(_holdout(y.numpy(), cfg.val_fraction, cfg.seed))
        val, X, L, y = (X[held], L[held], y[held]), X[~held], L[~held], y[~held]
        P = None if P is None else P[~held]
    dev = torch.device(cfg.device)
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
        model = SkeletonTransformer(X.shape[2], n_classes, student_cfg).to(dev)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = math.ceil(len(y) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg, steps))
        seeds = np.random.SeedSequence(cfg.seed).generate_state(2)
        g_shuffle = torch.Generator().manual_seed(int(seeds[0]))
        g_aug = torch.Generator().manual_seed(int(seeds[1]))
        best, best_state, waited = None, None, 0
        bar = tqdm(range(1, cfg.epochs + 1), disable=None if cfg.progress else True, unit="ep")
        for epoch in bar:
            t0, sums = time.perf_counter(), np.zeros(3)
            model.train()
            order = torch.randperm(len(y), generator=g_shuffle) if cfg.shuffle else None
            for s in range(0, len(y), cfg.batch_size):
                idx = torch.arange(s, min(s + cfg.batch_size, len(y)))
                idx = order[idx] if order is not None else idx
                xb, lb = X[idx], L[idx]  # (B, T, K*3), (B,)
                if augmenting:
                    xb, lb = augment(xb, lb, student_cfg, g_aug)
                logits = model(_trim(model, xb, lb).to(dev), lb.to(dev))  # (B, C)
                pb = None if P is None else P[idx].to(dev)
                loss, ce, kl = distillation_loss(
                    logits, y[idx].to(dev), pb, cfg.alpha, cfg.beta, cfg.temperature
                )
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
            history["kl"].append(float(mean[2]) if P is not None else None)
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
            if stop:
                break
        history["stopped_epoch"] = epoch
        if best_state is not None:
            model.load_state_dict(best_state)
    return model.eval(), history


def checkpoint_bytes(
    model: SkeletonTransformer,
    student_cfg: StudentConfig,
    train_cfg: TrainConfig,
    extra: dict | None = None,
    *,
    epoch: int | None = None,
) -> bytes:
    """The bytes of a checkpoint file (see :func:`save_checkpoint`)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "in_features": model.in_features,
        "n_classes": model.n_classes,
        "student_config": asdict(student_cfg),
        "train_config": asdict(train_cfg),
        "seed": train_cfg.seed,
        "epoch": epoch,
        "git_revision": git_revision(),
        "torch_version": str(torch.__version__),
        "extra": json.loads(json.dumps(extra or {})),  # plain values only
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_checkpoint(
    path: str | os.PathLike,
    model: SkeletonTransformer,
    student_cfg: StudentConfig,
    train_cfg: TrainConfig,
    extra: dict | None = None,
    *,
    epoch: int | None = None,
) -> None:
    """Write weights and provenance with a checksum sidecar ``<path>.json``, atomically.

    The file holds ``format``, ``state_dict`` (CPU tensors), ``in_features``, ``n_classes``,
    ``student_config`` and ``train_config`` (resolved, as dicts), ``seed``, ``epoch``,
    ``git_revision``, ``torch_version`` and ``extra`` (e.g. data checksums; JSON-serialisable,
    stored as plain Python values so that ``torch.load(weights_only=True)`` reads the file).
    """
    data = checkpoint_bytes(model, student_cfg, train_cfg, extra, epoch=epoch)
    write_many({path: data, sidecar_path(path): sidecar_bytes(data, {"format": CHECKPOINT_FORMAT})})


def load_checkpoint(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[SkeletonTransformer, dict]:
    """Rebuild the model (eval mode) from :func:`save_checkpoint`; ``meta`` is everything else.

    Raises :class:`InputError` naming the file when its checksum sidecar is missing or does
    not match (truncated or altered file), or the file is not a geokd checkpoint.
    """
    data, _ = read_verified(path)
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # any unreadable file is an input error
        raise InputError(path, f"cannot read checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
    state = payload.pop("state_dict")
    model = SkeletonTransformer(
        payload["in_features"], payload["n_classes"], StudentConfig(**payload["student_config"])
    )
    model.load_state_dict(state)
    return model.to(device).eval(), payload


def latency_ms_per_sample(
    model, X, lengths, batch_size: int = 1, *, warmup: int = 3, repeats: int = 20
) -> float:
    """Median CPU inference time per sample in milliseconds (eval mode, inference mode).

    A CPU copy of the model runs ``warmup`` untimed and ``repeats`` timed forward passes over
    consecutive batches of ``batch_size`` samples of ``X`` (N, T, K*3) (wrapping around, cut to
    their longest sequence as in prediction); the median batch time is divided by the batch
    size. Uses the current ``torch.get_num_threads()``.
    """
    m = copy.deepcopy(model).cpu().eval()
    n, b = len(X), min(batch_size, len(X))
    times = []
    with torch.inference_mode():
        for r in range(warmup + repeats):
            idx = torch.arange(r * b, (r + 1) * b) % n
            xb = _trim(m, X[idx], lengths[idx])
            t0 = time.perf_counter()
            m(xb, lengths[idx])
            if r >= warmup:
                times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0 / b


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def run_training(
    store_path: str | os.PathLike,
    split_table: str | os.PathLike,
    soft_labels_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    mode: str = "transformer",
    seed: int = 0,
    train_cfg: TrainConfig | None = None,
    student_cfg: StudentConfig | None = None,
) -> dict:
    """Train one student on a store and split table and write, in ``out_dir``, as one atomic
    unit: ``model.pt`` with its checksum sidecar ``model.pt.json``, ``history.json`` (per-epoch
    losses and evaluations), ``metrics.json`` (the returned metrics) and ``timings.json``
    (``train_seconds``, ``epoch_seconds``, ``latency_ms_per_sample``). Everything but
    ``timings.json`` is the same to the byte for the same inputs, seed and thread count on
    the CPU.

    Parameters
    ----------
    store_path : path
        Sequence store (:func:`geokd.store.load_sequences`); classes are ``0 .. max label``.
    split_table : path
        Split table (:func:`geokd.splits.read_split`): train, test and optional val rows.
    soft_labels_path : path or None
        Teacher soft labels of exactly the training ids (:func:`geokd.teacher.read_soft_labels`);
        required for ``mode="distilled"``, not read otherwise.
    mode, seed : override ``train_cfg.mode`` and ``train_cfg.seed``.

    Returns
    -------
    dict
        ``test`` (and ``val``) metrics of the selected model, ``train`` metrics,
        ``inputs`` (file names and SHA-256), configs, seed, epochs and git revision; the
        content of ``metrics.json`` (no timings: those are in ``timings.json``).
    """
    cfg = replace(train_cfg or TrainConfig(), mode=mode, seed=seed)
    scfg = student_cfg or StudentConfig()
    sequences, meta = load_sequences(store_path)
    table = read_split(split_table)
    row = {sid: i for i, sid in enumerate(meta["sequence_id"].astype(str))}
    ids = table["sequence_id"].astype(str)
    if unknown := [s for s in ids if s not in row]:
        raise InputError(split_table, f"{len(unknown)} id(s) not in {store_path}: {unknown[:3]}")
    labels = meta["label"].to_numpy(np.int64)
    n_classes = int(labels.max()) + 1
    names = meta.drop_duplicates("label").set_index("label")["label_name"].astype(str)
    parts = {}
    for split in ("train", "val", "test"):
        sel = ids[table["split"] == split].tolist()
        if not sel:
            continue
        idx = np.array([row[s] for s in sel])
        if not np.array_equal(table.loc[table["split"] == split, "label"].to_numpy(), labels[idx]):
            raise InputError(split_table, f"labels of split '{split}' differ from {store_path}")
        X, L = prepare([sequences[i] for i in idx], scfg.max_frames, scfg.normalise)
        parts[split] = (X, L, labels[idx], sel)
    if "train" not in parts or "test" not in parts:
        raise InputError(split_table, "needs 'train' and 'test' rows")
    inputs = {"store": store_path, "split_table": split_table}
    P = None
    if cfg.mode == "distilled":
        if soft_labels_path is None:
            raise InputError("soft_labels_path", "mode 'distilled' needs the teacher's soft labels")
        inputs["soft_labels"] = soft_labels_path
        t_ids, t_P = read_soft_labels(soft_labels_path)
        pos = {s: i for i, s in enumerate(t_ids)}
        train_ids = parts["train"][3]
        missing, extra = set(train_ids) - set(pos), set(pos) - set(train_ids)
        if missing or extra or len(pos) != len(t_ids):
            raise InputError(
                soft_labels_path,
                f"ids are not the training ids of {split_table}: {len(missing)} missing "
                f"(e.g. {sorted(missing)[:3]}), {len(extra)} extra (e.g. {sorted(extra)[:3]}), "
                f"{len(t_ids) - len(pos)} duplicated",
            )
        if t_P.shape[1] != n_classes:
            raise InputError(soft_labels_path, f"{t_P.shape[1]} classes, store has {n_classes}")
        P = t_P[[pos[s] for s in train_ids]]  # (N_train, C) in split-table order
    X, L, y, _ = parts["train"]
    val = parts["val"][:3] if "val" in parts else None
    t0 = time.perf_counter()
    model, history = train(
        X, L, y, P, cfg, scfg, eval_sets={"test": parts["test"][:3]}, val=val, n_classes=n_classes
    )
    seconds = time.perf_counter() - t0
    with _threads(cfg.num_threads):
        result = {s: evaluate(model, *parts[s][:3], n_classes, cfg.eval_batch_size) for s in parts}
        Xt, Lt = parts["test"][:2]
        latency = {
            f"batch_{b}": latency_ms_per_sample(model, Xt, Lt, b)
            for b in sorted({1, cfg.latency_batch_size})
        }
        threads = torch.get_num_threads()
    epoch = history["best_epoch"] or history["stopped_epoch"]
    checks = {k: {"file": Path(p).name, "sha256": sha256_file(p)} for k, p in inputs.items()}
    summary = {
        **result,
        "mode": cfg.mode,
        "seed": cfg.seed,
        "n_classes": n_classes,
        "class_names": [names.get(c, str(c)) for c in range(n_classes)],
        "epoch": epoch,
        "epochs_run": history["stopped_epoch"],
        "selection": history["selection"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "inputs": checks,
        "student_config": asdict(scfg),
        "train_config": asdict(cfg),
        "git_revision": git_revision(),
    }
    timings = {
        "mode": cfg.mode,
        "seed": cfg.seed,
        "train_seconds": seconds,
        "epoch_seconds": history["seconds"],
        "latency_ms_per_sample": {**latency, "device": "cpu", "threads": threads},
    }
    out = Path(out_dir)
    model_pt = checkpoint_bytes(model, scfg, cfg, {"inputs": checks}, epoch=epoch)
    side = sidecar_bytes(model_pt, {"format": CHECKPOINT_FORMAT})
    deterministic = {k: v for k, v in history.items() if k != "seconds"}
    write_many(
        {
            out / "model.pt": model_pt,
            out / "model.pt.json": side,
            out / "history.json": _dump(deterministic).encode(),
            out / "timings.json": _dump(timings).encode(),
            out / "metrics.json": _dump(summary).encode(),
        }
    )
    return summary
