"""The files DVC reads: a flat metrics file and the training curves as rows.

``dvc metrics show/diff`` wants a small flat file of numbers, and ``dvc plots show`` a list of
rows; :func:`write_dvc_files` derives both from a protocol's ``summary.json`` and its runs'
``history.json`` files (``geokd dvc-metrics``, rule ``dvc_metrics``):

- **metrics** (``{name: number}``): ``knn_1nn_<metric>`` (the honest KNN figure), for each
  model ``<model>_accuracy``, ``<model>_accuracy_std``, ``<model>_macro_f1`` and
  ``<model>_seeds``, and where the summary compares families ``geometry_gain`` with
  ``geometry_gain_ci_low``/``_high`` (best geometry-taught minus best labels-only, paired);
- **curves** (rows, one per epoch): ``epoch``, and for each model the mean over its seeds of
  ``<model>_test_accuracy`` (where it was evaluated that epoch) and ``<model>_loss``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..atomic import write_many
from ..errors import InputError, read_json
from ..jsonfile import json_text
from .summary import model_names, read_summary


def flat_metrics(summary: Mapping) -> dict[str, float]:
    """The flat metrics of a summary (module docstring)."""
    out: dict[str, float] = {}
    for metric, res in sorted((summary.get("knn") or {}).items()):
        out[f"knn_1nn_{metric}"] = res["k1_accuracy"]
    for mode in model_names(summary):
        res = summary[mode]
        out[f"{mode}_accuracy"] = res["accuracy_mean"]
        out[f"{mode}_accuracy_std"] = res["accuracy_std"]
        out[f"{mode}_macro_f1"] = res["macro_f1_mean"]
        out[f"{mode}_seeds"] = res["n_seeds"]
    cmp = summary.get("comparisons") or {}  # the first declared comparison
    if cmp.get("mean_difference") is not None:
        out["geometry_gain"] = cmp["mean_difference"]
    if cmp.get("ci95"):  # none for a single seed
        out["geometry_gain_ci_low"], out["geometry_gain_ci_high"] = cmp["ci95"]
    for c in summary.get("declared_comparisons") or []:  # every declared one
        key = f"gain_{c['geometry']}_vs_{c['labels_only']}"
        if c.get("mean_difference") is not None:
            out[key] = c["mean_difference"]
        if c.get("ci95"):
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = c["ci95"]
    return out


def _series(history: Mapping, where: str) -> tuple[dict[int, float], dict[int, float]]:
    """(test accuracy, loss) of one run by epoch."""
    try:
        test = (history.get("eval") or {}).get("test") or {}
        acc = dict(zip(test.get("epoch", []), test.get("accuracy", []), strict=True))
        loss = dict(zip(history["epoch"], history["loss"], strict=True))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(where, f"malformed training history ({exc!r})") from exc
    return acc, loss


def curve_rows(histories: Mapping[str, Sequence[tuple[str, Mapping]]]) -> list[dict]:
    """Rows (one per epoch) of the mean curves of each model over its runs (module docstring);
    ``histories`` maps a model to its runs' (file, history) pairs."""
    series: dict[str, dict[int, float]] = {}
    for mode, runs in sorted(histories.items()):
        per_run = [_series(h, where) for where, h in runs]
        for key, index in (("test_accuracy", 0), ("loss", 1)):
            epochs = sorted({e for run in per_run for e in run[index]})
            series[f"{mode}_{key}"] = {
                e: float(np.mean([run[index][e] for run in per_run if e in run[index]]))
                for e in epochs
            }
    epochs = sorted({e for values in series.values() for e in values})
    return [
        {"epoch": e, **{name: values[e] for name, values in series.items() if e in values}}
        for e in epochs
    ]


def write_dvc_files(
    summary_path: str | os.PathLike,
    histories: Sequence[tuple[str, str | os.PathLike]],
    metrics_out: str | os.PathLike,
    curves_out: str | os.PathLike,
) -> dict:
    """Write the flat metrics and the curve rows (module docstring) atomically; ``histories``
    are (model, history.json) pairs. Returns the metrics."""
    by_mode: dict[str, list[tuple[str, Mapping]]] = {}
    for mode, path in histories:
        history = read_json(path, "training history")
        if not isinstance(history, dict):
            raise InputError(path, "not a training history (expected a JSON object)")
        by_mode.setdefault(mode, []).append((str(path), history))
    metrics = flat_metrics(read_summary(summary_path))
    write_many(
        {
            metrics_out: json_text(metrics).encode(),
            curves_out: json_text(curve_rows(by_mode)).encode(),
        }
    )
    return metrics
