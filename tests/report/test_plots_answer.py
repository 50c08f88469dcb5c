"""geokd.report.plots_answer: the figures a reader expects first (accuracy against inference
time, the reliability diagram of the teacher, the confusion pair), present with their inputs
and absent without."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from geokd.models.teacher import diagnostics
from geokd.report import plots
from geokd.report import plots_answer as aplots
from geokd.report.page import DatasetEntry, build_report
from tests.helpers.report import (
    N_RESULT_FIGURES,
    assert_labelled,
    image_alts,
)


def test_new_figures_are_there_with_their_inputs_and_absent_without(results_built, tmp_path):
    alts = image_alts(results_built["out"].read_text(encoding="utf-8"))
    wanted = (
        "test accuracy against inference time",
        "DTW alignment path of ",
        "reliability diagram of the teacher, softmax",
        "confusion matrices of the labels-only transformer and the distilled student",
    )
    for alt in wanted:
        assert sum(a.startswith(alt) for a in alts) == 1, alt
    rdir = tmp_path / "paper"
    shutil.copytree(results_built["rdir"], rdir)
    for name in ("test-train.npy", "test-train.npy.json"):
        (rdir / "distances" / "procrustes" / name).unlink()
    shutil.rmtree(rdir / "models" / "distilled")
    (rdir / "teacher" / "softmax.parquet").unlink()
    summary = json.loads((rdir / "summary.json").read_text())
    del summary["inference"]
    (rdir / "summary.json").write_text(json.dumps(summary))
    entry = DatasetEntry("toy", results_built["entries"][0].store, results={"paper": rdir})
    out = tmp_path / "r.html"
    build_report(out, [entry])
    text = out.read_text()
    alts = image_alts(text)
    for alt in wanted:
        assert not any(a.startswith(alt) for a in alts), alt
    assert "train x train distance matrix, procrustes" in alts  # the rest is still there
    # gone too: the soft-label examples (no Parquet), the distilled confusion matrix
    assert len(alts) == 3 + N_RESULT_FIGURES - 4 - 2


def test_reliability_diagram_uses_the_teachers_bins_and_ece():
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.ones(4) * 0.5, size=200)
    y = rng.integers(0, 4, size=200)
    diag = diagnostics(P, y)
    res = aplots.reliability_bins(P, y, diag["ece_bins"])
    assert res["ece"] == pytest.approx(diag["ece"], abs=1e-15)
    assert res["count"].sum() == 200
    fig = aplots.reliability_diagram(P, y, "softmax", diag["ece_bins"])
    top, bottom = fig.get_axes()
    assert f"ECE {diag['ece']:.3f}" in top.get_title()
    np.testing.assert_array_equal(top.lines[0].get_xdata(), [0, 1])  # the diagonal, in %
    np.testing.assert_array_equal(top.lines[0].get_ydata(), [0, 100])
    filled = res["count"] > 0
    heights = [p.get_height() for p in top.patches]
    np.testing.assert_allclose(heights, 100 * res["accuracy"][filled])
    assert [p.get_height() for p in bottom.patches] == res["count"].tolist()
    assert_labelled(fig)


def test_accuracy_against_time_and_the_confusion_pair():
    points = [
        {"label": "T", "mode": "transformer", "ms": 0.5, "accuracy": 0.8, "std": 0.05},
        {"label": "KNN", "mode": "knn", "ms": 50.0, "accuracy": 0.7},
    ]
    fig = aplots.accuracy_vs_time(points)
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log"
    xy = [tuple(line.get_xydata()[0]) for line in ax.lines if len(line.get_xdata()) == 1]
    assert (0.5, 80.0) in xy and (50.0, 70.0) in xy
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T", "KNN"]
    assert_labelled(fig)
    fig = aplots.confusion_pair([[3, 1], [0, 4]], [[2, 2], [1, 3]], ["a", "b"], "L", "R")
    left, right = (ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>")
    assert left.images[0].get_clim() == right.images[0].get_clim() == (0, 1)
    for ax in (left, right):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert left.get_title() == "L\naccuracy 87.5 %" and right.get_title() == "R\naccuracy 62.5 %"
    assert plots.fig_to_png_base64(fig)
