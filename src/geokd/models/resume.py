"""Resumable training: the state of a run every few epochs, so a killed run goes on from there.

Every ``TrainConfig.resume_every`` epochs :func:`geokd.models.train.train` saves, atomically,
everything the next epoch depends on: the model, optimiser and scheduler states, every RNG
state (torch's global generator, and CUDA's on a GPU; numpy's and Python's global ones; the
shuffling and augmentation generators), and the loop's own state (history, best epoch so far
and its weights, epochs without improvement). A rerun whose *fingerprint* is the same (the
exact training and student settings, mode, seed, the SHA-256 of every input file, the geokd
source and the torch version: :func:`fingerprint`) loads it and continues with the next
epoch; the run then ends with the same bytes as an uninterrupted one (on the CPU). A state of
other settings or inputs, or an unreadable one, is ignored with a log line, and training
starts at epoch 1. :func:`geokd.models.runs.run_training` keeps the state in the run's output
folder as ``.resume.partial`` (hidden, not an output of the workflow, so Snakemake leaves it
in place when it reruns the job) and deletes it once the run's outputs are written.

The file is ``<64 hex digits of the SHA-256 of the rest>\\n`` followed by a ``torch.save``
payload of plain values and tensors (``torch.load(weights_only=True)`` reads it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_bytes
from ..provenance import code_hash

RESUME_FORMAT = "geokd.resume/1"
#: the resumable state's name in a run's output folder
RESUME_NAME = ".resume.partial"
#: TrainConfig fields that do not shape the results (left out of the fingerprint)
NOT_FINGERPRINTED = ("progress", "num_threads", "resume_every")


def code_digest() -> str:
    """:func:`geokd.provenance.code_hash` of the code a training can run (the ``models``
    stage): the same hash that makes the workflow rerun the job, so a state is reused exactly
    when the code that wrote it would still be trusted."""
    return code_hash(Path(__file__).resolve().parents[1], "models")


def fingerprint(values: dict) -> str:
    """SHA-256 of ``values`` (JSON-ready: settings, input checksums, ...), the code and torch."""
    text = json.dumps(
        {"values": values, "code": code_digest(), "torch": str(torch.__version__)},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def rng_states(device: torch.device | None = None) -> dict:
    """Every global RNG state a training run may draw from (plain values and tensors)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (the global one)
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if device is not None and device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    keys = np.asarray(keys, dtype=np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def _say(message: str) -> None:
    print(f"geokd: {message}", file=sys.stderr, flush=True)


@dataclass
class ResumePoint:
    """Where a run keeps its resumable state, the run's fingerprint, and how often it saves
    (``every`` epochs; 0: never)."""

    path: Path
    fingerprint: str
    every: int

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether the state after ``epoch`` (of ``epochs``) is saved: every ``every``
        epochs, never after the last."""
        return self.every > 0 and epoch % self.every == 0 and epoch < epochs

    def save(self, epoch: int, state: dict) -> None:
        """Write the state after ``epoch`` atomically (replacing the previous one)."""
        buf = io.BytesIO()
        torch.save(
            {"format": RESUME_FORMAT, "fingerprint": self.fingerprint, "epoch": epoch, **state},
            buf,
        )
        data = buf.getvalue()
        write_bytes(self.path, hashlib.sha256(data).hexdigest().encode() + b"\n" + data)

    def load(self, epochs: int) -> dict | None:
        """The saved state if there is one of this fingerprint, else None (with a log line
        when a file is there but cannot be used)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _say(f"ignoring {self.path}: cannot read it ({exc.strerror}); starting at epoch 1")
            return None
        digest, data = raw[:64], raw[65:]
        if raw[64:65] != b"\n" or hashlib.sha256(data).hexdigest().encode() != digest:
            _say(f"ignoring {self.path}: damaged (checksum mismatch); starting at epoch 1")
            return None
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable state: train from the start
            _say(f"ignoring {self.path}: unreadable ({exc}); starting at epoch 1")
            return None
        if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
            _say(f"ignoring {self.path}: not a {RESUME_FORMAT} state; starting at epoch 1")
            return None
        if state.get("fingerprint") != self.fingerprint:
            _say(
                f"ignoring {self.path}: saved by a run of other settings, inputs or code; "
                "starting at epoch 1"
            )
            return None
        epoch = state.get("epoch")
        if not isinstance(epoch, int) or not 1 <= epoch < epochs:
            _say(f"ignoring {self.path}: epoch {epoch!r} out of range; starting at epoch 1")
            return None
        _say(f"resuming from epoch {epoch} of {epochs}: {self.path}")
        return state

    def discard(self) -> None:
        """Delete the state (the run is complete)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
