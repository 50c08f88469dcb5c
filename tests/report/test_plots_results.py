"""geokd.report.plots_results: the results figures (distance heat map and distributions,
k-NN curve, soft labels, training curves, confusion matrices, per-class accuracy, the DTW
alignment path), their legends, colours and labels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from geokd.report import plots
from geokd.report import plots_results as rplots
from geokd.report.results import mode_title
from tests.helpers.report import (
    TITLES,
    assert_labelled,
)


def test_new_families_have_legend_labels_and_colours():
    runs = [{"epoch": [1, 2], "loss": [1.0, 0.5], "ce": [1.0, 0.5]}]
    fig = rplots.training_curves({m: runs for m in (*TITLES, "metric_ensemble")})
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "transformer (labels only), 1 seed(s)",
        "label smoothing (labels only), 1 seed(s)",
        "distilled, 1 seed(s)",
        "metric distillation, 1 seed(s)",
        "NNGK head (labels only), 1 seed(s)",
        "metric ensemble, 1 seed(s)",
    ]
    assert len({line.get_color() for line in ax.lines}) == 6
    fig = rplots.per_class_accuracy({"A": [1.0], "KNN": [0.5]}, ["c"], {"A": "#aa3377"})
    bars = fig.get_axes()[0].patches
    assert to_hex(bars[0].get_facecolor()) == "#aa3377"
    assert to_hex(bars[1].get_facecolor()) == rplots.MODE_COLORS["knn"]
    assert mode_title("distilled_ensemble") == "Distilled student, ensemble"


def test_distance_heatmap_orders_by_class_and_marks_boundaries():
    labels = [2, 0, 1, 0, 2, 1]
    D = np.arange(36, dtype=float).reshape(6, 6)
    fig = rplots.distance_heatmap(D, labels, ["a", "b", "c"], "procrustes")
    ax = fig.get_axes()[0]
    order = np.argsort(labels, kind="stable")  # [1, 3, 2, 5, 0, 4]
    np.testing.assert_array_equal(ax.images[0].get_array(), D[np.ix_(order, order)])
    # two boundaries, each a horizontal and a vertical line, between the class blocks
    positions = sorted(
        {
            float(line.get_ydata()[0])
            for line in ax.lines
            if line.get_ydata()[0] == line.get_ydata()[1]
        }
    )
    assert positions == [1.5, 3.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert "procrustes" in fig.get_axes()[1].get_ylabel()  # colour bar
    assert_labelled(fig)


def test_distance_distributions_split_intra_and_inter_pairs():
    D = np.array([[0, 1, 5], [1, 0, 6], [5, 6, 0]], dtype=float)
    fig = rplots.distance_distributions(D, [0, 0, 1], "euclidean")
    legend = [t.get_text() for t in fig.get_axes()[0].get_legend().get_texts()]
    assert legend == ["intra-class (1 pairs, median 1)", "inter-class (2 pairs, median 5.5)"]
    assert_labelled(fig)


def test_knn_curve_marks_one_nn_and_best_k():
    fig = rplots.knn_accuracy_curve({"procrustes": ({1: 0.5, 2: 0.75, 3: 0.625}, 2)})
    ax = fig.get_axes()[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["procrustes", "1-NN: 50.0 %", "best k = 2: 75.0 %"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [50.0, 75.0, 62.5])
    assert ax.get_ylabel() == "test accuracy (%)"


def test_soft_label_examples_highlight_the_true_class():
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    fig = rplots.soft_label_examples(
        P, [0, 1, 2, 2], ["s0", "s1", "s2", "s3"], ["a", "b", "c"], "softmax"
    )
    axes = fig.get_axes()
    assert len(axes) == 4
    for ax, row, true in zip(axes, P, [0, 1, 2, 2], strict=True):
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_allclose(heights, row)
        colours = [p.get_facecolor() for p in ax.patches]
        assert colours[true] != colours[(true + 1) % 3]
    assert axes[0].get_title() == "s0 (true class a, in red)"


def test_training_curves_show_mean_and_spread_over_seeds():
    def run(loss, acc):
        ev = {"test": {"epoch": [1, 2], "accuracy": acc}}
        return {"epoch": [1, 2], "loss": loss, "ce": loss, "eval": ev}

    runs = [run([1.0, 0.5], [0.2, 0.4]), run([3.0, 1.5], [0.4, 0.8])]
    fig = rplots.training_curves({"transformer": runs, "distilled": runs[:1]})
    loss_ax, _, acc_ax = fig.get_axes()
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [2.0, 1.0])
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [30.0, 60.0])
    band = loss_ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == 0.5 and band.max() == 3.0
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["transformer (labels only), 2 seed(s)", "distilled, 1 seed(s)"]
    assert acc_ax.get_ylabel() == "test accuracy (%)" and acc_ax.get_xlabel() == "epoch"


def test_confusion_and_per_class_figures():
    fig = rplots.confusion_matrix([[3, 1], [0, 4]], ["a", "b$"], "KNN 1-NN")
    ax = fig.get_axes()[0]
    assert ax.get_title() == "KNN 1-NN\naccuracy 87.5 % on 8 test sequences"
    assert [t.get_text() for t in ax.texts] == ["3", "1", "4"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    fig = rplots.per_class_accuracy({"KNN": [1.0, 0.5], "Distilled": [0.25, np.nan]}, ["a", "b"])
    ax = fig.get_axes()[0]
    np.testing.assert_allclose([p.get_width() for p in ax.patches][:3], [100, 50, 25])
    assert ax.get_xlabel() == "test accuracy of the class (%)"
    assert plots.fig_to_png_base64(fig)


def test_the_dtw_path_helper_ends_at_cdist():
    """The report draws the distances package's path (geokd.distances.dtw_path)."""
    from geokd.distances import cdist, dtw_path, reference

    rng = np.random.default_rng(3)
    a = np.cumsum(rng.normal(scale=0.05, size=(13, 20, 3)), axis=0) + rng.normal(size=(20, 3))
    b = np.cumsum(rng.normal(scale=0.05, size=(9, 20, 3)), axis=0) + rng.normal(size=(20, 3))
    for window in (None, 2):
        cost = reference.cost_matrix(a, b, "procrustes")
        path, total = dtw_path(cost, window)
        want = float(cdist([a], [b], metric="procrustes", window=window)[0, 0])
        assert abs(total - want) <= 1e-9 * max(1.0, abs(want))
        assert total == pytest.approx(reference.dtw(cost, window), abs=1e-12)
        # a warping path: (0, 0) to (m-1, n-1) in unit steps, its costs sum to the distance
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (12, 8)
        steps = {tuple(s) for s in np.diff(path, axis=0)}
        assert steps <= {(1, 0), (0, 1), (1, 1)}
        assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total, rel=1e-12)
        if window is not None:
            assert np.abs(path[:, 0] - path[:, 1]).max() <= max(window, 13 - 9)
    # the figure draws that path over that matrix
    fig = rplots.alignment_path(cost, path, total, "q", "r", "procrustes")
    ax = fig.get_axes()[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), cost)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), path[:, 1])
    assert f"distance {total:.4g}" in ax.get_title()
    assert_labelled(fig)
