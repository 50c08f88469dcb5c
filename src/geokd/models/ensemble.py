"""Seed ensembles: one family's students of every seed, their class probabilities averaged.

An ensemble is a separate, labelled model (``<family>_ensemble``): its accuracy is that of
the mean of its members' softmax probabilities, and its latency counts every member (they run
one after the other on the same input). Members must share their input preparation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import write_many
from ..checksum import sha256_file
from ..data.splits import read_split
from ..data.store import load_sequences
from ..errors import InputError
from ..jsonfile import json_text
from ..provenance import git_revision
from .checkpoint import latency_ms_per_sample, load_checkpoint
from .student import prepare
from .train import evaluate


class Ensemble(nn.Module):
    """Members' mean class probabilities, returned as log probabilities (usable as logits)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg, self.n_classes = members[0].cfg, members[0].n_classes

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x, lengths), dim=1) for m in self.members])
        return probs.mean(dim=0).log()  # (B, C)


def run_ensemble(
    store_path: str | os.PathLike,
    split_table: str | os.PathLike,
    checkpoints: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    name: str,
    batch_size: int = 256,
    latency_batch_size: int = 256,
) -> dict:
    """Evaluate the ensemble of ``checkpoints`` on the test split; write ``metrics.json`` and
    ``timings.json`` (latency of the whole ensemble) in ``out_dir``; return the metrics."""
    if not checkpoints:
        raise InputError(out_dir, "an ensemble needs at least one checkpoint")
    loaded = [load_checkpoint(p) for p in checkpoints]
    preps = {(m.cfg.max_frames, m.cfg.normalise, m.cfg.frame, m.cfg.resampling) for m, _ in loaded}
    if len(preps) != 1:
        raise InputError(checkpoints[0], "the members prepare their input differently")
    ensemble = Ensemble([m for m, _ in loaded]).eval()
    sequences, meta = load_sequences(store_path)
    table = read_split(split_table)
    test = table[table["split"] == "test"]
    row = {s: i for i, s in enumerate(meta["sequence_id"].astype(str))}
    if unknown := [s for s in test["sequence_id"].astype(str) if s not in row]:
        raise InputError(split_table, f"{len(unknown)} id(s) not in {store_path}: {unknown[:3]}")
    X, L = prepare([sequences[row[s]] for s in test["sequence_id"].astype(str)], *preps.pop())
    y = test["label"].to_numpy(np.int64)
    with torch.inference_mode():
        result = evaluate(ensemble, X, L, y, ensemble.n_classes, batch_size)
    t0 = time.perf_counter()
    latency = {
        f"batch_{b}": latency_ms_per_sample(ensemble, X, L, b)
        for b in sorted({1, latency_batch_size})
    }
    seeds = [meta_["seed"] for _, meta_ in loaded]
    epochs = [meta_.get("epoch") for _, meta_ in loaded]
    metrics = {
        "mode": name,
        "seed": "ensemble",
        "members": seeds,
        "epoch": max(e for e in epochs if e is not None) if any(epochs) else None,
        "test": result,
        "n_parameters": sum(p.numel() for p in ensemble.parameters()),
        "inputs": {
            f"member_{s}": {"file": str(Path(p).parent.name), "sha256": sha256_file(p)}
            for s, p in zip(seeds, checkpoints, strict=True)
        },
        "git_revision": git_revision(),
    }
    timings = {
        "mode": name,
        "seed": "ensemble",
        "train_seconds": 0.0,
        "latency_ms_per_sample": {
            **latency,
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "members": len(seeds),
        },
        "seconds": time.perf_counter() - t0,
    }
    out = Path(out_dir)
    write_many(
        {
            out / "metrics.json": json_text(metrics).encode(),
            out / "timings.json": json_text(timings).encode(),
        }
    )
    return metrics
