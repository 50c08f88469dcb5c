"""Small HTML helpers shared by :mod:`geokd.report.page` and :mod:`geokd.report.results`.

The page's inline CSS, escaping, embedded-PNG figures (optionally also saved as files),
two-column and headed tables, number cells, and the SHA-256 of a file.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from matplotlib.figure import Figure

from . import plots

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #4477aa; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2.5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em;
              word-break: break-all; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.meta { color: #555; font-size: .92em; }
nav ul { margin-top: .2em; }
.warning { color: #8a1c1c; background: #fdf0f0; border-left: 4px solid #c44; padding: .4em .8em; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(fig: Figure, alt: str, caption: str) -> str:
    data = plots.fig_to_png_base64(fig)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "x"


# Figure key (or its prefix) -> the pipeline stage it shows: the figures folder has one
# sub-folder per stage (Snakemake's native report files them by stage).
FIGURE_STAGES = {
    "class_subject": "data",
    "lengths": "data",
    "skeleton": "data",
    "distances": "distances",
    "distance_hist": "distances",
    "soft_labels": "teacher",
    "knn_vs_k": "knn",
    "confusion_knn": "knn",
    "training_curves": "students",
    "confusion_distilled": "students",
    "per_class_accuracy": "students",
}


def figure_stage(key: str) -> str:
    """The stage sub-folder of a figure key (``distances_procrustes`` -> ``distances``)."""
    for prefix in sorted(FIGURE_STAGES, key=len, reverse=True):
        if key == prefix or key.startswith(prefix + "_"):
            return FIGURE_STAGES[prefix]
    raise KeyError(f"no stage for figure {key!r}")


class _Emitter:
    """Figures to ``<figure>`` HTML and, with a figures folder, to PNG + PDF files in
    ``<figures>/<stage>/<prefix>_<key>`` (:func:`figure_stage`)."""

    def __init__(self, figures_dir: Path | None, prefix: str):
        self.figures_dir, self.prefix = figures_dir, prefix

    def __call__(self, key: str, fig: Figure, alt: str, caption: str) -> str:
        out = _img(fig, alt, caption)
        if self.figures_dir is not None:
            folder = Path(self.figures_dir) / figure_stage(key)
            folder.mkdir(parents=True, exist_ok=True)
            plots.save_figure(fig, folder / f"{self.prefix}_{_slug(key)}")
        return out


def _table(rows: list[tuple[str, str]]) -> str:
    """A two-column table; keys are escaped here, values must be HTML already."""
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _pct(x: object) -> str:
    return "&ndash;" if x is None else f"{100 * float(x):.2f}"  # type: ignore[arg-type]


def _num(x: object, fmt: str = ".3f") -> str:
    return "&ndash;" if x is None else format(float(x), fmt)  # type: ignore[arg-type]


def _mono(text: object) -> str:
    return f'<span class="mono">{_esc(text)}</span>'


def _grid(head: list[str], rows: list[list[str]], text_cols: tuple[int, ...] = (0,)) -> str:
    """A table with a header row; header cells are escaped here, body cells must be HTML."""
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>" if i in text_cols else f'<td class="num">{c}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"
