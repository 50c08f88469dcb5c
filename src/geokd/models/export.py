"""Export a student for use outside geokd: ONNX or TorchScript, with a metadata sidecar.

The exported graph takes the *prepared* input of :meth:`.predict.Student.prepare`:
``x`` float32 (B, max_frames, K*3), zero-padded after each sequence, and ``lengths`` int64
(B,); it returns the class logits (B, n_classes) (log probabilities for the NNGK head; the
argmax is the prediction either way). The batch size is free. ``<OUT>.json`` holds what a
user needs to prepare inputs and read outputs: the preparation settings, landmark and class
names, the input and output names and shapes, and the file's SHA-256 and size.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from ..atomic import write_many
from ..checksum import sidecar_bytes, sidecar_path
from ..errors import InputError
from .predict import Student, load_student

__all__ = [
    "FORMATS",
    "export_student",
    "onnx_latency_ms_per_sample",
    "onnx_session",
    "run_exported",
]

FORMATS = ("onnx", "torchscript")
EXPORT_FORMAT = "geokd.exported_student/1"


class _Logits(nn.Module):
    """The student as a plain ``(x, lengths) -> logits`` graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(x, lengths)


def _example(student: Student, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of prepared random sequences of different lengths (tracing input)."""
    rng = np.random.default_rng(0)
    t = student.student_config.max_frames
    seqs = [rng.normal(size=(max(2, t - 3 * i), student.n_landmarks, 3)) for i in range(batch)]
    return student.prepare(seqs)


def _graph_bytes(student: Student, fmt: str) -> bytes:
    module = _Logits(student.model).eval()
    x, lengths = _example(student)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # tracer notes on constants (the bone index tables)
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(module, (x, lengths), check_trace=False)
            torch.jit.save(traced, buf)
        else:
            torch.onnx.export(
                module,
                (x, lengths),
                buf,
                input_names=["x", "lengths"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    return buf.getvalue()


def export_student(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike) -> dict:
    """Write ``checkpoint``'s student to ``out`` in format ``fmt`` (:data:`FORMATS`) with its
    metadata sidecar ``<out>.json``, atomically; returns the sidecar's fields."""
    if fmt not in FORMATS:
        raise InputError("--format", f"unknown export format {fmt!r}; expected one of {FORMATS}")
    student = load_student(checkpoint)
    data = _graph_bytes(student, fmt)
    c = student.student_config
    meta = {
        "format": EXPORT_FORMAT,
        "export_format": fmt,
        "checkpoint": os.fspath(checkpoint),
        "inputs": {
            "x": ["batch", c.max_frames, 3 * student.n_landmarks],
            "lengths": ["batch"],
        },
        "outputs": {"logits": ["batch", student.n_classes]},
        "logits_are": "log_probabilities" if c.head == "nngk" else "logits",
        "preparation": {
            "max_frames": c.max_frames,
            "normalise": c.normalise,
            "frame": c.frame,
            "resampling": c.resampling,
        },
        "student_config": asdict(c),
        "dataset": student.dataset,
        "landmark_names": student.landmark_names,
        "class_names": student.class_names,
        "torch_version": str(torch.__version__),
    }
    side = sidecar_bytes(data, meta)
    write_many({out: data, sidecar_path(out): side})
    return {**meta, "size": len(data)}


def onnx_session(path: str | os.PathLike):
    """An ONNX Runtime session of an exported student on the CPU, one thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def run_exported(path: str | os.PathLike, fmt: str, x: torch.Tensor, lengths: torch.Tensor):
    """Logits (numpy, (B, n_classes)) of an exported file on prepared inputs (tests, bench)."""
    if fmt == "torchscript":
        module = torch.jit.load(os.fspath(path))
        with torch.inference_mode():
            return module(x, lengths).numpy()
    return onnx_session(path).run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]


def onnx_latency_ms_per_sample(
    session,
    x: torch.Tensor,
    lengths: torch.Tensor,
    batch_size: int = 1,
    *,
    warmup: int = 3,
    repeats: int = 20,
) -> float:
    """Median inference time per sample in ms of an :func:`onnx_session`, as
    :func:`geokd.models.checkpoint.latency_ms_per_sample` times the eager model: ``warmup``
    untimed and ``repeats`` timed runs over consecutive batches of ``batch_size`` samples of
    the prepared ``x`` (N, max_frames, K*3) (wrapping around), the median batch time divided
    by the batch size. The graph takes the whole padded length (the eager model is cut to
    the batch's longest sequence: the same work where every sequence has ``max_frames``)."""
    import time

    xs, ls = x.numpy(), lengths.numpy()
    n, b = len(xs), min(batch_size, len(xs))
    times = []
    for r in range(warmup + repeats):
        idx = np.arange(r * b, (r + 1) * b) % n
        feed = {"x": xs[idx], "lengths": ls[idx]}
        t0 = time.perf_counter()
        session.run(None, feed)
        if r >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0 / b
