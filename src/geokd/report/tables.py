"""The paper's tables, regenerated: test accuracy and inference time as CSV and LaTeX.

Each table puts three column groups side by side for every dataset and protocol:

- **published**: the numbers printed in the original release (:data:`PUBLISHED`; only for the
  original protocol, ``paper``, of UTD-MHAD and SIGNUM);
- **as published**: our run in the original's settings (its ``summary.json``), or ``n/a``;
- **corrected**: our run of the corrected pipeline (its ``summary.json``); besides KNN,
  the transformer and the distilled student it has a column for every other model family
  found in the corrected summaries (label smoothing, metric distillation, NNGK head...).

Accuracies are in percent; models trained over several seeds show the mean ± the sample
standard deviation (``accuracy_std`` of the summary, ddof=1). KNN is the 1-NN test accuracy
(choosing k on test would be optimistic). :func:`write_tables` writes ``accuracy.csv``,
``accuracy.tex``, ``inference.csv`` and ``inference.tex`` atomically; the ``.tex`` files hold a
booktabs ``tabular`` for ``\\input`` (the document needs ``\\usepackage{booktabs}``).
``inference.csv`` also gives the batch-1 and batched time of every corrected model (timed in
the training jobs) and per group the times measured alone (``<group>_alone_*``,
:func:`alone_cells`); ``inference.tex`` keeps the student's times of the training jobs.

The module also holds the small readers the report shares: summary cells and the Snakemake
benchmark files (:func:`geokd.report.run_facts.read_benchmarks`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_text
from .summary import model_names, sort_models

MODELS = ("knn", "transformer", "distilled")
MODEL_LABELS = {
    "knn": "KNN (1-NN)",
    "transformer": "Transformer",
    "distilled": "Distilled",
    "label_smoothing": "Label smoothing",
    "metric": "Metric distillation",
    "nngk": "NNGK head",
}
SPEEDS = ("student_batch1", "student_batched", "knn", "speedup", "speedup_batched")
SPEED_KEYS = {
    "student_batch1": "student_ms_per_sample",
    "student_batched": "student_ms_per_sample_batched",
    "knn": "knn_ms_per_sample",
    "speedup": "speedup",
    "speedup_batched": "speedup_batched",
}
SPEED_LABELS = {
    "student_batch1": "Student, batch 1 (ms/sample)",
    "student_batched": "Student, batched (ms/sample)",
    "knn": "KNN 1-NN (ms/query)",
    "speedup": "Speed-up (KNN / student batch 1)",
    "speedup_batched": "Speed-up (KNN / student batched)",
}
#: The student's runtimes timed alone (``inference.speed`` of a summary, :mod:`.speed`), and
#: the CSV column of each of their times (``ms_per_sample``...; :func:`alone_cells`).
RUNTIMES = ("eager", "onnx")
ALONE_KEYS = {"batch1": "ms_per_sample", "batched": "ms_per_sample_batched"}
ALONE_KEYS |= {k: k for k in ("speedup", "speedup_batched")}
GROUPS = ("published", "as_published", "corrected")
GROUP_LABELS = {
    "published": "Published",
    "as_published": "As published (our run)",
    "corrected": "Corrected (ours)",
}
NA = "n/a"

#: The original release's test accuracies (percent, as printed) and student inference time
#: per sample (a range in ms, on a GPU), keyed by the dataset name without case and
#: punctuation (``/work/shared/paper-notes.md``; SIGNUM's KNN accuracy was not printed).
PUBLISHED: dict[str, dict[str, Any]] = {
    "utdmhad": {
        "knn": "32.0",
        "transformer": "57.45",
        "distilled": "64.91",
        "student_ms": (0.2, 0.8, "GPU"),
    },
    "signum": {"transformer": "86.90", "distilled": "90.16", "student_ms": (0.2, 0.8, "GPU")},
}
#: The protocol the published numbers belong to.
PUBLISHED_PROTOCOL = "paper"
DISPLAY_NAMES = {"utdmhad": "UTD-MHAD", "signum": "SIGNUM"}


def model_label(name: str) -> str:
    """The table heading of a model (:data:`MODEL_LABELS`; ``a_b`` -> ``A b`` otherwise)."""
    return MODEL_LABELS.get(name) or name.replace("_", " ").capitalize()


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def display_name(dataset: str) -> str:
    """The printed name of a dataset key (``utd_mhad`` -> ``UTD-MHAD``; others unchanged)."""
    return DISPLAY_NAMES.get(_key(dataset), dataset)


def published_values(dataset: str, protocol: str) -> dict[str, Any] | None:
    """The published numbers of a dataset under the original protocol, else ``None``."""
    if protocol != PUBLISHED_PROTOCOL:
        return None
    return PUBLISHED.get(_key(dataset))


@dataclass(frozen=True)
class Cell:
    """One table value: a number (mean), its std and seed count, or a (low, high, note) range.

    ``text``, where given, is printed as it stands (published values keep their precision);
    ``note`` carries the KNN metric.
    """

    value: float | tuple[float, float, str] | None = None
    std: float | None = None
    n: int | None = None
    note: str = ""
    text: str | None = None


@dataclass
class TableRow:
    """One dataset and protocol of the tables.

    ``corrected`` and ``as_published`` are summaries (:mod:`geokd.report.summary`) as dicts or paths
    to ``summary.json``; ``None`` gives ``n/a``. ``published`` is ``"auto"`` (look up
    :data:`PUBLISHED` by dataset and protocol), ``None`` (none) or a dict like its entries
    (accuracies in percent, printed as given; ``student_ms`` a ``(low, high, where)`` range).
    """

    dataset: str
    protocol: str
    corrected: Mapping[str, Any] | str | os.PathLike | None = None
    as_published: Mapping[str, Any] | str | os.PathLike | None = None
    published: Mapping[str, Any] | str | None = "auto"


def read_summary(path: str | os.PathLike) -> dict:
    """A ``summary.json`` as a dict, with the measured times of the ``timings.json`` beside it
    (:func:`.summary.read_summary`); :class:`InputError` naming the file if unreadable."""
    from .summary import read_summary as _read

    return _read(path)


def _as_summary(value: Mapping | str | os.PathLike | None) -> Mapping | None:
    if value is None or isinstance(value, Mapping):
        return value
    return read_summary(value)


def knn_metric(summary: Mapping, prefer: Sequence[str] = ()) -> str | None:
    """The KNN metric a table shows: the first of ``prefer`` present, else the metric timed
    for inference, else ``procrustes``, else the first in name order (``None`` without KNN)."""
    knn = summary.get("knn") or {}
    timed = (summary.get("inference") or {}).get("knn_metric")
    for name in (*prefer, timed, "procrustes"):
        if name in knn:
            return name
    return min(knn) if knn else None


def model_cells(
    summary: Mapping | None, prefer: Sequence[str] = (), models: Sequence[str] = MODELS
) -> dict[str, Cell]:
    """Accuracy cells (fractions) of a summary: ``knn`` (1-NN) and the other ``models``
    (default ``transformer``, ``distilled``); empty cells where the summary has none."""
    cells = {m: Cell() for m in models}
    if not summary:
        return cells
    metric = knn_metric(summary, prefer)
    if metric is not None and "knn" in cells:
        cells["knn"] = Cell(float(summary["knn"][metric]["k1_accuracy"]), note=metric)
    for mode in (m for m in models if m != "knn"):
        res = summary.get(mode)
        if res:
            cells[mode] = Cell(
                float(res["accuracy_mean"]), float(res["accuracy_std"]), int(res["n_seeds"])
            )
    return cells


def speed_cells(summary: Mapping | None) -> dict[str, Cell]:
    """Inference cells of a summary: ms per sample or query, and the speed-up factor."""
    inference = (summary or {}).get("inference") or {}
    return {
        k: Cell(float(inference[key])) if key in inference else Cell()
        for k, key in SPEED_KEYS.items()
    }


def alone_cells(summary: Mapping | None) -> dict[str, Cell]:
    """The times measured alone (``inference.speed``): exact 1-NN (``knn``, ms per query)
    and per runtime of :data:`RUNTIMES` ``<runtime>_batch1``, ``<runtime>_batched`` (ms per
    sample), ``<runtime>_speedup``, ``<runtime>_speedup_batched``; ``student`` (text: the
    model and seed) and ``batch_size``. Empty cells where the summary has none."""
    speed = ((summary or {}).get("inference") or {}).get("speed") or {}
    ms = (speed.get("knn") or {}).get("ms_per_query")
    cells = {"knn": Cell(None if ms is None else float(ms))}
    for rt in RUNTIMES:
        timed = speed.get(rt) or {}
        for name, key in ALONE_KEYS.items():
            cells[f"{rt}_{name}"] = Cell(float(timed[key]) if key in timed else None)
    student = f"{speed['model']}, seed {speed['seed']}" if "model" in speed else NA
    batch = (speed.get("eager") or {}).get("batch_size")
    return cells | {"student": Cell(text=student), "batch_size": Cell(text=str(batch or NA))}


def _published_cells(row: TableRow) -> tuple[dict[str, Cell], Cell]:
    pub = published_values(row.dataset, row.protocol) if row.published == "auto" else row.published
    pub = pub or {}
    acc = {m: Cell(float(pub[m]) / 100, text=str(pub[m])) if m in pub else Cell() for m in MODELS}
    student = pub.get("student_ms")
    speed = Cell(tuple(student)) if student is not None else Cell()  # type: ignore[arg-type]
    return acc, speed


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def fmt_number(cell: Cell, scale: float, digits: int, latex: bool = False) -> str:
    """A cell as text: ``mean`` or ``mean ± std`` (std shown for more than one seed)."""
    if cell.text is not None:
        return cell.text
    if isinstance(cell.value, tuple):
        lo, hi, where = cell.value
        dash = "--" if latex else "-"
        return f"{lo:g}{dash}{hi:g} ({where})"
    if not _finite(cell.value):
        return NA
    text = f"{cell.value * scale:.{digits}f}"
    if cell.n is not None and cell.n > 1 and _finite(cell.std):
        pm = r" $\pm$ " if latex else " ± "
        text += f"{pm}{cell.std * scale:.{digits}f}"
    return text


def _num(x: float | None, scale: float, digits: int) -> str:
    return f"{x * scale:.{digits}f}" if _finite(x) else NA


def latex_escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped (``% _ & # $ { } ~ ^ \\``)."""
    out = []
    special = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    for ch in str(text):
        if ch in special:
            out.append(special[ch])
        elif ch in "%_&#${}":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def as_rows(
    rows: Sequence[TableRow] | Mapping[tuple[str, str], Any],
    as_published: Mapping[tuple[str, str], Any] | None = None,
) -> list[TableRow]:
    """``rows`` as a list of :class:`TableRow`; a mapping ``(dataset, protocol) -> summary``
    becomes rows in its order, with ``as_published`` summaries joined by the same keys."""
    if isinstance(rows, Mapping):
        extra = dict(as_published or {})
        out = [
            TableRow(d, p, corrected=s, as_published=extra.pop((d, p), None))
            for (d, p), s in rows.items()
        ]
        out += [TableRow(d, p, as_published=s) for (d, p), s in extra.items()]
        return out
    if as_published:
        raise ValueError("as_published is only for a mapping of summaries")
    return list(rows)


def _loaded(row: TableRow) -> tuple[Mapping | None, Mapping | None]:
    return _as_summary(row.as_published), _as_summary(row.corrected)


def extra_models(rows: Sequence[TableRow]) -> list[str]:
    """The models of the corrected summaries beyond :data:`MODELS`, in display order."""
    found = (m for row in rows for m in model_names(_loaded(row)[1] or {}))
    return [m for m in sort_models(found) if m not in MODELS]


def _model_times(summary: Mapping | None) -> Mapping[str, Mapping]:
    """``inference.models`` of a summary (model -> its times), empty where absent."""
    return ((summary or {}).get("inference") or {}).get("models") or {}


def timed_models(rows: Sequence[TableRow]) -> list[str]:
    """The models with inference times (``inference.models``) in the corrected summaries."""
    return sort_models(m for row in rows for m in _model_times(_loaded(row)[1]))


def accuracy_records(rows: Sequence[TableRow]) -> list[dict[str, str]]:
    """The accuracy table as CSV records (percent; ``n/a`` where a value is missing)."""
    records = []
    ours_models = (*MODELS, *extra_models(rows))
    for row in rows:
        asp, ours = _loaded(row)
        pub, _ = _published_cells(row)
        groups = {
            "published": pub,
            "as_published": model_cells(asp, prefer=("paper",)),
            "corrected": model_cells(ours, models=ours_models),
        }
        rec = {"dataset": row.dataset, "protocol": row.protocol}
        for g, cells in groups.items():
            for m in cells:
                pct = _num(cells[m].value, 100, 4)  # type: ignore[arg-type]
                rec[f"{g}_{m}_pct"] = cells[m].text or pct
                if g == "published":
                    continue
                if m == "knn":
                    rec[f"{g}_knn_metric"] = cells[m].note or NA
                else:
                    rec[f"{g}_{m}_std_pct"] = _num(cells[m].std, 100, 4)
                    rec[f"{g}_{m}_n_seeds"] = str(cells[m].n) if cells[m].n else NA
        records.append(rec)
    return records


def inference_records(rows: Sequence[TableRow]) -> list[dict[str, str]]:
    """The inference table as CSV records (ms; speed-up as a factor)."""
    records = []
    timed = timed_models(rows)
    for row in rows:
        asp, ours = _loaded(row)
        _, pub = _published_cells(row)
        rec = {
            "dataset": row.dataset,
            "protocol": row.protocol,
            "published_student_ms": fmt_number(pub, 1, 2),
        }
        for g, summary in (("as_published", asp), ("corrected", ours)):
            cells = speed_cells(summary)
            for k in SPEEDS:
                unit = "x" if k.startswith("speedup") else "ms"
                digits = 2 if k.startswith("speedup") else 4
                rec[f"{g}_{k}_{unit}"] = _num(cells[k].value, 1, digits)  # type: ignore[arg-type]
            for k, cell in alone_cells(summary).items():
                if cell.text is not None:
                    rec[f"{g}_alone_{k}"] = cell.text
                else:
                    unit, digits = ("x", 2) if "speedup" in k else ("ms", 4)
                    rec[f"{g}_alone_{k}_{unit}"] = _num(cell.value, 1, digits)  # type: ignore[arg-type]
        times = _model_times(ours)
        for m in timed:
            lat = times.get(m) or {}
            rec[f"corrected_{m}_batch1_ms"] = _num(lat.get("ms_per_sample"), 1, 4)
            rec[f"corrected_{m}_batched_ms"] = _num(lat.get("ms_per_sample_batched"), 1, 4)
        records.append(rec)
    return records


def _csv(records: list[dict[str, str]]) -> str:
    if not records:
        raise ValueError("no rows for the table")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def _tabular(
    comment: str, spec: str, group_widths: Sequence[int], columns: Sequence[str], body: list
) -> str:
    """A booktabs tabular: group header row with cmidrules, column header row, body rows."""
    lines = [f"% {line}" for line in comment.splitlines()]
    lines += [f"\\begin{{tabular}}{{{spec}}}", r"\toprule"]
    heads, rules, col = ["", ""], [], 3
    for g, width in zip(GROUPS, group_widths, strict=True):
        heads.append(f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(GROUP_LABELS[g])}}}")
        rules.append(f"\\cmidrule(lr){{{col}-{col + width - 1}}}")
        col += width
    lines.append(" & ".join(heads) + r" \\")
    lines.append(" ".join(rules))
    lines.append(" & ".join(["Dataset", "Protocol", *columns]) + r" \\")
    lines.append(r"\midrule")
    for i, cells in enumerate(body):
        if i and cells[0]:
            lines.append(r"\midrule")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _row_heads(rows: Sequence[TableRow], i: int) -> list[str]:
    """Dataset name only on the first row of a dataset, then the protocol."""
    first = i == 0 or rows[i - 1].dataset != rows[i].dataset
    name = latex_escape(display_name(rows[i].dataset)) if first else ""
    return [name, latex_escape(rows[i].protocol)]


def accuracy_latex(rows: Sequence[TableRow]) -> str:
    """The accuracy table as a booktabs ``tabular`` (percent, 2 decimals)."""
    body = []
    ours_models = (*MODELS, *extra_models(rows))
    for i, row in enumerate(rows):
        asp, ours = _loaded(row)
        pub, _ = _published_cells(row)
        cells = _row_heads(rows, i)
        for group in (pub, model_cells(asp, prefer=("paper",))):
            cells += [fmt_number(group[m], 100, 2, latex=True) for m in MODELS]
        group = model_cells(ours, models=ours_models)
        cells += [fmt_number(group[m], 100, 2, latex=True) for m in ours_models]
        body.append(cells)
    comment = (
        f"Generated by geokd {__version__}. Test accuracy (%); models: mean $\\pm$ sample std\n"
        "over seeds; KNN: 1-NN. Needs \\usepackage{booktabs}."
    )
    columns = [latex_escape(model_label(m)) for m in (*MODELS, *MODELS, *ours_models)]
    widths = (len(MODELS), len(MODELS), len(ours_models))
    return _tabular(comment, "ll" + "r" * sum(widths), widths, columns, body)


def inference_latex(rows: Sequence[TableRow]) -> str:
    """The inference table as a booktabs ``tabular`` (ms per sample or query, speed-up)."""
    body = []
    short = ["Student (ms)"]
    short += ["Batch 1 (ms)", "Batched (ms)", "KNN (ms)", r"$\times$ b.~1", r"$\times$ batched"] * 2
    for i, row in enumerate(rows):
        asp, ours = _loaded(row)
        _, pub = _published_cells(row)
        cells = [*_row_heads(rows, i), latex_escape(fmt_number(pub, 1, 2, latex=True))]
        for summary in (asp, ours):
            sc = speed_cells(summary)
            cells += [fmt_number(sc[k], 1, 1 if k.startswith("speedup") else 2) for k in SPEEDS]
        body.append(cells)
    comment = (
        f"Generated by geokd {__version__}. Inference time per sample: student batch 1 and\n"
        "batched (ms/sample), exact KNN 1-NN (ms/query), speed-ups = KNN / student (batch 1,\n"
        "batched).\n"
        "Needs \\usepackage{booktabs}."
    )
    return _tabular(comment, "ll" + "r" + "rrrrr" * 2, (1, 5, 5), short, body)


def write_tables(
    out_dir: str | os.PathLike,
    rows: Sequence[TableRow] | Mapping[tuple[str, str], Any],
    as_published: Mapping[tuple[str, str], Any] | None = None,
) -> list[Path]:
    """Write ``accuracy.csv``, ``accuracy.tex``, ``inference.csv``, ``inference.tex``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created if needed); every file is written atomically.
    rows : sequence of TableRow, or mapping of (dataset, protocol) to summary
        The table rows in order; a mapping gives the corrected summaries (dicts or paths to
        ``summary.json``) and the published values are looked up (:data:`PUBLISHED`).
    as_published : mapping of (dataset, protocol) to summary, optional
        With a mapping ``rows``: the "as published" runs of the same keys.

    Returns
    -------
    list of pathlib.Path
        The four written files.

    Raises
    ------
    InputError
        If a summary path is unreadable.
    ValueError
        If there are no rows.
    """
    table_rows = as_rows(rows, as_published)
    if not table_rows:
        raise ValueError("no rows for the tables")
    table_rows = [  # each summary file read once
        replace(r, as_published=asp, corrected=ours)
        for r, (asp, ours) in zip(table_rows, map(_loaded, table_rows), strict=True)
    ]
    out = Path(out_dir)
    texts = {
        "accuracy.csv": _csv(accuracy_records(table_rows)),
        "accuracy.tex": accuracy_latex(table_rows),
        "inference.csv": _csv(inference_records(table_rows)),
        "inference.tex": inference_latex(table_rows),
    }
    paths = []
    for name, text in texts.items():
        write_text(out / name, text)
        paths.append(out / name)
    return paths
