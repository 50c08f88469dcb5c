"""The label-budget study in the report: the learning curve (accuracy against labelled training
subjects, one line per arm with its 95 % interval, exact 1-NN included, the full-label run as
the last point) and its table with the verdict per budget (:mod:`geokd.report.budgets` makes
the numbers). Built like :mod:`geokd.report.plots_results` (no pyplot)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from matplotlib.figure import Figure

from .. import paths

#: arms in the order of the legend and the table, with their styles
ARM_STYLE = {
    "geometry_ssl": ("#1b7837", "o", "-", "geometry_ssl (teacher's soft labels on unlabelled)"),
    "self_ssl": ("#762a83", "s", "--", "self_ssl (own pseudo-labels: the control)"),
    "distilled": ("#5aae61", "^", "-", "distilled (labelled only)"),
    "labels": ("#9970ab", "v", "--", "labels only"),
    "knn": ("#555555", "D", ":", "exact 1-NN Procrustes-DTW"),
}


def learning_curve(summary: dict) -> Figure:
    """Accuracy (%) against labelled training subjects: mean and 95 % interval per arm."""
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    budgets = summary["by_budget"]
    for arm, (color, marker, ls, label) in ARM_STYLE.items():
        pts = [(b["budget"], b["arms"][arm]) for b in budgets if arm in b["arms"]]
        if not pts:
            continue
        xs = [m for m, _ in pts]
        mean = [100 * v["mean"] for _, v in pts]
        lo = [100 * v["ci95"][0] for _, v in pts]
        hi = [100 * v["ci95"][1] for _, v in pts]
        ax.plot(xs, mean, color=color, marker=marker, linestyle=ls, label=label)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.12, linewidth=0)
    n = len(summary["train_subjects"])
    ax.set_xticks(range(1, n + 1))
    ax.set_xticklabels([str(m) if m < n else f"{m}\n(all)" for m in range(1, n + 1)])
    ax.set_xlabel("labelled training subjects (the rest unlabelled)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{summary['dataset']} / {summary['protocol']}: accuracy against labels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _cell(v: dict | None) -> str:
    if v is None:
        return "<td></td>"
    lo, hi = v["ci95"]
    return (f"<td>{100 * v['mean']:.1f} <span class=\"meta\">[{100 * lo:.1f}, "
            f"{100 * hi:.1f}]</span></td>")  # fmt: skip


def budget_table_html(summary: dict) -> str:
    """The study's table (mean [95 % CI] per budget and arm), the declared differences, and
    the verdicts in words."""
    arms = [a for a in ARM_STYLE if any(a in b["arms"] for b in summary["by_budget"])]
    head = "".join(f"<th>{escape(a)}</th>" for a in arms)
    diffs = summary.get("declared_comparisons", [])
    head += "".join(f"<th>{escape(d)} (points)</th>" for d in diffs)
    rows = []
    for b in summary["by_budget"]:
        label = f"{b['budget']}" + (" (all: full-label run)" if b["full_labels"] else "")
        cells = "".join(_cell(b["arms"].get(a)) for a in arms)
        for d in diffs:
            v = b["differences"].get(d)
            if v is None:
                cells += "<td></td>"
            else:
                lo, hi = v["ci95"]
                cells += (f"<td>{100 * v['mean']:+.1f} <span class=\"meta\">[{100 * lo:+.1f}, "
                          f"{100 * hi:+.1f}]</span></td>")  # fmt: skip
        rows.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
    verdicts = "".join(f"<li>{escape(b['verdict'])}</li>" for b in summary["by_budget"])
    return (
        "<table><tr><th>labelled subjects</th>" + head + "</tr>" + "".join(rows) + "</table>"
        '<p class="meta">Test accuracy (%), mean over subsets and seeds with the 95 % interval '
        "of a hierarchical bootstrap over subsets, then seeds; differences paired run by run. "
        "The comparisons were declared before the run.</p><ul>" + verdicts + "</ul>"
    )


def budgets_html(rdir: Path, emit) -> str | None:
    """The report's label-budget section of one protocol (``<results>/budgets/summary.json``):
    the learning curve, its table and the verdict per budget; None without the study."""
    path = Path(rdir) / paths.in_protocol(paths.BUDGET_SUMMARY)
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if not summary.get("by_budget"):
        return None
    fig = emit(
        "budgets",
        learning_curve(summary),
        "learning curve of the label-budget study",
        "Test accuracy against the number of labelled training subjects (the others' "
        "sequences unlabelled), one line per arm with its 95 % interval (hierarchical bootstrap "
        "over subsets and seeds); the last point is the full-label run.",
    )
    return fig + budget_table_html(summary)
