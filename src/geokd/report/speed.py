"""Inference speed measured alone: exact 1-NN against the student, in PyTorch eager mode and
exported to ONNX (ONNX Runtime), one thread each, on the same test sequences.

The workflow's summary job measures it (``geokd summarize --speed SPLIT``) while it holds
every core of the machine (its ``threads``), so no training or distance job shares the CPU
with the timings; it times on one thread. The numbers go to the protocol's ``timings.json``
as ``inference.speed`` (:mod:`.summary`); the per-run latencies the training jobs measured
(``inference.models``, ``speedup``...) stay as they are.

``inference.speed``:

- ``model``, ``seed``, ``checkpoint``: the student timed (the distilled one where trained,
  else the first model; its lowest seed), ``threads`` (1), ``test_sequences``;
- ``knn``: ``metric``, ``ms_per_query`` (pruned, as :func:`geokd.models.knn.knn_latency`
  times it for the workflow's ``knn_latency`` job: the same queries), ``ms_per_query_full``
  (no pruning), ``n_queries``, ``n_references``, and ``frames`` where the distances have a
  frame budget;
- ``eager`` and ``onnx``: ``ms_per_sample`` (batch 1), ``ms_per_sample_batched`` (batches of
  ``batch_size``, the checkpoint's ``latency_batch_size``), ``speedup`` and
  ``speedup_batched`` (1-NN ms per query / the student's ms per sample); ``onnx`` also holds
  ``max_abs_logit_difference`` (against the eager model, on the first test batch) and the
  ``onnxruntime`` version.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..distances import select_sequences, split_ids
from ..errors import InputError

#: The student's runtimes: key -> how the report names it.
RUNTIMES = {"eager": "PyTorch eager", "onnx": "ONNX Runtime"}


def _timed(ms_1: float, ms_b: float, batch: int, knn_ms: float) -> dict:
    return {
        "ms_per_sample": ms_1,
        "ms_per_sample_batched": ms_b,
        "batch_size": batch,
        "speedup": knn_ms / ms_1,
        "speedup_batched": knn_ms / ms_b,
    }


def measure_speed(
    checkpoint: str | os.PathLike,
    store: str | os.PathLike,
    split: str | os.PathLike,
    *,
    knn_metric: str,
    n_queries: int,
    knn_params: dict | None = None,
    warmup: int = 5,
    repeats: int = 50,
) -> dict:
    """Time exact 1-NN and the student of ``checkpoint`` (eager and ONNX) on one thread.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A student's ``model.pt`` (checked against its sidecar).
    store, split : str or os.PathLike
        The sequence store and the protocol's split table: 1-NN queries the first
        ``n_queries`` test sequences against the training set; the student runs on every
        test sequence.
    knn_metric, n_queries, knn_params
        The 1-NN's frame cost and queries (those of the workflow's KNN latency file), its
        ``window``, metric parameters and ``frames`` (the distances' frame budget).
    warmup, repeats
        Untimed and timed runs of the student per batch size (medians).

    Returns
    -------
    dict
        The module docstring's ``inference.speed`` without ``model`` and ``seed``.
    """
    import torch

    from ..models.checkpoint import latency_ms_per_sample
    from ..models.export import export_student, onnx_latency_ms_per_sample, onnx_session
    from ..models.knn import knn_latency
    from ..models.predict import load_student

    try:
        import onnxruntime
    except ImportError as exc:
        raise InputError(
            "--speed", "timing the ONNX student needs onnxruntime (pip install 'geokd[export]')"
        ) from exc
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="geokd-speed-") as tmp:
            student = load_student(checkpoint)
            X, L = student.prepare(select_sequences(store, split_ids(split, "test")))
            batch = min(int(student.train_config.get("latency_batch_size") or 256), len(X))
            eager = [
                latency_ms_per_sample(student.model, X, L, b, warmup=warmup, repeats=repeats)
                for b in (1, batch)
            ]
            export_student(checkpoint, "onnx", Path(tmp) / "student.onnx")
            session = onnx_session(Path(tmp) / "student.onnx")
            onnx = [
                onnx_latency_ms_per_sample(session, X, L, b, warmup=warmup, repeats=repeats)
                for b in (1, batch)
            ]
            with torch.inference_mode():
                want = student.model(X[:batch], L[:batch]).numpy()
            got = session.run(None, {"x": X[:batch].numpy(), "lengths": L[:batch].numpy()})[0]
            # last: numba restoring its thread count also resets OpenMP's, which torch shares
            knn = knn_latency(
                store, split, Path(tmp) / "knn.json", metric=knn_metric, n_queries=n_queries,
                n_jobs=1, **dict(knn_params or {}),
            )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    knn_ms = float(knn["ms_per_query"])
    return {
        "checkpoint": os.fspath(checkpoint),
        "threads": 1,
        "test_sequences": len(X),
        "knn": {
            k: knn[k]
            for k in (
                "metric",
                "ms_per_query",
                "ms_per_query_full",
                "n_queries",
                "n_references",
                "frames",
            )
            if k in knn
        },
        "eager": _timed(*eager, batch, knn_ms),
        "onnx": {
            **_timed(*onnx, batch, knn_ms),
            "max_abs_logit_difference": float(np.max(np.abs(got - want))),
            "onnxruntime": onnxruntime.__version__,
        },
    }
