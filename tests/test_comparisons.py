"""The comparison of geometry-taught against labels-only models: statistics, sides, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from geokd.report.summary import (
    best_model,
    compare_pair,
    declared_comparisons,
    model_family,
    model_names,
    paired_difference,
    verdict,
)

# t quantile 0.975 with 2 degrees of freedom (tables: 4.303)
T_975_2 = 4.302652729749462


def _model(per_seed: dict[str, float]) -> dict:
    acc = np.array(list(per_seed.values()))
    return {
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "macro_f1_mean": float(acc.mean()),
        "n_seeds": len(acc),
        "per_seed": per_seed,
    }


def test_paired_difference_by_hand():
    a = {"0": 0.70, "1": 0.74, "2": 0.75}
    b = {"2": 0.72, "0": 0.68, "1": 0.70, "3": 0.99}  # seed 3: b only, left out
    res = paired_difference(a, b)
    assert res["seeds"] == [0, 1, 2] and res["n"] == 3
    assert res["differences"] == pytest.approx([0.02, 0.04, 0.03])
    assert res["mean_difference"] == pytest.approx(0.03)
    # differences 0.02, 0.04, 0.03: sd (ddof=1) = 0.01, half width = t * 0.01 / sqrt(3)
    half = T_975_2 * 0.01 / np.sqrt(3)
    assert res["ci95"] == pytest.approx([0.03 - half, 0.03 + half])
    assert res["ci95"][0] == pytest.approx(0.005159, abs=1e-6)
    # the same interval as scipy's paired t-test
    ci = stats.ttest_rel([0.70, 0.74, 0.75], [0.68, 0.70, 0.72]).confidence_interval(0.95)
    assert res["ci95"] == pytest.approx([ci.low, ci.high])


def test_paired_difference_orders_seeds_as_numbers_and_handles_few_seeds():
    res = paired_difference({"10": 0.5, "2": 0.6}, {"2": 0.4, "10": 0.45})
    assert res["seeds"] == [2, 10]
    assert res["differences"] == pytest.approx([0.2, 0.05])
    one = paired_difference({"0": 0.5, "1": 0.6}, {"1": 0.4})
    assert one["n"] == 1 and one["ci95"] is None
    assert one["mean_difference"] == pytest.approx(0.2)
    none = paired_difference({"0": 0.5}, {"1": 0.4})
    assert none == {
        "seeds": [],
        "differences": [],
        "mean_difference": None,
        "ci95": None,
        "n": 0,
    }
    same = paired_difference({"0": 0.5, "1": 0.6}, {"0": 0.4, "1": 0.5})
    assert same["ci95"] == pytest.approx([0.1, 0.1])  # no spread: a zero-width interval


@pytest.mark.parametrize(
    ("name", "side"),
    [
        ("distilled", "geometry"),
        ("metric", "geometry"),
        ("distilled_kl", "geometry"),
        ("transformer", "labels_only"),
        ("label_smoothing", "labels_only"),
        ("nngk", "labels_only"),
        ("distilled_ensemble", None),
        ("transformer_ensemble", None),
        ("knn", None),
        ("something_else", None),
    ],
)
def test_model_family(name, side):
    assert model_family(name) == side


FIVE = {
    "nngk": _model({"0": 0.60, "1": 0.62, "2": 0.61}),
    "metric": _model({"0": 0.70, "1": 0.74, "2": 0.75}),
    "transformer": _model({"0": 0.55, "1": 0.60, "2": 0.58}),
    "distilled": _model({"0": 0.69, "1": 0.70, "2": 0.71}),
    "label_smoothing": _model({"0": 0.68, "1": 0.70, "2": 0.72}),
    "metric_ensemble": _model({"0": 0.90, "1": 0.91, "2": 0.92}),
}


def test_models_in_display_order_and_best_of_each_side():
    summary = {"knn": {"procrustes": {"k1_accuracy": 0.5}}, "inference": {}, **FIVE}
    assert model_names(summary) == [
        "transformer",
        "label_smoothing",
        "distilled",
        "metric",
        "nngk",
        "metric_ensemble",
    ]
    cmp = compare_pair(summary, "metric", "label_smoothing")  # a declared pair
    assert (cmp["geometry"], cmp["labels_only"]) == ("metric", "label_smoothing")
    assert cmp["declared"] is True
    assert cmp["seeds"] == [0, 1, 2]
    assert cmp["differences"] == pytest.approx([0.02, 0.04, 0.03])
    assert cmp["mean_difference"] == pytest.approx(0.03)
    half = T_975_2 * 0.01 / np.sqrt(3)
    assert cmp["ci95"] == pytest.approx([0.03 - half, 0.03 + half])
    assert cmp["verdict"] == (
        "metric beats label_smoothing by 3.0 points (95 % CI 0.5 to 5.5, 3 paired seeds)."
    )
    assert best_model(summary) == {"model": "metric_ensemble", "accuracy": pytest.approx(0.91)}


def test_comparisons_are_the_declared_pairs_not_the_test_winners():
    summary = {"knn": {"procrustes": {"k1_accuracy": 0.5}}, "inference": {}, **FIVE}
    pairs = [["distilled", "transformer"], ["metric", "nngk"], ["distilled", "absent"]]
    found = declared_comparisons(summary, pairs)
    # in the declared order, whatever the test means say; an untrained family: left out
    assert [(c["geometry"], c["labels_only"]) for c in found] == [
        ("distilled", "transformer"),
        ("metric", "nngk"),
    ]
    assert declared_comparisons(summary, []) == []


def test_missing_side_gives_no_comparison():
    two = {"transformer": FIVE["transformer"], "nngk": FIVE["nngk"]}
    assert compare_pair(two, "distilled", "transformer") is None
    assert compare_pair({}, "metric", "nngk") is None and best_model({}) is None


def test_winner_can_be_knn():
    summary = {"knn": {"procrustes": {"k1_accuracy": 0.8}}, "distilled": FIVE["distilled"]}
    assert best_model(summary, "procrustes") == {
        "model": "knn",
        "accuracy": 0.8,
        "metric": "procrustes",
    }
    assert best_model(summary)["model"] == "distilled"  # without a teacher metric


def _paired(diffs: list[float]) -> dict:
    a = {str(i): 0.5 + d for i, d in enumerate(diffs)}
    return paired_difference(a, {str(i): 0.5 for i in range(len(diffs))})


def test_verdict_wording():
    sig = _paired([0.02, 0.04, 0.03])
    assert verdict("distilled", "label_smoothing", sig) == (
        "distilled beats label_smoothing by 3.0 points (95 % CI 0.5 to 5.5, 3 paired seeds)."
    )
    worse = _paired([-0.02, -0.04, -0.03])
    assert verdict("distilled", "nngk", worse) == (
        "nngk beats distilled by 3.0 points (95 % CI 0.5 to 5.5, 3 paired seeds)."
    )
    unsure = _paired([0.05, -0.01, 0.02])
    text = verdict("metric", "transformer", unsure)
    lo, hi = (100 * x for x in unsure["ci95"])
    assert lo < 0 < hi
    assert text == (
        "metric is ahead of transformer by 2.0 points, but the difference is not significant "
        f"(95 % CI {lo:.1f} to {hi:.1f}, 3 paired seeds)."
    )
    behind = verdict("metric", "transformer", _paired([-0.05, 0.01, -0.02]))
    assert behind.startswith("metric is behind transformer by 2.0 points, but the difference")
    assert "too few seeds" in verdict("a_distilled", "nngk", _paired([0.1]))
    assert "1 paired seed;" in verdict("a_distilled", "nngk", _paired([0.1]))
    assert "share no seed" in verdict("distilled", "nngk", paired_difference({"0": 1}, {}))
