"""The label-budget study's summary: every run's row, per budget and arm the mean with a 95 %
interval from a hierarchical bootstrap over subsets and seeds, the declared paired
differences, and the verdict in words (:mod:`geokd.models.budgets` runs the study).

The bootstrap resamples the budget's labelled subsets with replacement and, inside each drawn
subset, its seeds with replacement; a resample's value is the mean over its subsets of their
seed means (every subset weighs the same). Differences are paired: run by run (same subset and
seed; ``knn`` has one run per subset), then bootstrapped the same way. The comparisons are
declared before the run: ``geometry_ssl - self_ssl`` and ``geometry_ssl - labels`` (and, for
the goal, ``geometry_ssl`` against ``knn`` and against the better of ``labels`` and
``self_ssl``); nothing is picked on the test split.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..jsonfile import write_json

N_BOOT = 2000
DECLARED = (("geometry_ssl", "self_ssl"), ("geometry_ssl", "labels"))


def hierarchical_bootstrap(
    groups: list[list[float]], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of the groups' means and its 95 % percentile interval
    over resamples of the groups and, inside each, of their values (module docstring)."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not groups:
        raise ValueError("no values to bootstrap")
    mean = float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        picked = rng.integers(0, len(groups), len(groups))
        stats[b] = np.mean([rng.choice(groups[i], len(groups[i])).mean() for i in picked])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return mean, float(lo), float(hi)


def _runs(rows: list[dict], arm: str) -> dict[tuple, dict]:
    """``{(subset, seed): accuracy}`` of one arm."""
    return {(tuple(r["labelled_subjects"]), r["seed"]): r["accuracy"] for r in rows
            if r["arm"] == arm}  # fmt: skip


def _paired(rows: list[dict], a: str, b: str) -> list[list[float]]:
    """Per subset, the paired differences ``a - b`` (a ``knn`` side pairs with every seed)."""
    ra, rb = _runs(rows, a), _runs(rows, b)
    by_subset: dict[tuple, list[float]] = defaultdict(list)
    for (subset, seed), acc in sorted(ra.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        other = rb.get((subset, seed), rb.get((subset, None)))
        if other is not None:
            by_subset[subset].append(acc - other)
    return list(by_subset.values())


def _interval(groups) -> dict:
    mean, lo, hi = hierarchical_bootstrap(groups)
    return {"mean": mean, "ci95": [lo, hi], "n_subsets": len(groups),
            "n_runs": int(sum(len(g) for g in groups))}  # fmt: skip


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def verdict(m: int, arms: dict, diffs: dict) -> str:
    """The budget's result in words, whatever it is."""
    g = arms.get("geometry_ssl")
    if g is None:
        return f"{m} labelled subject(s): no geometry_ssl runs."
    parts = [f"{m} labelled subject(s): geometry_ssl {100 * g['mean']:.1f} % "
             f"(95 % CI {100 * g['ci95'][0]:.1f} to {100 * g['ci95'][1]:.1f})"]  # fmt: skip
    for key, d in diffs.items():
        lo, hi = d["ci95"]
        sign = "above" if lo > 0 else ("below" if hi < 0 else "includes")
        word = {"above": "ahead of", "below": "behind", "includes": "not different from"}[sign]
        other = key.split(" - ")[1]
        parts.append(f"{word} {other} by {_pts(d['mean'])} points (95 % CI {_pts(lo)} to "
                     f"{_pts(hi)})")  # fmt: skip
    return "; ".join(parts) + "."


def summarise_budgets(
    subset_files: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    dataset: str,
    protocol: str,
    train_subjects: list[int],
    full_runs: dict[str, list[str | os.PathLike]] | None = None,
    full_knn: str | os.PathLike | None = None,
) -> dict:
    """Aggregate the subset JSONs of :func:`geokd.models.budgets.run_subset` into ``out``.

    ``full_runs`` (arm -> the full-label run's ``metrics.json`` per seed) and ``full_knn`` (its
    KNN JSON) add the full-label reference row (``budget`` = every training subject,
    ``full_labels: true``), reported beside the budgets, not bootstrapped over subsets.
    """
    rows, teachers, seconds = [], [], 0.0
    for path in subset_files:
        try:
            data = json.loads(Path(path).read_text())
            rows += data["rows"]
            teachers.append({"labelled_subjects": data["labelled_subjects"], **data["teacher"]})
            seconds += float(data.get("seconds", 0.0))
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(path, f"not a budget subset result ({exc})") from exc
    for r in rows:
        r.setdefault("full_labels", False)
    n = len(train_subjects)
    if full_knn is not None:
        knn = json.loads(Path(full_knn).read_text())
        rows.append({"budget": n, "labelled_subjects": sorted(train_subjects), "arm": "knn",
                     "seed": None, "accuracy": knn["per_k"]["1"]["accuracy"],
                     "full_labels": True})  # fmt: skip
    for arm, paths in (full_runs or {}).items():
        for p in paths:
            metrics = json.loads(Path(p).read_text())
            rows.append({"budget": n, "labelled_subjects": sorted(train_subjects), "arm": arm,
                         "seed": metrics["seed"], "accuracy": metrics["test"]["accuracy"],
                         "full_labels": True, "model": metrics["mode"]})  # fmt: skip
    by_budget = []
    for m in sorted({r["budget"] for r in rows}):
        sub = [r for r in rows if r["budget"] == m]
        arms = {}
        for arm in dict.fromkeys(r["arm"] for r in sub):
            groups = defaultdict(list)
            for r in sub:
                if r["arm"] == arm:
                    groups[tuple(r["labelled_subjects"])].append(r["accuracy"])
            arms[arm] = _interval(list(groups.values()))
        diffs = {}
        for a, b in DECLARED:
            if a in arms and b in arms:
                diffs[f"{a} - {b}"] = _interval(_paired(sub, a, b))
        goal = None
        if "geometry_ssl" in arms and {"knn", "labels", "self_ssl"} <= set(arms):
            best = max(("labels", "self_ssl"), key=lambda k: arms[k]["mean"])
            vs_knn = _interval(_paired(sub, "geometry_ssl", "knn"))
            vs_best = diffs.get(f"geometry_ssl - {best}")
            goal = {
                "at_least_knn": arms["geometry_ssl"]["mean"] >= arms["knn"]["mean"],
                "geometry_ssl - knn": vs_knn,
                "best_labels_only": best,
                "at_least_best_labels_only": vs_best is not None and vs_best["mean"] >= 0,
                "ahead_of_self_ssl_interval_above_0": diffs["geometry_ssl - self_ssl"]["ci95"][0]
                > 0,
            }
        full = any(r["full_labels"] for r in sub)
        text = verdict(m, arms, diffs) if not full else (
            f"all {m} training subjects labelled (the full-label run, reference): "
            + ", ".join(f"{a} {100 * v['mean']:.1f} %" for a, v in arms.items())
        )  # fmt: skip
        by_budget.append({"budget": m, "full_labels": full, "arms": arms,
                          "differences": diffs, "goal": goal, "verdict": text})  # fmt: skip
    result = {
        "dataset": dataset,
        "protocol": protocol,
        "train_subjects": sorted(train_subjects),
        "declared_comparisons": [f"{a} - {b}" for a, b in DECLARED],
        "bootstrap": {"resamples": N_BOOT, "levels": ["subsets", "seeds"], "seed": 0},
        "by_budget": by_budget,
        "rows": rows,
        "teachers": teachers,
        "train_seconds": seconds,
    }
    write_json(out, result)
    return result
