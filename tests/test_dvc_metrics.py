"""The flat metrics and curve rows DVC reads (geokd.report.dvc)."""

from __future__ import annotations

from geokd.report.dvc import curve_rows, flat_metrics


def _summary(ci95):
    model = {"accuracy_mean": 0.9, "accuracy_std": 0.01, "macro_f1_mean": 0.88, "n_seeds": 2}
    return {
        "dataset": "d",
        "protocol": "p",
        "knn": {"procrustes": {"k1_accuracy": 0.8}},
        "teacher": {},
        "transformer": model,
        "distilled": {**model, "accuracy_mean": 0.92},
        "comparisons": {"mean_difference": 0.02, "ci95": ci95},
    }


def test_flat_metrics_are_numbers_with_the_gain_and_its_interval():
    m = flat_metrics(_summary([-0.01, 0.05]))
    assert m["knn_1nn_procrustes"] == 0.8 and m["distilled_accuracy"] == 0.92
    assert m["transformer_seeds"] == 2 and m["geometry_gain"] == 0.02
    assert (m["geometry_gain_ci_low"], m["geometry_gain_ci_high"]) == (-0.01, 0.05)
    assert all(isinstance(v, int | float) for v in m.values())


def test_one_seed_has_a_gain_but_no_interval():
    m = flat_metrics(_summary(None))
    assert m["geometry_gain"] == 0.02 and "geometry_gain_ci_low" not in m


def test_curve_rows_average_the_seeds_per_epoch():
    def run(acc, loss):
        test = {"epoch": [2], "accuracy": [acc]}
        return {"epoch": [1, 2], "loss": loss, "eval": {"test": test}}

    rows = curve_rows({"transformer": [("a", run(0.5, [2.0, 1.0])), ("b", run(0.7, [4.0, 3.0]))]})
    assert rows == [
        {"epoch": 1, "transformer_loss": 3.0},
        {"epoch": 2, "transformer_test_accuracy": 0.6, "transformer_loss": 2.0},
    ]
