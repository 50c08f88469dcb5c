"""One summary per dataset and protocol: KNN, teacher, students, inference speed, provenance.

``results/<dataset>/<protocol>/summary.json`` gathers the per-step JSON files of the workflow:

- ``knn``: per metric, ``accuracy_per_k`` ({k: accuracy}), ``macro_f1_per_k``, ``best_k``,
  ``best_accuracy`` (choosing k on test is optimistic: ``k1_accuracy`` is the honest figure);
- ``teacher``: per method, the teacher diagnostics on train (LOO accuracy, entropy, ECE);
- ``transformer`` / ``distilled``: ``accuracy_mean``, ``accuracy_std`` (sample std over seeds,
  ddof=1; 0 for one seed), ``macro_f1_mean``, ``per_seed`` ({seed: accuracy});
- ``inference``: ``student_ms_per_sample`` (batch 1, mean over the distilled runs),
  ``student_ms_per_sample_batched``, ``knn_ms_per_sample`` (exact Procrustes-DTW 1-NN against
  the whole training set), ``speedup`` = knn / student batch 1, ``speedup_batched`` = knn /
  student batched (per-sample throughput; batch 1 is bounded by PyTorch's per-call overhead);
- ``provenance``: ``config_hash``, ``git_revision``, ``packages``, ``data_sha256``.

Measured times differ from run to run. With ``timings_out`` (the workflow's
``results/<dataset>/<protocol>/timings.json``) they are written there, ``inference`` and
``train_seconds`` (per model and seed), and ``summary.json`` keeps only what is the same to
the byte for the same config and seed. :func:`read_summary` puts them back together.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_many, write_text
from ..checksum import sha256_bytes, sha256_file
from ..errors import InputError, read_json
from ..provenance import git_revision, package_versions


def _model_summary(runs: Sequence[dict]) -> dict:
    acc = np.array([r["test"]["accuracy"] for r in runs], dtype=float)
    f1 = np.array([r["test"]["macro_f1"] for r in runs], dtype=float)
    return {
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "macro_f1_mean": float(f1.mean()),
        "n_seeds": len(runs),
        "per_seed": {str(r["seed"]): r["test"]["accuracy"] for r in runs},
        "epochs": sorted({r["epoch"] for r in runs}),
    }


def _run_latency(run: dict, timings: dict[tuple[str, int], dict]) -> dict | None:
    """A run's ``latency_ms_per_sample``: in its metrics (older runs) or its timings file."""
    if "latency_ms_per_sample" in run:
        return run["latency_ms_per_sample"]
    return (timings.get((run["mode"], run["seed"])) or {}).get("latency_ms_per_sample")


def _read_step(path: str | os.PathLike, keys: Sequence[str]) -> dict:
    """A step's JSON output; :class:`InputError` naming it when unreadable or incomplete."""
    res = read_json(path)
    missing = [k for k in keys if not isinstance(res, dict) or k not in res]
    if missing:
        raise InputError(path, f"missing key(s) {missing}: not the expected step output")
    return res


def summarize(
    out: str | os.PathLike,
    *,
    knn: Sequence[str | os.PathLike],
    teachers: Sequence[str | os.PathLike],
    runs: Sequence[str | os.PathLike],
    latency: Sequence[str | os.PathLike],
    store: str | os.PathLike,
    config: dict,
    dataset: str,
    protocol: str,
    run_timings: Sequence[str | os.PathLike] = (),
    timings_out: str | os.PathLike | None = None,
) -> dict:
    """Gather the step outputs into one summary (module docstring) and write it atomically.

    ``run_timings``: the runs' ``timings.json`` files (latency of runs whose metrics do not
    hold it). ``timings_out``: where to write the measured times; without it they stay in the
    summary. Returns the whole summary, times included.
    """
    summary: dict = {"dataset": dataset, "protocol": protocol, "knn": {}, "teacher": {}}
    for path in knn:
        res = _read_step(path, ("metric", "per_k", "best_k", "best_accuracy"))
        try:
            summary["knn"][res["metric"]] = {
                "accuracy_per_k": {k: v["accuracy"] for k, v in res["per_k"].items()},
                "macro_f1_per_k": {k: v["macro_f1"] for k, v in res["per_k"].items()},
                "k1_accuracy": res["per_k"]["1"]["accuracy"],
                "best_k": res["best_k"],
                "best_accuracy": res["best_accuracy"],
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(path, f"malformed KNN result ({exc!r})") from exc
    for path in teachers:
        res = _read_step(path, ("method",))
        summary["teacher"][res["method"]] = res
    timings = {}
    for path in run_timings:
        res = _read_step(path, ("mode", "seed"))
        timings[(res["mode"], res["seed"])] = res
    by_mode: dict[str, list[dict]] = {}
    for path in runs:
        res = _read_step(path, ("mode", "seed", "epoch", "test"))
        if not isinstance(res["test"], dict) or not {"accuracy", "macro_f1"} <= set(res["test"]):
            raise InputError(path, "missing test accuracy or macro_f1")
        res["_path"] = path
        by_mode.setdefault(res["mode"], []).append(res)
    for mode, mode_runs in sorted(by_mode.items()):
        summary[mode] = _model_summary(sorted(mode_runs, key=lambda r: r["seed"]))
    student = by_mode.get("distilled") or next(iter(by_mode.values()), [])
    inference: dict = {}
    lat = [_run_latency(r, timings) for r in student]
    if student and all(lat):
        inference["student_ms_per_sample"] = float(np.mean([x["batch_1"] for x in lat]))
        batched = [v for x in lat for k, v in x.items() if re.fullmatch(r"batch_\d+", k)]
        inference["student_ms_per_sample_batched"] = float(min(batched))
    elif student:
        missing = [str(r["_path"]) for r, x in zip(student, lat, strict=True) if not x]
        raise InputError(missing[0], "no latency_ms_per_sample in it or its timings file")
    for path in latency:
        res = _read_step(path, ("ms_per_query", "metric"))
        inference["knn_ms_per_sample"] = res["ms_per_query"]
        inference["knn_metric"] = res["metric"]
    if "student_ms_per_sample" in inference and "knn_ms_per_sample" in inference:
        inference["speedup"] = inference["knn_ms_per_sample"] / inference["student_ms_per_sample"]
        inference["speedup_batched"] = (
            inference["knn_ms_per_sample"] / inference["student_ms_per_sample_batched"]
        )
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    summary["provenance"] = {
        "config_hash": sha256_bytes(blob)[:16],
        "git_revision": git_revision(),
        "packages": package_versions(),
        "data_sha256": sha256_file(store),
    }
    train_seconds: dict[str, dict[str, float]] = {}
    for (mode, seed), res in sorted(timings.items()):
        if "train_seconds" in res:
            train_seconds.setdefault(mode, {})[str(seed)] = res["train_seconds"]
    if timings_out is None:
        summary["inference"] = inference
        write_text(out, _dump(summary))
        return summary
    measured = {"inference": inference, "train_seconds": train_seconds}
    write_many({out: _dump(summary).encode(), timings_out: _dump(measured).encode()})
    return {**summary, **measured}


def _dump(obj: dict) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def read_summary(path: str | os.PathLike, timings: str | os.PathLike | None = None) -> dict:
    """A ``summary.json`` with its measured times put back (module docstring).

    ``timings`` defaults to ``timings.json`` beside the summary; where the summary has no
    ``inference`` section and that file exists, its ``inference`` and ``train_seconds`` are
    merged in. :class:`InputError` naming the file that is unreadable.
    """
    summary = read_json(path, "summary JSON")
    if not isinstance(summary, dict):
        raise InputError(path, "not a summary (expected a JSON object)")
    side = Path(timings) if timings is not None else Path(path).with_name("timings.json")
    if "inference" not in summary and side.is_file():
        measured = read_json(side, "timings JSON")
        if not isinstance(measured, dict):
            raise InputError(side, "not a timings file (expected a JSON object)")
        summary["inference"] = measured.get("inference") or {}
        summary.setdefault("train_seconds", measured.get("train_seconds") or {})
    return summary
