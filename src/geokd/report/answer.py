"""The answer the report leads with, and the comparison of the models.

:func:`headline_section` is the page's first section: per dataset and protocol the paper's
tables exactly as ``results/tables/`` has them (the rows of
:func:`geokd.report.tables.accuracy_records` and :func:`~geokd.report.tables.inference_records`:
published | as published | ours), then which model wins and by how much, in plain sentences
(``winner`` and ``comparisons`` of the corrected run's summary). The comparison table that
leads each protocol's results (:func:`_comparison_html`) and the accuracy against inference
time figure (:func:`_accuracy_time_html`) are built here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import plots_answer as aplots
from .html import _Emitter, _esc, _grid, _num, _pct
from .summary import best_model, compare_models, model_family, model_names, teacher_metric
from .tables import (
    GROUP_LABELS,
    MODEL_LABELS,
    MODELS,
    NA,
    SPEED_LABELS,
    SPEEDS,
    Cell,
    TableRow,
    accuracy_records,
    display_name,
    extra_models,
    fmt_number,
    inference_records,
)

MODE_TITLES = {
    "transformer": "Transformer (labels only)",
    "label_smoothing": "Label smoothing (labels only)",
    "distilled": "Distilled student",
    "metric": "Metric distillation",
    "nngk": "NNGK head (labels only)",
}


SIDE_TITLES = {"geometry": "geometry-taught", "labels_only": "labels only"}


def mode_title(mode: str) -> str:
    """The report's name of a model: :data:`MODE_TITLES`, ``<title>, ensemble`` for
    ``<known>_ensemble``, else the name with spaces (``a_b`` -> ``A b``)."""
    if mode in MODE_TITLES:
        return MODE_TITLES[mode]
    base = mode.removesuffix("_ensemble")
    if base != mode and base in MODE_TITLES:
        return f"{MODE_TITLES[base]}, ensemble"
    return mode.replace("_", " ").capitalize()


def _model_times(summary: dict) -> dict[str, dict]:
    """Model -> inference times: ``inference.models``; older summaries timed only the
    student (the distilled model, where it has one)."""
    inf = summary.get("inference") or {}
    if inf.get("models"):
        return inf["models"]
    if "student_ms_per_sample" not in inf or "distilled" not in summary:
        return {}
    batched = inf.get("student_ms_per_sample_batched")
    return {
        "distilled": {
            "ms_per_sample": inf["student_ms_per_sample"],
            "ms_per_sample_batched": batched,
        }
    }


def _compared_rows(summary: dict, metric: str | None) -> list[list[str]]:
    """One row per model: name, side, accuracy (mean ± std), seeds, latencies; KNN last."""
    times, rows = _model_times(summary), []
    for mode in model_names(summary):
        res, lat = summary[mode], times.get(mode) or {}
        cell = Cell(res["accuracy_mean"], res.get("accuracy_std"), res.get("n_seeds"))
        rows.append(
            [
                _esc(mode_title(mode)),
                SIDE_TITLES.get(model_family(mode) or "", "&ndash;"),
                fmt_number(cell, 100, 2),
                str(res["n_seeds"]) if "n_seeds" in res else "&ndash;",
                _num(lat.get("ms_per_sample")),
                _num(lat.get("ms_per_sample_batched")),
            ]
        )
    if metric is not None:
        knn_ms = (summary.get("inference") or {}).get("knn_ms_per_sample")
        acc = summary["knn"][metric]["k1_accuracy"]
        rows.append([f"KNN 1-NN ({_esc(metric)})", "teacher", _pct(acc), "&ndash;"])
        rows[-1] += [_num(knn_ms), "&ndash;"]
    return rows


def _gain_html(cmp: dict) -> str:
    """The gain of the geometry-taught model over the labels-only one, and the verdict."""
    geo, lab = _esc(mode_title(cmp["geometry"])), _esc(mode_title(cmp["labels_only"]))
    text = f"<p>Gain of {geo} over {lab}, paired by seed: "
    if cmp.get("mean_difference") is None:
        text += "no seed in common.</p>"
    else:
        seeds = ", ".join(str(s) for s in cmp.get("seeds") or [])
        text += f"{100 * cmp['mean_difference']:+.2f} points"
        if cmp.get("ci95"):
            lo, hi = cmp["ci95"]
            text += f" (95 % CI {100 * lo:.2f} to {100 * hi:.2f})"
        text += f" over {cmp['n']} seed(s): {_esc(seeds)}.</p>"
    return text + f"<p><strong>Verdict:</strong> {_esc(cmp.get('verdict', ''))}</p>"


def _comparison_html(summary: dict) -> str:
    """The models side by side, the gain of geometry over labels only, the verdict."""
    knn = summary.get("knn") or {}
    metric = teacher_metric(knn, (summary.get("inference") or {}).get("knn_metric"))
    rows = _compared_rows(summary, metric)
    if not rows:
        return ""
    head = ["model", "side", "test accuracy (%)", "seeds"]
    head += ["latency, batch 1 (ms/sample)", "latency, batched (ms/sample)"]
    out = "<p>The models compared: test accuracy (mean &plusmn; sample std over seeds) and "
    out += "inference time (KNN: ms/query of the exact 1-NN).</p>"
    out += _grid(head, rows, text_cols=(0, 1))
    cmp = summary.get("comparisons") or compare_models(summary)
    if cmp:
        out += _gain_html(cmp)
    elif model_names(summary):
        out += "<p>No comparison: a geometry-taught or a labels-only model is missing.</p>"
    win = summary.get("winner") or best_model(summary, metric)
    if win:
        name = f"KNN 1-NN ({win.get('metric', metric)})" if win["model"] == "knn" else None
        name = name or mode_title(win["model"])
        out += f"<p>Best overall: {_esc(name)}, {_pct(win['accuracy'])} % test accuracy.</p>"
    return out


def _time_points(summary: Mapping) -> list[dict]:
    """Per model with a batch-1 time (``inference.models``): label, mode, ms, accuracy (mean
    over seeds) and std; then KNN 1-NN of the timed metric, with its ms per query."""
    times, points = _model_times(dict(summary)), []
    for mode in model_names(summary):
        ms = (times.get(mode) or {}).get("ms_per_sample")
        if ms is None or not float(ms) > 0:
            continue
        res = summary[mode]
        std = res.get("accuracy_std") if (res.get("n_seeds") or 1) > 1 else None
        points.append(
            {
                "label": mode_title(mode),
                "mode": mode,
                "ms": float(ms),
                "accuracy": float(res["accuracy_mean"]),
                "std": None if std is None else float(std),
            }
        )
    inf = summary.get("inference") or {}
    knn = summary.get("knn") or {}
    metric = teacher_metric(knn, inf.get("knn_metric"))
    knn_ms = inf.get("knn_ms_per_sample")
    if metric is not None and knn_ms is not None and float(knn_ms) > 0:
        acc = float(knn[metric]["k1_accuracy"])
        label = f"KNN 1-NN ({metric})"
        points.append({"label": label, "mode": "knn", "ms": float(knn_ms), "accuracy": acc})
    return points


def _accuracy_time_html(summary: Mapping, emit: _Emitter) -> str:
    points = _time_points(summary)
    if not points:
        return ""
    return emit(
        "accuracy_vs_time",
        aplots.accuracy_vs_time(points),
        "test accuracy against inference time",
        "Test accuracy against inference time at batch 1 for every timed model: students "
        "(mean over seeds, error bar: sample std over seeds) in ms per sample, the exact "
        "KNN 1-NN (square) in ms per query against the whole training set; time on a log "
        "scale, as timed by the workflow.",
    )


def _fixed(text: str, digits: int) -> str:
    """A CSV number (``n/a`` stays) printed with ``digits`` decimals."""
    return NA if text == NA else f"{float(text):.{digits}f}"


def headline_accuracy_cell(rec: Mapping[str, str], group: str, model: str) -> str:
    """One accuracy cell of the headline from an ``accuracy.csv`` record
    (:func:`geokd.report.tables.accuracy_records`): the published text as printed, ours with
    2 decimals, ``mean ± std`` for more than one seed, KNN with its metric in brackets."""
    value = rec.get(f"{group}_{model}_pct", NA)
    if group == "published" or value == NA:
        return value
    text = _fixed(value, 2)
    if model == "knn":
        metric = rec.get(f"{group}_knn_metric", NA)
        return text if metric == NA else f"{text} ({metric})"
    seeds, std = rec.get(f"{group}_{model}_n_seeds", NA), rec.get(f"{group}_{model}_std_pct", NA)
    if seeds != NA and int(seeds) > 1 and std != NA:
        text += f" ± {_fixed(std, 2)}"
    return text


def headline_speed_cell(rec: Mapping[str, str], group: str, speed: str) -> str:
    """One inference cell of the headline from an ``inference.csv`` record
    (:func:`geokd.report.tables.inference_records`): ms with 3 decimals, speed-ups with 1;
    the published student time (a range) as printed, in the batch-1 column."""
    if group == "published":
        return rec.get("published_student_ms", NA) if speed == "student_batch1" else NA
    unit = "x" if speed.startswith("speedup") else "ms"
    return _fixed(rec.get(f"{group}_{speed}_{unit}", NA), 1 if unit == "x" else 3)


def _winner_html(summary: Mapping | None) -> str:
    """Which model wins and by how much, in plain sentences (corrected run)."""
    if not summary:
        return "<p>No run of the corrected pipeline: no winner to name.</p>"
    knn = summary.get("knn") or {}
    inf = summary.get("inference") or {}
    metric = teacher_metric(knn, inf.get("knn_metric"))
    out = []
    win = summary.get("winner") or best_model(summary, metric)
    if win:
        if win["model"] == "knn":
            name = f"the exact KNN 1-NN ({win.get('metric', metric)})"
        else:
            name = mode_title(win["model"])
        text = f"<strong>Best overall: {_esc(name)}</strong>, {_pct(win['accuracy'])} % test "
        text += "accuracy"
        if win["model"] != "knn":
            res = summary[win["model"]]
            text += f" (mean over {res.get('n_seeds', '?')} seed(s))"
            if metric is not None:
                k1 = float(knn[metric]["k1_accuracy"])
                gap = 100 * (float(win["accuracy"]) - k1)
                text += (
                    f", {gap:+.2f} points against the exact KNN 1-NN ({_esc(metric)}) it "
                    f"learns from ({_pct(k1)} %)"
                )
            ms = (_model_times(dict(summary)).get(win["model"]) or {}).get("ms_per_sample")
            knn_ms = inf.get("knn_ms_per_sample")
            if ms and knn_ms:
                text += (
                    f". It takes {float(ms):.3f} ms per sample at batch 1, against "
                    f"{float(knn_ms):.3f} ms per query for the exact 1-NN "
                    f"({float(knn_ms) / float(ms):.0f} times faster)"
                )
        out.append(text + ".")
    cmp = summary.get("comparisons") or compare_models(summary)
    if cmp:
        geo, lab = cmp["geometry"], cmp["labels_only"]
        text = (
            f"Geometry against labels only: the best geometry-taught model, "
            f"{_esc(mode_title(geo))} at {_pct(summary[geo]['accuracy_mean'])} %, against the "
            f"best labels-only one, {_esc(mode_title(lab))} at "
            f"{_pct(summary[lab]['accuracy_mean'])} %: "
        )
        if cmp.get("mean_difference") is None:
            text += "no seed in common, so no paired difference."
        else:
            diff = 100 * float(cmp["mean_difference"])
            side = "ahead" if diff > 0 else "behind" if diff < 0 else "level"
            text += f"{diff:+.2f} points (geometry {side}), mean of the per-seed differences"
            text += f" over {cmp['n']} paired seed(s)"
            if cmp.get("ci95"):
                lo, hi = (100 * float(x) for x in cmp["ci95"])
                text += f", 95 % CI {lo:+.2f} to {hi:+.2f}"
            text += "."
        out.append(text)
        out.append(f"<strong>Verdict:</strong> {_esc(cmp.get('verdict', ''))}")
    elif model_names(summary):
        out.append("No comparison: a geometry-taught or a labels-only model is missing.")
    return "".join(f"<p>{t}</p>" for t in out)


def headline_section(rows: Sequence[TableRow], anchor: str = "headline") -> str:
    """The page's first section: per dataset and protocol the paper's tables exactly as
    ``results/tables/`` has them (:func:`~geokd.report.tables.accuracy_records`,
    :func:`~geokd.report.tables.inference_records` on the same rows: published | as
    published | ours), then which model wins and by how much.

    ``rows``: :class:`~geokd.report.tables.TableRow` with their summaries loaded (dicts).
    Each protocol's sub-section has the id ``<anchor>-<i>``.
    """
    acc, speed = accuracy_records(rows), inference_records(rows)
    ours_models = (*MODELS, *extra_models(rows))
    parts = [
        f'<h2 id="{anchor}">The answer: the paper\'s tables and the winner</h2>',
        "<p>Per dataset and protocol, the numbers of <code>results/tables/</code>: as "
        "published in the original release, our run in the original's settings (as "
        "published), and our run of the corrected pipeline. Test accuracy in %: students "
        "mean &plusmn; sample std over seeds, KNN the 1-NN (its metric in brackets); "
        "inference time in ms per sample (KNN: per query). <em>n/a</em>: no such run or "
        "number. The details of every dataset and protocol follow.</p>",
    ]
    for i, (row, arec, srec) in enumerate(zip(rows, acc, speed, strict=True)):
        title = f"{display_name(row.dataset)}, protocol {row.protocol}"
        parts.append(f'<h3 id="{anchor}-{i}">{_esc(title)}</h3>')
        head = ["", *(MODEL_LABELS.get(m, m) for m in ours_models)]
        body = []
        for group, label in GROUP_LABELS.items():
            models = ours_models if group == "corrected" else MODELS
            cells = [headline_accuracy_cell(arec, group, m) for m in models]
            cells += [NA] * (len(ours_models) - len(models))
            body.append([_esc(label), *(_esc(c) for c in cells)])
        parts.append("<p>Test accuracy (%).</p>" + _grid(head, body))
        head = ["", *(SPEED_LABELS[k] for k in SPEEDS)]
        body = [
            [_esc(label), *(_esc(headline_speed_cell(srec, group, k)) for k in SPEEDS)]
            for group, label in GROUP_LABELS.items()
        ]
        parts.append(
            "<p>Inference time (student: the distilled one where trained; published: on a "
            "GPU).</p>" + _grid(head, body)
        )
        corrected = row.corrected if isinstance(row.corrected, Mapping) else None
        parts.append(_winner_html(corrected))
    return "\n".join(parts)
