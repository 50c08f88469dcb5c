"""Student checkpoints (weights, resolved configs, provenance, checksum sidecar) and latency."""

from __future__ import annotations

import copy
import io
import json
import os
import time
from dataclasses import asdict

import numpy as np
import torch

from ..atomic import write_many
from ..checksum import read_verified, sidecar_bytes, sidecar_path
from ..errors import InputError
from ..provenance import git_revision
from .student import SkeletonTransformer, StudentConfig
from .train import TrainConfig, trim

CHECKPOINT_FORMAT = "geokd.student/1"


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
        "n_memory": 0 if model.nngk is None else int(model.nngk.memory.shape[0]),
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
        payload["in_features"],
        payload["n_classes"],
        StudentConfig(**payload["student_config"]),
        payload.get("n_memory", 0),
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
            xb = trim(m, X[idx], lengths[idx])
            t0 = time.perf_counter()
            m(xb, lengths[idx])
            if r >= warmup:
                times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0 / b
