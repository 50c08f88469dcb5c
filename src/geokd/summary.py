"""One summary per dataset and protocol: KNN, teacher, students, inference speed, provenance.

``results/<dataset>/<protocol>/summary.json`` gathers the per-step JSON files of the workflow:

- ``knn``: per metric, ``accuracy_per_k`` ({k: accuracy}), ``macro_f1_per_k``, ``best_k``,
  ``best_accuracy`` (choosing k on test is optimistic: ``k1_accuracy`` is the honest figure);
- ``teacher``: per method, the teacher diagnostics on train (LOO accuracy, entropy, ECE);
- ``transformer`` / ``distilled``: ``accuracy_mean``, ``accuracy_std`` (sample std over seeds,
  ddof=1; 0 for one seed), ``macro_f1_mean``, ``per_seed`` ({seed: accuracy});
- ``inference``: ``student_ms_per_sample`` (batch 1, mean over the distilled runs),
  ``student_ms_per_sample_batched``, ``knn_ms_per_sample`` (exact Procrustes-DTW 1-NN against
  the whole training set), ``speedup`` = knn / student;
- ``provenance``: ``config_hash``, ``git_revision``, ``packages``, ``data_sha256``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence

import numpy as np

from .atomic import write_text
from .checksum import sha256_bytes, sha256_file
from .errors import read_json
from .provenance import git_revision, package_versions


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
) -> dict:
    """Gather the step outputs into one summary (module docstring) and write it atomically."""
    summary: dict = {"dataset": dataset, "protocol": protocol, "knn": {}, "teacher": {}}
    for path in knn:
        res = read_json(path)
        summary["knn"][res["metric"]] = {
            "accuracy_per_k": {k: v["accuracy"] for k, v in res["per_k"].items()},
            "macro_f1_per_k": {k: v["macro_f1"] for k, v in res["per_k"].items()},
            "k1_accuracy": res["per_k"]["1"]["accuracy"],
            "best_k": res["best_k"],
            "best_accuracy": res["best_accuracy"],
        }
    for path in teachers:
        res = read_json(path)
        summary["teacher"][res["method"]] = res
    by_mode: dict[str, list[dict]] = {}
    for path in runs:
        res = read_json(path)
        by_mode.setdefault(res["mode"], []).append(res)
    for mode, mode_runs in sorted(by_mode.items()):
        summary[mode] = _model_summary(sorted(mode_runs, key=lambda r: r["seed"]))
    student = by_mode.get("distilled") or next(iter(by_mode.values()), [])
    inference: dict = {}
    if student:
        lat = [r["latency_ms_per_sample"] for r in student]
        inference["student_ms_per_sample"] = float(np.mean([x["batch_1"] for x in lat]))
        batched = [v for x in lat for k, v in x.items() if re.fullmatch(r"batch_\d+", k)]
        inference["student_ms_per_sample_batched"] = float(min(batched))
    for path in latency:
        res = read_json(path)
        inference["knn_ms_per_sample"] = res["ms_per_query"]
        inference["knn_metric"] = res["metric"]
    if "student_ms_per_sample" in inference and "knn_ms_per_sample" in inference:
        inference["speedup"] = inference["knn_ms_per_sample"] / inference["student_ms_per_sample"]
    summary["inference"] = inference
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    summary["provenance"] = {
        "config_hash": sha256_bytes(blob)[:16],
        "git_revision": git_revision(),
        "packages": package_versions(),
        "data_sha256": sha256_file(store),
    }
    write_text(out, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
