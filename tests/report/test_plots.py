"""geokd.report.plots: the data figures (skeleton strips, class and subject counts, lengths,
splits), their labels, their size with many classes, and byte-identical saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geokd.data.skeleton import UTD_MHAD_BONES, UTD_MHAD_JOINTS
from geokd.data.store import load_sequences
from geokd.report import plots
from geokd.report import plots_results as rplots
from tests.helpers.report import (
    CLASSES,
    PNG_SIGNATURE,
)


def test_skeleton_strip_draws_evenly_spaced_frames_with_y_up(built):
    seqs, _ = load_sequences(built["store"])
    seq = seqs[0]
    fig = plots.skeleton_strip(seq, UTD_MHAD_BONES, UTD_MHAD_JOINTS, "title $x$", units="m")
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    t = seq.shape[0]
    expected = np.unique(np.linspace(0, t - 1, 6).round().astype(int))
    assert [ax.get_title() for ax in axes] == [f"frame {f + 1}/{t}" for f in expected]
    ax = axes[0]
    assert ax.get_aspect() == 1.0
    assert not ax.yaxis_inverted()
    assert ax.get_ylabel() == "y, up (m)" and ax.get_xlabel() == "x (m)"
    # first bone of the first panel: x/y of (parent, child) at frame 0, no flipping
    p, c = UTD_MHAD_BONES[0]
    xdata, ydata = ax.lines[0].get_data()
    np.testing.assert_array_equal(xdata, seq[0, [p, c], 0])
    np.testing.assert_array_equal(ydata, seq[0, [p, c], 1])
    # a short sequence gives fewer panels; "$" in a title is drawn literally
    short = plots.skeleton_strip(seq[:2], UTD_MHAD_BONES, UTD_MHAD_JOINTS, "$")
    assert len(short.get_axes()) == 2
    assert plots.fig_to_png_base64(short)


def test_image_coordinates_are_drawn_upright(built):
    """SIGNUM's MediaPipe coordinates have y down: the axis is inverted and says so."""
    seq = load_sequences(built["store"])[0][0]
    fig = plots.skeleton_strip(seq, UTD_MHAD_BONES, UTD_MHAD_JOINTS, "t", units="px", y_down=True)
    ax = fig.get_axes()[0]
    assert ax.yaxis_inverted() and ax.get_ylabel() == "y, down (px)"


def test_figures_stay_a_readable_size_with_450_classes():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame(
        {"label": np.repeat(np.arange(450), 25), "subject": np.tile(np.arange(1, 26), 450)}
    )
    fig = plots.class_subject_counts(meta)
    assert max(fig.get_size_inches()) <= 12
    assert len(fig.get_axes()[0].get_yticklabels()) < 20  # numbers, not 450 overlapping names
    assert max(rplots.per_class_accuracy({"KNN": rng.random(450)}, []).get_size_inches()) <= 14
    P = rng.dirichlet(np.ones(450), size=10)
    fig = rplots.soft_label_examples(P, np.arange(10), [str(i) for i in range(10)], [], "softmax")
    assert max(fig.get_size_inches()) <= 14


def test_other_figures_have_labels_and_save_deterministically(built, tmp_path):
    _, meta = load_sequences(built["store"])
    table = pd.read_csv(built["splits"]["paper"], sep="\t")
    figs = {
        "counts": plots.class_subject_counts(meta),
        "lengths": plots.length_histogram(meta, table),
        "lengths_plain": plots.length_histogram(meta),
        "splits": plots.split_counts(table, {0: "wave", 1: "clap", 2: "evil"}),
    }
    for fig in figs.values():
        ax = fig.get_axes()[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    counts_ax = figs["counts"].get_axes()[0]
    assert [t.get_text() for t in counts_ax.get_yticklabels()] == CLASSES
    splits_ax = figs["splits"].get_axes()[0]
    assert [t.get_text() for t in splits_ax.get_yticklabels()] == ["wave", "clap", "evil"]
    legend = [t.get_text() for t in figs["lengths"].get_axes()[0].get_legend().get_texts()]
    assert legend == ["train", "val", "test"]
    paths = plots.save_figure(figs["splits"], tmp_path / "a" / "splits")
    again = plots.save_figure(figs["splits"], tmp_path / "b" / "splits")
    assert [p.name for p in paths] == ["splits.png", "splits.pdf"]
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes()
    assert paths[0].read_bytes().startswith(PNG_SIGNATURE)
    assert b"matplotlib.org" not in paths[1].read_bytes()
