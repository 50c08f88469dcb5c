"""Figures of a sequence store: counts, lengths, a drawn skeleton and the splits.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so no
global figure state is kept and nothing needs closing; PNG output is rendered with Agg.
:func:`fig_to_png_base64` and :func:`save_figure` write the figures deterministically
(no software, version or time stamps in the files), so equal inputs give equal bytes.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from ..atomic import write_bytes

SPLIT_ORDER = ("train", "val", "test")
SPLIT_COLORS = {"train": "#4477aa", "val": "#ccbb44", "test": "#ee6677", "unused": "#bbbbbb"}
SIDE_COLORS = {"left": "#4477aa", "right": "#ee6677", "center": "#333333"}
MAX_NAMED_CLASSES = 60  # above this many classes, class names are left off the axes

# rcParams for every saved figure: a fixed hash salt (SVG ids) and fixed fonts.
_RC = {"svg.hashsalt": "geokd", "font.family": "DejaVu Sans", "pdf.fonttype": 42}
_PNG_META = {"Software": None}
_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}


def _safe(text: object) -> str:
    """``text`` as a string that matplotlib draws literally (no mathtext from ``$``)."""
    return str(text).replace("$", r"\$")


def _class_names(meta: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Sorted class indices of ``meta`` and their names (``label_name`` where present)."""
    labels = sorted(int(v) for v in pd.unique(meta["label"]))
    if "label_name" in meta:
        first = meta.drop_duplicates("label").set_index("label")["label_name"]
        names = [str(first.loc[lab]) for lab in labels]
    else:
        names = [str(lab) for lab in labels]
    return labels, names


def class_subject_counts(meta: pd.DataFrame) -> Figure:
    """Heat map of the number of sequences per class (rows) and subject (columns).

    Parameters
    ----------
    meta : pandas.DataFrame
        The store's metadata with columns ``label``, ``subject`` and optionally
        ``label_name`` (used for the row labels).

    Returns
    -------
    matplotlib.figure.Figure
        The annotated heat map.
    """
    labels, names = _class_names(meta)
    subjects = sorted(int(s) for s in pd.unique(meta["subject"]))
    counts = (
        pd.crosstab(meta["label"].astype(int), meta["subject"].astype(int))
        .reindex(index=labels, columns=subjects, fill_value=0)
        .to_numpy()
    )
    # bounded size: SIGNUM has 450 classes (names are left off above MAX_NAMED_CLASSES)
    width = min(12.0, max(4.5, 0.45 * len(subjects) + 3.5))
    height = min(10.0, max(2.5, 0.24 * len(labels) + 1.5))
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(counts, cmap="Blues", aspect="auto", vmin=0, interpolation="nearest")
    ax.set_xticks(range(len(subjects)), [str(s) for s in subjects], fontsize=8)
    if len(labels) <= MAX_NAMED_CLASSES:
        ax.set_yticks(range(len(labels)), [_safe(n) for n in names])
    else:
        ax.set_ylabel(f"class (0..{len(labels) - 1})")
    ax.set_xlabel("subject")
    if len(labels) <= MAX_NAMED_CLASSES:
        ax.set_ylabel("class")
    ax.set_title("Sequences per class and subject")
    if counts.size <= 600:
        top = counts.max() if counts.size else 0
        for (i, j), c in np.ndenumerate(counts):
            color = "white" if top and c > 0.6 * top else "black"
            ax.text(j, i, str(c), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, label="number of sequences")
    return fig


def _split_of(meta: pd.DataFrame, split_table: pd.DataFrame | None) -> pd.Series | None:
    if split_table is None:
        return None
    owner = split_table.set_index(split_table["sequence_id"].astype(str))["split"]
    return meta["sequence_id"].astype(str).map(owner).fillna("unused")


def length_histogram(meta: pd.DataFrame, split_table: pd.DataFrame | None = None) -> Figure:
    """Histogram of the number of frames per sequence, stacked by split if one is given.

    Parameters
    ----------
    meta : pandas.DataFrame
        The store's metadata with columns ``sequence_id`` and ``n_frames``.
    split_table : pandas.DataFrame, optional
        A split table (``sequence_id``, ``split``); sequences it leaves out are "unused".

    Returns
    -------
    matplotlib.figure.Figure
        The histogram.
    """
    lengths = meta["n_frames"].to_numpy(dtype=np.int64)
    lo, hi = int(lengths.min()), int(lengths.max())
    step = max(1, int(np.ceil((hi - lo + 1) / 30)))
    edges = np.arange(lo, hi + step + 1, step) - 0.5
    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.subplots()
    split = _split_of(meta, split_table)
    if split is None:
        ax.hist(lengths, bins=edges, color=SPLIT_COLORS["train"], edgecolor="white")
    else:
        groups = [g for g in (*SPLIT_ORDER, "unused") if (split == g).any()]
        ax.hist(
            [lengths[(split == g).to_numpy()] for g in groups],
            bins=edges,
            stacked=True,
            label=groups,
            color=[SPLIT_COLORS[g] for g in groups],
            edgecolor="white",
        )
        ax.legend(title="split")
    ax.set_xlabel("sequence length (frames)")
    ax.set_ylabel("number of sequences")
    ax.set_title(f"Frames per sequence (min {lo}, median {np.median(lengths):g}, max {hi})")
    return fig


def _side(name: str) -> str:
    name = name.lower()
    for side in ("left", "right"):
        if name.startswith(side) or f"_{side}" in name:
            return side
    return "center"


def skeleton_strip(
    seq: np.ndarray,
    bones: Sequence[tuple[int, int]],
    landmark_names: Sequence[str],
    title: str,
    n_frames: int = 6,
    units: str = "",
    y_down: bool = False,
) -> Figure:
    """Draw one sequence as ``n_frames`` evenly spaced frames side by side (front view).

    ``y_down``: the coordinates are image coordinates (y grows downwards, as MediaPipe's
    for SIGNUM); the y axis is then inverted so the figure is upright.

    The 3-D landmarks are projected onto the x/y plane with y up (the convention of the
    Kinect data of UTD-MHAD and of the synthetic generator), with equal aspect and the
    same limits in every panel. Bones are coloured by body side (from the name of the
    child landmark: left, right or centre).

    Parameters
    ----------
    seq : numpy.ndarray
        The sequence, shape (T, K, 3).
    bones : sequence of (int, int)
        (parent, child) landmark index pairs.
    landmark_names : sequence of str
        The K landmark names.
    title : str
        The figure title (e.g. the sequence id and class).
    n_frames : int, default 6
        Number of frames to draw (fewer if the sequence is shorter).
    units : str, default ""
        Units of the coordinates, shown in the axis labels.

    Returns
    -------
    matplotlib.figure.Figure
        The strip of frames.
    """
    seq = np.asarray(seq, dtype=np.float64)
    t = seq.shape[0]
    frames = np.unique(np.linspace(0, t - 1, min(n_frames, t)).round().astype(int))
    xy = seq[:, :, :2]
    lo, hi = xy[frames].min(axis=(0, 1)), xy[frames].max(axis=(0, 1))
    half = max(float((hi - lo).max()) / 2 * 1.08, 1e-9)
    mid = (lo + hi) / 2
    unit = f" ({units})" if units else ""
    sides = [_side(landmark_names[c]) for _, c in bones]
    fig = Figure(figsize=(1.9 * len(frames) + 0.6, 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(frames), sharex=True, sharey=True))
    for ax, f in zip(axes, frames, strict=True):
        for (p, c), side in zip(bones, sides, strict=True):
            ax.plot(xy[f, [p, c], 0], xy[f, [p, c], 1], color=SIDE_COLORS[side], lw=1.6)
        ax.plot(xy[f, :, 0], xy[f, :, 1], "o", ms=2.2, color="black")
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(*((mid[1] + half, mid[1] - half) if y_down else (mid[1] - half, mid[1] + half)))
        ax.set_aspect("equal")
        ax.set_title(f"frame {f + 1}/{t}", fontsize=9)
        ax.set_xlabel(f"x{unit}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel(f"y, {'down' if y_down else 'up'}{unit}", fontsize=8)
    fig.suptitle(_safe(title), fontsize=10)
    return fig


def split_counts(split_table: pd.DataFrame, label_names: Mapping[int, str] | None = None) -> Figure:
    """Stacked horizontal bars: sequences per class in train, val and test.

    Parameters
    ----------
    split_table : pandas.DataFrame
        A split table with columns ``label`` and ``split``.
    label_names : mapping of int to str, optional
        Class names per label index (default: ``label_name`` column, else the index).

    Returns
    -------
    matplotlib.figure.Figure
        The bar chart.
    """
    labels, names = _class_names(split_table)
    if label_names is not None:
        names = [str(label_names.get(lab, lab)) for lab in labels]
    counts = pd.crosstab(split_table["label"].astype(int), split_table["split"].astype(str))
    counts = counts.reindex(index=labels, fill_value=0)
    splits = [s for s in SPLIT_ORDER if s in counts.columns]
    splits += sorted(s for s in counts.columns if s not in SPLIT_ORDER)
    fig = Figure(figsize=(6.0, max(2.5, 0.24 * len(labels) + 1.5)), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(len(labels))
    y = np.arange(len(labels))
    for s in splits:
        vals = counts[s].to_numpy(dtype=float)
        ax.barh(y, vals, left=left, label=s, color=SPLIT_COLORS.get(s, "#999999"))
        left += vals
    ax.set_yticks(y, [_safe(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("number of sequences")
    ax.set_ylabel("class")
    ax.set_title("Sequences per class and split")
    ax.margins(y=0.01)
    ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _freeze_layout(fig: Figure) -> None:
    """Run the layout engine once and keep its result.

    Constrained layout refines the positions on every draw, so a figure saved twice would
    differ slightly; after this, every save of the figure gives the same bytes.
    """
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        fig.draw_without_rendering()
        fig.set_layout_engine("none")


def _render(fig: Figure, fmt: str, dpi: int) -> bytes:
    buf = io.BytesIO()
    meta = _PNG_META if fmt == "png" else _PDF_META
    with matplotlib.rc_context(_RC):
        _freeze_layout(fig)
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
    return buf.getvalue()


def fig_to_png_base64(fig: Figure, dpi: int = 100) -> str:
    """The figure as a base64-encoded PNG (ASCII), without time or version stamps.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    dpi : int, default 100
        Resolution.

    Returns
    -------
    str
        Base64 text, ready for a ``data:image/png;base64,`` URI.
    """
    return base64.b64encode(_render(fig, "png", dpi)).decode("ascii")


def save_figure(fig: Figure, path_without_ext: str | os.PathLike, dpi: int = 150) -> list[Path]:
    """Write the figure as ``<path>.png`` and ``<path>.pdf``, each atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path_without_ext : str or os.PathLike
        Target path without extension; the parent folder is created if needed.
    dpi : int, default 150
        Resolution of the PNG.

    Returns
    -------
    list of pathlib.Path
        The PNG and PDF paths.
    """
    base = Path(path_without_ext)
    out = []
    for fmt in ("png", "pdf"):
        target = base.with_name(f"{base.name}.{fmt}")
        write_bytes(target, _render(fig, fmt, dpi))
        out.append(target)
    return out
