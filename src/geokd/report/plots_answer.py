"""Figures a reader of the paper expects: teacher calibration, accuracy against inference
time, and two confusion matrices side by side.

Built like :mod:`geokd.report.plots_results` (no pyplot; render with
:func:`geokd.report.plots.fig_to_png_base64` or :func:`geokd.report.plots.save_figure`). The
DTW alignment path figure lives in :mod:`geokd.report.plots_results` (the path itself:
:func:`geokd.distances.dtw_path`), the confusion heatmap both draw in
:func:`geokd.report.plots_results.confusion_heatmap`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .plots import _safe
from .plots_results import confusion_heatmap, mode_color


def reliability_bins(P: np.ndarray, labels: Sequence[int], n_bins: int = 15) -> dict:
    """Top-class confidence bins of soft labels against their accuracy, and the ECE.

    The binning is that of :func:`geokd.models.teacher.diagnostics`: ``n_bins`` equal-width
    bins ``(b/n, (b+1)/n]`` (a confidence of 0 joins the first), so ``ece`` is the teacher
    table's ECE.

    Returns
    -------
    dict
        ``edges`` (n_bins + 1,), ``count``, ``accuracy`` and ``confidence`` per bin (NaN for
        an empty bin), ``ece`` (sum over bins of n_b / n * |accuracy_b - confidence_b|).
    """
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = P.shape[0]
    pred = np.argmax(P, axis=1)
    correct = (pred == y).astype(np.float64)
    conf = P[np.arange(n), pred]
    inner = np.arange(1, n_bins) / n_bins
    bins = np.searchsorted(inner, conf, side="left")
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, acc_sum / count, np.nan)
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
    ece = float(np.abs(acc_sum - conf_sum).sum() / n) if n else float("nan")
    edges = np.arange(n_bins + 1) / n_bins
    return {
        "edges": edges,
        "count": count.astype(np.int64),
        "accuracy": acc,
        "confidence": mean_conf,
        "ece": ece,
    }


def reliability_diagram(
    P: np.ndarray, labels: Sequence[int], method: str, n_bins: int = 15
) -> Figure:
    """Reliability (calibration) diagram of soft labels: accuracy against confidence.

    Top panel: per confidence bin (:func:`reliability_bins`), the accuracy of the top class
    (bars) and the bin's mean confidence (markers) against the diagonal of perfect
    calibration; the ECE is in the title. Bottom panel: the number of samples per bin.
    """
    res = reliability_bins(P, labels, n_bins)
    edges, width = res["edges"], 1.0 / n_bins
    centres = edges[:-1] + width / 2
    filled = res["count"] > 0
    fig = Figure(figsize=(5.2, 5.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 100], "--", color="#777777", lw=1, label="perfect calibration")
    top.bar(
        centres[filled],
        100 * res["accuracy"][filled],
        width=width * 0.9,
        color="#4477aa",
        alpha=0.8,
        label="accuracy of the top class",
    )
    top.plot(
        res["confidence"][filled],
        100 * res["confidence"][filled],
        "o",
        color="#ee6677",
        ms=4,
        label="mean confidence of the bin",
    )
    top.set_xlim(0, 1)
    top.set_ylim(0, 100)
    top.set_ylabel("accuracy (%)")
    top.grid(alpha=0.3)
    top.legend(fontsize=7, loc="upper left")
    n = int(res["count"].sum())
    top.set_title(_safe(f"Teacher reliability ({method}), ECE {res['ece']:.3f} ({n_bins} bins)"))
    bottom.bar(centres, res["count"], width=width * 0.9, color="#bbbbbb")
    bottom.set_xlabel("confidence: probability of the top class")
    bottom.set_ylabel(f"samples (n = {n})")
    return fig


def accuracy_vs_time(points: Sequence[Mapping]) -> Figure:
    """Test accuracy against inference time at batch 1, one point per model (log-scale x).

    Parameters
    ----------
    points : sequence of dict
        Each ``label``, ``mode`` (for the colour: :data:`MODE_COLORS`, ``knn`` for KNN),
        ``ms`` (ms per sample or query at batch 1), ``accuracy`` (fraction) and optionally
        ``std`` (fraction; drawn as an error bar).
    """
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, p in enumerate(points):
        std = p.get("std")
        yerr = None if std is None or not np.isfinite(std) else 100 * float(std)
        marker = "s" if p["mode"] == "knn" else "o"
        ax.errorbar(
            [float(p["ms"])],
            [100 * float(p["accuracy"])],
            yerr=None if yerr is None else [[yerr], [yerr]],
            fmt=marker,
            ms=7,
            capsize=3,
            color=mode_color(p["mode"], i),
            label=_safe(p["label"]),
        )
    ax.set_xscale("log")
    ax.set_xlabel("time at batch 1 (ms per sample or query, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against inference time (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    if points:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def confusion_pair(
    left, right, class_names: Sequence[str], left_title: str, right_title: str
) -> Figure:
    """Two confusion matrices side by side, same class order and colour scale (row fraction
    0 to 1, one colour bar); rows: true class, columns: predicted."""
    mats = [np.asarray(c, dtype=np.int64) for c in (left, right)]
    C = mats[0].shape[0]
    side = min(7.0, max(3.6, 0.25 * C + 2.2))
    fig = Figure(figsize=(2 * side + 1.2, side + 0.4), layout="constrained")
    axes = fig.subplots(1, 2)
    im = None
    for k, (ax, cm, title) in enumerate(zip(axes, mats, (left_title, right_title), strict=True)):
        im = confusion_heatmap(ax, cm, class_names, title, fontsize=6, ylabel=k == 0)
    fig.colorbar(im, ax=list(axes), label="fraction of the true class", shrink=0.8)
    return fig
