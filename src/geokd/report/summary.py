"""One summary per dataset and protocol: KNN, teacher, students, inference speed, provenance.

``results/<dataset>/<protocol>/summary.json`` gathers the per-step JSON files of the workflow:

- ``knn``: per metric, ``accuracy_per_k`` ({k: accuracy}), ``macro_f1_per_k``, ``best_k``,
  ``best_accuracy`` (choosing k on test is optimistic: ``k1_accuracy`` is the honest figure);
- ``teacher``: per method, the teacher diagnostics on train (LOO accuracy, entropy, ECE);
- one entry per model family (the runs' ``mode``: ``transformer``, ``label_smoothing``,
  ``distilled``, ``metric``, ``nngk``, ensembles...): ``accuracy_mean``, ``accuracy_std``
  (sample std over seeds, ddof=1; 0 for one seed), ``macro_f1_mean``, ``n_seeds``,
  ``per_seed`` ({seed: accuracy}), ``epochs``; a seed ensemble (one run: one model) also
  ``members``, the seeds it averages;
- ``declared_comparisons``: the comparisons the config declares before the run
  (``training.comparisons``: ``[geometry-taught family, labels-only family]`` pairs), each
  paired by seed (:func:`compare_pair`): ``geometry``, ``labels_only``, ``seeds``,
  ``differences``, ``mean_difference``, ``ci95``, ``n``, ``verdict``, ``declared: true``; a
  pair whose families were not both trained is left out. Nothing is chosen by test accuracy.
  ``comparisons`` is the first of them (the headline's); both absent without any;
- ``winner``: the best model overall, ``model`` and ``accuracy`` (students by
  ``accuracy_mean``; ``knn``, the 1-NN accuracy of the teacher's metric, with ``metric``);
- ``inference``: ``models`` ({model: ``ms_per_sample`` (batch 1, mean over its runs),
  ``ms_per_sample_batched`` (best batch size), ``speedup``, ``speedup_batched``}), and for
  the student (``distilled``, else the first model) ``student_ms_per_sample``,
  ``student_ms_per_sample_batched``; ``knn_ms_per_sample`` (exact Procrustes-DTW 1-NN against
  the whole training set), ``speedup`` = knn / student batch 1, ``speedup_batched`` = knn /
  student batched (per-sample throughput; batch 1 is bounded by PyTorch's per-call overhead);
  these were timed inside the training, ensemble and ``knn_latency`` jobs, beside whatever
  else ran. With ``speed`` (a split table): ``speed``, the student and exact 1-NN timed again
  by the summary job on one thread, in PyTorch eager mode and exported to ONNX
  (:mod:`.speed`; the workflow gives that job the whole machine);
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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_many, write_text
from ..checksum import sha256_bytes, sha256_file
from ..errors import InputError, read_json
from ..jsonfile import json_text
from ..provenance import git_revision, package_versions

#: Model families in display order; other names (ensembles...) follow in name order.
MODEL_ORDER = ("transformer", "label_smoothing", "distilled", "metric", "nngk")
#: The families taught by the labels alone (the others named here learn from the geometry).
LABELS_ONLY = ("transformer", "label_smoothing", "nngk")
#: Top-level summary keys that are not models.
RESERVED = (
    "dataset",
    "protocol",
    "knn",
    "teacher",
    "inference",
    "provenance",
    "train_seconds",
    "comparisons",
    "declared_comparisons",
    "winner",
)


def model_family(name: str) -> str | None:
    """The side a model takes in the comparison.

    Parameters
    ----------
    name : str
        A model family (a run's ``mode``).

    Returns
    -------
    str or None
        ``"geometry"`` for names containing ``distill`` or ``metric``, ``"labels_only"`` for
        :data:`LABELS_ONLY`, ``None`` for ensembles (names containing ``ensemble``) and
        anything else: those are not compared.
    """
    if "ensemble" in name:
        return None
    if "distill" in name or "metric" in name:
        return "geometry"
    return "labels_only" if name in LABELS_ONLY else None


def model_names(summary: Mapping) -> list[str]:
    """The models of a summary (entries with an ``accuracy_mean``), in display order.

    :data:`MODEL_ORDER` first, then the other names in name order; works on any summary,
    older ones included.
    """
    return sort_models(
        k
        for k, v in summary.items()
        if k not in RESERVED and isinstance(v, Mapping) and "accuracy_mean" in v
    )


def sort_models(names: Iterable[str]) -> list[str]:
    """Model names without repeats in display order: :data:`MODEL_ORDER`, then by name."""
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(set(names), key=lambda m: (rank.get(m, len(rank)), m))


def paired_difference(a: Mapping[str, float], b: Mapping[str, float]) -> dict:
    """Per-seed differences ``a - b`` over the seeds both have, with a 95 % t-interval.

    Parameters
    ----------
    a, b : mapping of str to float
        Accuracy per seed (``per_seed`` of two model entries; keys are seed numbers).

    Returns
    -------
    dict
        ``seeds`` (shared seeds as ints, ascending), ``differences`` (in that order),
        ``mean_difference`` (``None`` without shared seeds), ``ci95``: ``[low, high]`` =
        mean -/+ t(0.975, n - 1) * sd / sqrt(n) with sd of ddof=1 (``None`` for n < 2), and
        ``n``.
    """
    from scipy import stats

    seeds = sorted(set(a) & set(b), key=int)
    diffs = [float(a[s]) - float(b[s]) for s in seeds]
    n = len(diffs)
    mean = float(np.mean(diffs)) if n else None
    ci = None
    if n >= 2:
        half = float(stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / np.sqrt(n))
        ci = [mean - half, mean + half]
    return {
        "seeds": [int(s) for s in seeds],
        "differences": diffs,
        "mean_difference": mean,
        "ci95": ci,
        "n": n,
    }


def _points(x: float) -> str:
    """A fraction as percentage points, one decimal, without a negative zero."""
    text = f"{100 * x:.1f}"
    return "0.0" if text == "-0.0" else text


def verdict(geometry: str, labels_only: str, paired: Mapping) -> str:
    """A plain-English sentence on a :func:`paired_difference` of ``geometry - labels_only``.

    Significant (the 95 % CI excludes 0): "X beats Y by d points (95 % CI lo to hi, n paired
    seeds)."; otherwise it says the difference is not significant; with one seed there is no
    interval and with none no comparison.
    """
    n, mean, ci = paired["n"], paired["mean_difference"], paired["ci95"]
    if not n:
        return f"{geometry} and {labels_only} share no seed: no paired comparison."
    seeds = f"{n} paired seed{'s' if n != 1 else ''}"
    side = "ahead of" if mean >= 0 else "behind"
    if ci is None:
        return (
            f"{geometry} is {side} {labels_only} by {_points(abs(mean))} points on {seeds}; "
            "too few seeds for a confidence interval."
        )
    lo, hi = ci
    if lo > 0:
        return (
            f"{geometry} beats {labels_only} by {_points(mean)} points "
            f"(95 % CI {_points(lo)} to {_points(hi)}, {seeds})."
        )
    if hi < 0:
        return (
            f"{labels_only} beats {geometry} by {_points(-mean)} points "
            f"(95 % CI {_points(-hi)} to {_points(-lo)}, {seeds})."
        )
    return (
        f"{geometry} is {side} {labels_only} by {_points(abs(mean))} points, but the "
        f"difference is not significant (95 % CI {_points(lo)} to {_points(hi)}, {seeds})."
    )


def compare_pair(summary: Mapping, geometry: str, labels_only: str) -> dict | None:
    """One declared comparison: ``geometry`` against ``labels_only`` (two families of the
    summary), paired by seed; ``None`` where either was not trained.

    Returns
    -------
    dict or None
        ``geometry``, ``labels_only`` (names), the :func:`paired_difference` of their
        ``per_seed`` accuracies (geometry - labels only), its :func:`verdict` and
        ``declared: True``.
    """
    if geometry not in summary or labels_only not in summary:
        return None
    paired = paired_difference(summary[geometry]["per_seed"], summary[labels_only]["per_seed"])
    return {"geometry": geometry, "labels_only": labels_only, **paired,
            "verdict": verdict(geometry, labels_only, paired), "declared": True}  # fmt: skip


def declared_comparisons(summary: Mapping, pairs) -> list[dict]:
    """:func:`compare_pair` of every declared ``(geometry, labels_only)`` pair that was
    trained, in the declared order."""
    found = [compare_pair(summary, geo, lab) for geo, lab in pairs]
    return [c for c in found if c is not None]


def comparisons_of(summary: Mapping) -> list[dict]:
    """The declared comparisons of a summary (an older summary's single ``comparisons``)."""
    listed = summary.get("declared_comparisons")
    if listed is not None:
        return list(listed)
    one = summary.get("comparisons")
    return [one] if one else []


def teacher_metric(knn: Mapping, timed: str | None = None) -> str | None:
    """The KNN metric standing for the teacher: ``timed`` (the metric the workflow times,
    the teacher's) where present, else ``procrustes``, else the first in name order."""
    for name in (timed, "procrustes"):
        if name in knn:
            return name
    return min(knn) if knn else None


def best_model(summary: Mapping, knn_metric: str | None = None) -> dict | None:
    """The best model overall: ``{"model", "accuracy"}`` (``None`` without any).

    Students compete by ``accuracy_mean``, KNN (``"model": "knn"``, with its ``metric``) by
    the 1-NN accuracy of ``knn_metric``; ties go to the first in display order, KNN last.
    """
    found: dict | None = None
    for name in model_names(summary):
        acc = float(summary[name]["accuracy_mean"])
        if found is None or acc > found["accuracy"]:
            found = {"model": name, "accuracy": acc}
    if knn_metric is not None:
        acc = float(summary["knn"][knn_metric]["k1_accuracy"])
        if found is None or acc > found["accuracy"]:
            found = {"model": "knn", "accuracy": acc, "metric": knn_metric}
    return found


def _model_summary(runs: Sequence[dict]) -> dict:
    acc = np.array([r["test"]["accuracy"] for r in runs], dtype=float)
    f1 = np.array([r["test"]["macro_f1"] for r in runs], dtype=float)
    out = {
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "macro_f1_mean": float(f1.mean()),
        "n_seeds": len(runs),
        "per_seed": {str(r["seed"]): r["test"]["accuracy"] for r in runs},
        "epochs": sorted({r["epoch"] for r in runs}),
    }
    if len(runs) == 1 and isinstance(runs[0].get("members"), list):  # an ensemble
        out["members"] = list(runs[0]["members"])
    return out


def _speed(by_mode: dict, latency: Sequence, split, store, config: Mapping) -> dict:
    """``inference.speed`` (module docstring): the student (the distilled model where
    trained, else the first model; its lowest seed, whose ``model.pt`` lies beside its
    metrics) and exact 1-NN with the metric and queries of the KNN latency file, timed by
    :func:`.speed.measure_speed`."""
    from .speed import measure_speed

    models = [m for m, runs in by_mode.items() if isinstance(runs[0]["seed"], int)]
    if not models or not latency:
        raise InputError("--speed", "timing inference needs a student run and a --latency file")
    mode = "distilled" if "distilled" in models else models[0]
    run = by_mode[mode][0]
    checkpoint = Path(run["_path"]).with_name("model.pt")
    knn = _read_step(latency[0], ("metric", "n_queries"))
    dist = config.get("distances") or {}
    params = dict((dist.get("metric_params") or {}).get(knn["metric"]) or {})
    if dist.get("window") is not None:
        params["window"] = dist["window"]
    if dist.get("frames") is not None:  # the frame budget: 1-NN queries resampled sequences
        params["frames"] = dist["frames"]
    res = measure_speed(
        checkpoint, store, split, knn_metric=knn["metric"], n_queries=int(knn["n_queries"]),
        knn_params=params,
    )  # fmt: skip
    return {"model": mode, "seed": run["seed"], **res}


def _run_latency(run: dict, timings: dict[tuple[str, int], dict]) -> dict | None:
    """A run's ``latency_ms_per_sample``: in its metrics (older runs) or its timings file."""
    if "latency_ms_per_sample" in run:
        return run["latency_ms_per_sample"]
    return (timings.get((run["mode"], run["seed"])) or {}).get("latency_ms_per_sample")


def _latency_summary(latencies: Sequence[dict]) -> dict:
    """``ms_per_sample`` (batch 1, mean over runs) and ``ms_per_sample_batched`` (the best
    of every ``batch_<n>`` of every run)."""
    batched = [v for x in latencies for k, v in x.items() if re.fullmatch(r"batch_\d+", k)]
    return {
        "ms_per_sample": float(np.mean([x["batch_1"] for x in latencies])),
        "ms_per_sample_batched": float(min(batched)),
    }


def _model_latencies(by_mode: dict[str, list[dict]], timings: dict, student: str | None) -> dict:
    """Per model, :func:`_latency_summary` of its runs; a model none of whose runs was timed
    is left out, unless it is the ``student``. :class:`InputError` naming a run without
    latency where others of its model have one (or it is the student's)."""
    out = {}
    for mode, runs in sorted(by_mode.items()):
        lat = [_run_latency(r, timings) for r in runs]
        if all(lat):
            out[mode] = _latency_summary(lat)
        elif any(lat) or mode == student:
            missing = next(r["_path"] for r, x in zip(runs, lat, strict=True) if not x)
            raise InputError(missing, "no latency_ms_per_sample in it or its timings file")
    return out


def _inference(by_mode: dict[str, list[dict]], timings: dict, latency: Sequence) -> dict:
    """The ``inference`` section (module docstring) from the runs and the KNN latency files."""
    student = "distilled" if "distilled" in by_mode else next(iter(by_mode), None)
    inference: dict = {}
    for path in latency:
        res = _read_step(path, ("ms_per_query", "metric"))
        inference["knn_ms_per_sample"] = res["ms_per_query"]
        inference["knn_metric"] = res["metric"]
    models = _model_latencies(by_mode, timings, student)
    knn_ms = inference.get("knn_ms_per_sample")
    for lat in models.values():
        if knn_ms is not None:
            lat["speedup"] = knn_ms / lat["ms_per_sample"]
            lat["speedup_batched"] = knn_ms / lat["ms_per_sample_batched"]
    if models:
        inference["models"] = models
    if student in models:
        inference["student_ms_per_sample"] = models[student]["ms_per_sample"]
        inference["student_ms_per_sample_batched"] = models[student]["ms_per_sample_batched"]
    if "student_ms_per_sample" in inference and knn_ms is not None:
        inference["speedup"] = models[student]["speedup"]
        inference["speedup_batched"] = models[student]["speedup_batched"]
    return inference


def _read_step(path: str | os.PathLike, keys: Sequence[str]) -> dict:
    """A step's JSON output; :class:`InputError` naming it when unreadable or incomplete."""
    res = read_json(path)
    missing = [k for k in keys if not isinstance(res, dict) or k not in res]
    if missing:
        raise InputError(path, f"missing key(s) {missing}: not the expected step output")
    return res


def _read_runs(runs: Sequence[str | os.PathLike]) -> dict[str, list[dict]]:
    """The runs' metrics by model, in the order first met, each model's runs by seed."""
    by_mode: dict[str, list[dict]] = {}
    for path in runs:
        res = _read_step(path, ("mode", "seed", "epoch", "test"))
        if not isinstance(res["test"], dict) or not {"accuracy", "macro_f1"} <= set(res["test"]):
            raise InputError(path, "missing test accuracy or macro_f1")
        if res["mode"] in RESERVED:
            raise InputError(path, f"model name {res['mode']!r} is reserved in the summary")
        res["_path"] = path
        by_mode.setdefault(res["mode"], []).append(res)
    return {mode: sorted(rs, key=lambda r: r["seed"]) for mode, rs in by_mode.items()}


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
    speed: str | os.PathLike | None = None,
) -> dict:
    """Gather the step outputs into one summary (module docstring) and write it atomically.

    ``run_timings``: the runs' ``timings.json`` files (latency of runs whose metrics do not
    hold it). ``timings_out``: where to write the measured times; without it they stay in the
    summary. ``speed``: the protocol's split table: time the student and exact 1-NN on one
    thread (``inference.speed``; :mod:`.speed`). Returns the whole summary, times included.
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
    by_mode = _read_runs(runs)
    for mode, mode_runs in sorted(by_mode.items()):
        summary[mode] = _model_summary(mode_runs)
    inference = _inference(by_mode, timings, latency)
    if speed is not None:
        inference["speed"] = _speed(by_mode, latency, speed, store, config)
    pairs = ((config or {}).get("training") or {}).get("comparisons") or []
    declared = declared_comparisons(summary, pairs)
    if declared:
        summary["comparisons"], summary["declared_comparisons"] = declared[0], declared
    winner = best_model(summary, teacher_metric(summary["knn"], inference.get("knn_metric")))
    if winner is not None:
        summary["winner"] = winner
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
    return json_text(obj)


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
