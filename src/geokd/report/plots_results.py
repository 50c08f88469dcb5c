"""Figures of a run's results: distances, KNN, teacher soft labels, training, confusion.

Like :mod:`geokd.report.plots`, every function returns a :class:`matplotlib.figure.Figure` built
without pyplot; render them with :func:`geokd.report.plots.fig_to_png_base64` or
:func:`geokd.report.plots.save_figure` for deterministic bytes. Accuracies are drawn in percent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .plots import _safe

#: Colour per model (Paul Tol's bright scheme); other models take :data:`_OTHER_COLORS`.
MODE_COLORS = {
    "knn": "#228833",
    "transformer": "#4477aa",
    "distilled": "#ee6677",
    "label_smoothing": "#66ccee",
    "metric": "#aa3377",
    "nngk": "#ccbb44",
}
MODE_LABELS = {
    "knn": "KNN",
    "transformer": "transformer (labels only)",
    "distilled": "distilled",
    "label_smoothing": "label smoothing (labels only)",
    "metric": "metric distillation",
    "nngk": "NNGK head (labels only)",
}
_OTHER_COLORS = ("#bbbbbb", "#000000", "#994455", "#997700", "#004488")
_MAX_TICK_CLASSES = 40  # above this, class names are left off the axes
_MAX_ANNOTATED = 30  # above this many classes, confusion cells are not annotated


def mode_color(mode: str, index: int = 0) -> str:
    """The colour of a model: :data:`MODE_COLORS`, else the ``index``-th of the others."""
    return MODE_COLORS.get(mode) or _OTHER_COLORS[index % len(_OTHER_COLORS)]


def mode_label(mode: str) -> str:
    """The legend label of a model: :data:`MODE_LABELS`, else its name with spaces."""
    return MODE_LABELS.get(mode) or mode.replace("_", " ")


def _class_ticks(ax, axis: str, positions, names: Sequence[str], rotate: bool = False) -> None:
    if len(names) > _MAX_TICK_CLASSES:
        return
    labels = [_safe(n) for n in names]
    size = 8 if len(names) <= 12 else 6
    if axis == "x" and rotate:
        ax.set_xticks(positions, labels, fontsize=size, rotation=60, ha="right")
    elif axis == "x":
        ax.set_xticks(positions, labels, fontsize=size)
    else:
        ax.set_yticks(positions, labels, fontsize=size)


def distance_heatmap(
    D: np.ndarray, labels: Sequence[int], class_names: Sequence[str], metric: str
) -> Figure:
    """Heat map of a square (train x train) distance matrix, ordered by class.

    Rows and columns are sorted by class (stably, so the order within a class is kept) and
    the class boundaries are drawn as white lines; class names label the blocks.

    Parameters
    ----------
    D : numpy.ndarray
        The (n, n) distance matrix.
    labels : sequence of int
        The class index of each row (and column).
    class_names : sequence of str
        Name per class index.
    metric : str
        The frame cost, for the title and colour bar.
    """
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    M = np.asarray(D, dtype=np.float64)[np.ix_(order, order)]
    classes, counts = np.unique(labels, return_counts=True)
    bounds = np.cumsum(counts)
    fig = Figure(figsize=(6.4, 5.4), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(M, cmap="viridis", interpolation="nearest")
    for b in bounds[:-1]:
        ax.axhline(b - 0.5, color="white", lw=0.7)
        ax.axvline(b - 0.5, color="white", lw=0.7)
    centres = bounds - counts / 2 - 0.5
    names = [class_names[c] if c < len(class_names) else str(c) for c in classes]
    _class_ticks(ax, "x", centres, names, rotate=True)
    _class_ticks(ax, "y", centres, names)
    ax.set_xlabel(f"training sequence (ordered by class, n = {len(labels)})")
    ax.set_ylabel("training sequence (ordered by class)")
    ax.set_title(_safe(f"Train x train distances ({metric}), class boundaries in white"))
    fig.colorbar(im, ax=ax, label=_safe(f"{metric}-DTW distance"))
    return fig


def distance_distributions(D: np.ndarray, labels: Sequence[int], metric: str) -> Figure:
    """Histograms of the distances between sequences of the same and of different classes.

    Uses each unordered pair of the (n, n) matrix once (the strict upper triangle), both
    histograms normalised to unit area on common bins.
    """
    labels = np.asarray(labels, dtype=np.int64)
    iu = np.triu_indices(len(labels), k=1)
    vals = np.asarray(D, dtype=np.float64)[iu]
    same = labels[iu[0]] == labels[iu[1]]
    edges = np.histogram_bin_edges(vals, bins=40) if vals.size else np.linspace(0, 1, 41)
    fig = Figure(figsize=(6.0, 3.4), layout="constrained")
    ax = fig.subplots()
    for mask, name, color in ((same, "intra-class", "#4477aa"), (~same, "inter-class", "#ee6677")):
        if mask.any():
            part = vals[mask]
            label = f"{name} ({part.size} pairs, median {np.median(part):.3g})"
            ax.hist(part, bins=edges, density=True, alpha=0.55, color=color, label=label)
    ax.set_xlabel(_safe(f"{metric}-DTW distance"))
    ax.set_ylabel("density (per unit distance)")
    ax.set_title("Distances within and between classes (training pairs)")
    if vals.size:
        ax.legend(fontsize=8)
    return fig


def knn_accuracy_curve(curves: Mapping[str, tuple[Mapping[int, float], int]]) -> Figure:
    """Test accuracy of k-NN against k, one line per metric, with 1-NN and best k marked.

    Parameters
    ----------
    curves : mapping of str to (mapping of int to float, int)
        Metric -> (accuracy per k as a fraction, best k).
    """
    fig = Figure(figsize=(6.0, 3.4), layout="constrained")
    ax = fig.subplots()
    colors = ["#228833", "#aa3377", "#66ccee", "#ccbb44", "#4477aa"]
    for i, (metric, (per_k, best_k)) in enumerate(sorted(curves.items())):
        ks = sorted(int(k) for k in per_k)
        acc = np.array([100 * float(per_k[k]) for k in ks])
        color = colors[i % len(colors)]
        ax.plot(ks, acc, "-", color=color, lw=1.5, label=_safe(metric))
        if 1 in per_k:
            a1 = 100 * float(per_k[1])
            ax.plot([1], [a1], "o", color=color, ms=7, mfc="white", label=f"1-NN: {a1:.1f} %")
        if best_k in per_k:
            ab = 100 * float(per_k[best_k])
            ax.plot([best_k], [ab], "*", color=color, ms=12, label=f"best k = {best_k}: {ab:.1f} %")
    ax.set_xlabel("k (number of neighbours)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("k-NN test accuracy against k (best k chosen on test: optimistic)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def soft_label_examples(
    P: np.ndarray,
    labels: Sequence[int],
    ids: Sequence[str],
    class_names: Sequence[str],
    method: str,
    n_examples: int = 4,
) -> Figure:
    """Bar charts of the soft labels of ``n_examples`` training samples, true class in red.

    The samples are evenly spaced over the rows sorted by class (so they come from
    different classes where possible); the choice depends only on the inputs.
    """
    P = np.asarray(P, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    n = min(n_examples, len(order))
    picks = order[np.unique(np.linspace(0, len(order) - 1, n).round().astype(int))]
    C = P.shape[1]
    names = [class_names[c] if c < len(class_names) else str(c) for c in range(C)]
    fig = Figure(figsize=(min(14.0, max(6.0, 0.22 * C + 3)), 1.5 * len(picks) + 1.2))
    fig.set_layout_engine("constrained")
    axes = np.atleast_1d(fig.subplots(len(picks), 1, sharex=True, sharey=True))
    for ax, i in zip(axes, picks, strict=True):
        colors = ["#bbbbbb"] * C
        colors[labels[i]] = "#ee6677"
        ax.bar(np.arange(C), P[i], color=colors, width=0.8)
        ax.set_title(_safe(f"{ids[i]} (true class {names[labels[i]]}, in red)"), fontsize=9)
        ax.set_ylabel("P(class)", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    _class_ticks(axes[-1], "x", np.arange(C), names, rotate=True)
    axes[-1].set_xlabel("class")
    fig.suptitle(_safe(f"Teacher soft labels ({method}) of {len(picks)} training samples"))
    return fig


def _stack(series: Sequence[tuple[Sequence[int], Sequence[float | None]]]):
    """Epochs (union) and per-run values aligned on them (NaN where a run has none)."""
    epochs = sorted({int(e) for xs, _ in series for e in xs})
    index = {e: j for j, e in enumerate(epochs)}
    table = np.full((len(series), len(epochs)), np.nan)
    for r, (xs, ys) in enumerate(series):
        for x, y in zip(xs, ys, strict=True):
            table[r, index[int(x)]] = np.nan if y is None else float(y)
    return np.array(epochs), table


def training_curves(histories: Mapping[str, Sequence[Mapping]]) -> Figure:
    """Training curves over seeds: mean line and min-max band per model, models overlaid.

    Three panels: the training objective (``loss``: each family's own, e.g. cross-entropy
    for the transformer, CE + KL to the teacher for the distilled student), the cross-entropy
    against the labels on the training set (``ce``, the same quantity for all) and the test
    accuracy.

    Parameters
    ----------
    histories : mapping of str to sequence of dict
        Model (``transformer``, ``label_smoothing``, ``distilled``, ...) -> the
        ``history.json`` dicts of its seeds.
    """
    panels = (
        ("loss", "training objective (per sample)", "Training loss"),
        ("ce", "cross-entropy on labels (nats)", "Train cross-entropy"),
        ("test", "test accuracy (%)", "Test accuracy"),
    )
    fig = Figure(figsize=(11.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (key, ylabel, title) in zip(axes, panels, strict=True):
        for i, (mode, runs) in enumerate(histories.items()):
            series = []
            for h in runs:
                if key == "test":
                    ev = (h.get("eval") or {}).get("test") or {}
                    if ev.get("accuracy"):
                        acc = [None if a is None else 100 * a for a in ev["accuracy"]]
                        series.append((ev["epoch"], acc))
                elif h.get(key):
                    series.append((h["epoch"], h[key]))
            if not series:
                continue
            epochs, table = _stack(series)
            color = mode_color(mode, i)
            ax.fill_between(
                epochs, np.nanmin(table, 0), np.nanmax(table, 0), color=color, alpha=0.2, lw=0
            )
            label = f"{mode_label(mode)}, {len(series)} seed(s)"
            ax.plot(epochs, np.nanmean(table, 0), color=color, lw=1.5, label=_safe(label))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle("Mean over seeds (line) and min-max spread (band)", fontsize=10)
    return fig


def confusion_heatmap(
    ax,
    confusion,
    class_names: Sequence[str],
    title: str,
    *,
    fontsize: int = 7,
    ylabel: bool = True,
    count: bool = False,
):
    """Draw a confusion matrix on ``ax`` (rows: true class, columns: predicted), coloured by
    the fraction of the true class (0 to 1, ``Blues``), counts in the cells up to
    ``_MAX_ANNOTATED`` classes, class names on the axes (the y names only with ``ylabel``);
    the title is ``title`` and the accuracy (with ``count``: on how many test sequences).
    The one heatmap of :func:`confusion_matrix` and
    :func:`geokd.report.plots_answer.confusion_pair`. Returns the image (for a colour bar)."""
    cm = np.asarray(confusion, dtype=np.int64)
    C = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    names = [class_names[c] if c < len(class_names) else str(c) for c in range(C)]
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if C <= _MAX_ANNOTATED:
        for (i, j), c in np.ndenumerate(cm):
            if c:
                color = "white" if frac[i, j] > 0.6 else "black"
                ax.text(j, i, str(c), ha="center", va="center", fontsize=fontsize, color=color)
    _class_ticks(ax, "x", np.arange(C), names, rotate=True)
    _class_ticks(ax, "y", np.arange(C), names)
    ax.set_xlabel("predicted class")
    if ylabel:
        ax.set_ylabel("true class")
    else:  # beside another matrix with the same class order
        ax.tick_params(labelleft=False)
    acc = np.trace(cm) / max(int(cm.sum()), 1)
    on = f" on {int(cm.sum())} test sequences" if count else ""
    ax.set_title(_safe(f"{title}\naccuracy {100 * acc:.1f} %{on}"), fontsize=10)
    return im


def confusion_matrix(confusion, class_names: Sequence[str], title: str) -> Figure:
    """Confusion matrix (rows: true class, columns: predicted), coloured by row fraction."""
    C = np.shape(confusion)[0]
    side = min(9.0, max(4.2, 0.3 * C + 2.5))
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    im = confusion_heatmap(ax, confusion, class_names, title, count=True)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return fig


def per_class_accuracy(
    values: Mapping[str, Sequence[float]],
    class_names: Sequence[str],
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Grouped horizontal bars of test accuracy per class, one bar per model.

    Parameters
    ----------
    values : mapping of str to sequence of float
        Model name -> accuracy per class index (fractions; NaN for a class without tests).
    class_names : sequence of str
        Name per class index.
    colors : mapping of str to str, optional
        Model name -> bar colour; default: :data:`MODE_COLORS` of the name's first word.
    """
    C = max((len(v) for v in values.values()), default=0)
    names = [class_names[c] if c < len(class_names) else str(c) for c in range(C)]
    fig = Figure(figsize=(7.0, min(14.0, max(2.8, 0.28 * C * max(1, len(values)) / 2 + 1.5))))
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    height = 0.8 / max(len(values), 1)
    y = np.arange(C)
    for i, (name, acc) in enumerate(values.items()):
        vals = 100 * np.asarray(acc, dtype=np.float64)
        color = (colors or {}).get(name) or MODE_COLORS.get(name.split(" ")[0].lower())
        ax.barh(y - 0.4 + height * (i + 0.5), vals, height=height, label=_safe(name), color=color)
    _class_ticks(ax, "y", y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("test accuracy of the class (%)")
    ax.set_ylabel("class")
    ax.set_title("Per-class test accuracy")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def alignment_path(
    cost: np.ndarray,
    path: np.ndarray,
    distance: float,
    query: str,
    reference: str,
    metric: str,
) -> Figure:
    """The DTW warping path of a pair drawn over its frame-cost matrix.

    Rows (y) are the query's frames, columns (x) the reference's; the path runs from the
    first frames (bottom left) to the last (top right).
    """
    cost = np.asarray(cost, dtype=np.float64)
    path = np.asarray(path)
    m, n = cost.shape
    fig = Figure(figsize=(6.0, min(6.0, max(3.6, 6.0 * m / max(n, 1)))), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(cost, origin="lower", cmap="viridis", aspect="auto", interpolation="nearest")
    ax.plot(path[:, 1], path[:, 0], "-", color="white", lw=1.8, label="optimal warping path")
    ax.plot(path[:, 1], path[:, 0], ".", color="#ee6677", ms=3)
    ax.set_xlabel(_safe(f"frame of {reference} (training, n = {n})"))
    ax.set_ylabel(_safe(f"frame of {query} (test, m = {m})"))
    ax.set_title(
        _safe(f"DTW alignment ({metric}), {len(path)} steps, distance {distance:.4g}"), fontsize=10
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.colorbar(im, ax=ax, label=_safe(f"{metric} frame cost"))
    return fig
