"""The answer the report leads with, and the comparison of the models.

:func:`headline_section` is the page's first section: per dataset and protocol the paper's
tables with the numbers of ``results/tables/`` (the records of
:func:`geokd.report.tables.accuracy_records` and :func:`~geokd.report.tables.inference_records`),
laid out to fit a screen: a row per model family (published | as published | ours, one
student and its seed ensemble), a row per timed runtime (exact 1-NN, the student in PyTorch
eager mode and in ONNX Runtime, timed alone); then which model wins and by how much, in plain
sentences (``winner`` and ``comparisons`` of the corrected run's summary). The comparison table that
leads each protocol's results (:func:`_comparison_html`) and the accuracy against inference
time figure (:func:`_accuracy_time_html`) are built here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import plots_answer as aplots
from .html import _Emitter, _esc, _grid, _num, _pct
from .speed import RUNTIMES as RUNTIME_TITLES
from .summary import (
    best_model,
    comparisons_of,
    model_family,
    model_names,
    sort_models,
    teacher_metric,
)
from .tables import (
    GROUP_LABELS,
    GROUPS,
    MODELS,
    NA,
    Cell,
    TableRow,
    accuracy_records,
    display_name,
    extra_models,
    fmt_number,
    inference_records,
    model_label,
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


def seeds_text(res: Mapping, name: str = "") -> str:
    """How many seeds a model's accuracy stands on: ``N`` for a family (its mean over N
    seeds), ``one model of N seeds`` for a seed ensemble (its ``members``; ``one model``
    for a ``*_ensemble`` of an older summary, which does not list them)."""
    if "members" in res:
        return f"one model of {len(res['members'])} seeds"
    if name.endswith("_ensemble"):
        return "one model"
    return str(res["n_seeds"]) if "n_seeds" in res else "&ndash;"


def _over_seeds(res: Mapping, name: str) -> str:
    """What a model's accuracy is: a family's ``mean over N seeds``; a seed ensemble's, one
    model's (the mean of its members' class probabilities)."""
    if "members" in res or name.endswith("_ensemble"):
        n = f"{len(res['members'])} seeds' " if "members" in res else "its seeds' "
        return f"one model: the mean of the class probabilities of {n}students"
    n = res.get("n_seeds", "?")
    return f"mean over {n} seed{'' if n == 1 else 's'}"


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
                seeds_text(res, mode),
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
    cmps = comparisons_of(summary)
    for cmp in cmps:
        out += _gain_html(cmp)
    if not cmps and model_names(summary):
        out += "<p>No comparison: none declared (training.comparisons), or a declared "
        out += "family was not trained.</p>"
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


def _speed_text(rec: Mapping[str, str], key: str) -> str:
    """An ``inference.csv`` number as the headline prints it: ms with 3 decimals, a speed-up
    (``..._x``) with 1."""
    return _fixed(rec.get(key, NA), 1 if key.endswith("_x") else 3)


def headline_speed_rows(rec: Mapping[str, str], group: str, metric: str) -> list[list[str]]:
    """The inference rows of one group of the headline from an ``inference.csv`` record
    (:func:`geokd.report.tables.inference_records`): what is timed, ms at batch 1 (per
    query for 1-NN), ms per sample batched, the speed-ups over exact 1-NN at both. A run
    with the times measured alone (``<group>_alone_*``) shows exact 1-NN and the student in
    PyTorch eager mode and in ONNX Runtime; an older one the times of its own jobs; the
    published student (a range, on a GPU) as printed. Cells are plain text."""
    if group == "published":
        return [["student, on a GPU", rec.get("published_student_ms", NA), NA, NA, NA]]
    alone, dash = f"{group}_alone_", "\u2013"
    if _speed_text(rec, f"{alone}knn_ms") != NA:
        rows = [[f"exact 1-NN ({metric}), per query", _speed_text(rec, f"{alone}knn_ms")]]
        rows[0] += [dash] * 3
        for rt, label in RUNTIME_TITLES.items():
            keys = ("batch1_ms", "batched_ms", "speedup_x", "speedup_batched_x")
            times = [_speed_text(rec, f"{alone}{rt}_{k}") for k in keys]
            rows.append([f"student ({rec.get(f'{alone}student', NA)}), {label}", *times])
        return rows
    if _speed_text(rec, f"{group}_knn_ms") == NA:
        return [[NA] * 5]
    keys = ("student_batch1_ms", "student_batched_ms", "speedup_x", "speedup_batched_x")
    return [
        [f"exact 1-NN ({metric}), per query", _speed_text(rec, f"{group}_knn_ms"), *[dash] * 3],
        [
            "student, PyTorch eager, timed in its training job",
            *(_speed_text(rec, f"{group}_{k}") for k in keys),
        ],
    ]


def teacher_html(summary: Mapping | None) -> str:
    """The teacher the geometry-taught students learn from, with its diagnostics: held-out
    accuracy, entropy, calibration, and whether it is degenerate (said first, in bold)."""
    teachers = (summary or {}).get("teacher") or {}
    if not teachers:
        return ""
    out = []
    for method, t in sorted(teachers.items()):
        params = t.get("params") or {}
        excl = (t.get("exclude") or {}).get("pairs", "self" if params.get("exclude_self") else "")
        how = {"subject": "from other subjects only", "self": "leaving each sequence out",
               "none": "every sequence, itself included (the original)"}.get(excl, "")  # fmt: skip
        extra = f", T = {params['temperature']:g}" if "temperature" in params else ""
        extra += f", k = {params['k']}" if "k" in params else ""
        text = (
            f"Teacher <em>{_esc(method)}</em> ({_esc(how)}{_esc(extra)}): held-out accuracy "
            f"{_pct(t['accuracy'])} %, mean normalised entropy "
            f"{float(t['mean_normalised_entropy']):.2f}, ECE {float(t['ece']):.3f}"
        )
        if t.get("degenerate"):
            why = "; ".join(t.get("degenerate_reasons") or [])
            text = f"<strong>Degenerate teacher</strong> ({_esc(why)}): " + text
        else:
            text += ": informative (not degenerate)"
        out.append(text + ".")
    return '<p class="teacher">' + "<br>".join(out) + "</p>"


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
            text += f" ({_over_seeds(summary[win['model']], win['model'])})"
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
                    f". Timed in its own job beside other jobs (PyTorch eager), it takes "
                    f"{float(ms):.3f} ms per sample at batch 1, against {float(knn_ms):.3f} ms "
                    f"per query for the exact 1-NN in the KNN latency job "
                    f"({float(knn_ms) / float(ms):.0f} times faster)"
                )
        out.append(text + ".")
    for cmp in comparisons_of(summary):
        geo, lab = cmp["geometry"], cmp["labels_only"]
        text = (
            f"Geometry against labels only, as declared before the run: "
            f"{_esc(mode_title(geo))} at {_pct(summary[geo]['accuracy_mean'])} % against "
            f"{_esc(mode_title(lab))} at {_pct(summary[lab]['accuracy_mean'])} %: "
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
    if not comparisons_of(summary) and model_names(summary):
        out.append("No comparison: none declared (training.comparisons), or a declared "
                   "family was not trained.")  # fmt: skip
    return "".join(f"<p>{t}</p>" for t in out)


def _families(models: Sequence[str]) -> list[str]:
    """The model families of a list of models (``<family>_ensemble`` counts as its family)."""
    return sort_models(m.removesuffix("_ensemble") for m in models if m != "knn")


def _accuracy_table(rec: Mapping[str, str], summary: Mapping | None, models) -> str:
    """Families as rows: published, as published, ours (one student: mean ± std over seeds;
    the family's seed ensemble: one model)."""
    names = model_names(summary or {})
    seeds = {summary[m]["n_seeds"] for m in names if not m.endswith("_ensemble")}
    members = {len(summary[m]["members"]) for m in names if "members" in summary[m]}
    ensembles = any(m.endswith("_ensemble") for m in models)
    head = ["model", "taught by", GROUP_LABELS["published"], GROUP_LABELS["as_published"]]
    over = f"over {seeds.pop()} seeds" if len(seeds) == 1 else "over seeds"
    head.append(f"Corrected (ours): one student, mean ± std {over}")
    if ensembles:
        of = f" of {members.pop()} seeds" if len(members) == 1 else ""
        head.append(f"Corrected (ours): seed ensemble, one model{of}")
    rows = [["KNN 1-NN", "no training", *(headline_accuracy_cell(rec, g, "knn") for g in GROUPS)]]
    rows[0] += ["\u2013"] if ensembles else []
    for family in _families(models):
        side = {"geometry": "geometry", "labels_only": "labels"}.get(model_family(family) or "")
        row = [model_label(family), side or NA]
        row += [headline_accuracy_cell(rec, g, family) for g in GROUPS]
        if ensembles:
            row.append(headline_accuracy_cell(rec, "corrected", f"{family}_ensemble"))
        rows.append(row)
    return _grid(head, [[_esc(c) for c in row] for row in rows], text_cols=(0, 1))


def _speed_table(srec: Mapping[str, str], arec: Mapping[str, str]) -> str:
    head = ["run", "what is timed", "batch 1 (ms)", "batched (ms per sample)"]
    head += ["speed-up over 1-NN, batch 1", "speed-up, batched"]
    body = []
    for group, label in GROUP_LABELS.items():
        metric = arec.get(f"{group}_knn_metric", NA) if group != "published" else NA
        for i, row in enumerate(headline_speed_rows(srec, group, metric)):
            body.append([_esc(label if i == 0 else ""), *(_esc(c) for c in row)])
    batch = srec.get("corrected_alone_batch_size", NA)
    batch = f"batches of {batch}" if batch != NA else "batches"
    text = (
        "<p>Inference time on one thread, measured by a job that had the machine to itself "
        "(no training job beside it): exact 1-NN against the whole training set in ms per "
        "query; the student (the distilled one where trained, its first seed) in PyTorch "
        "eager mode and exported to ONNX (ONNX Runtime), in ms per sample at batch 1 and in "
        f"{_esc(batch)}; speed-up: the 1-NN time over the student's. Published: the "
        "original student, on a GPU.</p>"
    )
    return text + _grid(head, body, text_cols=(0, 1))


def headline_section(rows: Sequence[TableRow], anchor: str = "headline") -> str:
    """The page's first section: per dataset and protocol the paper's tables exactly as
    ``results/tables/`` has them (:func:`~geokd.report.tables.accuracy_records`,
    :func:`~geokd.report.tables.inference_records` on the same rows), laid out to fit a
    screen: accuracy with the model families as rows (published | as published | ours, one
    student and the family's seed ensemble), inference time with what is timed as rows
    (exact 1-NN, the student in PyTorch eager mode and in ONNX Runtime); then which model
    wins and by how much.

    ``rows``: :class:`~geokd.report.tables.TableRow` with their summaries loaded (dicts).
    Each protocol's sub-section has the id ``<anchor>-<i>``.
    """
    acc, speed = accuracy_records(rows), inference_records(rows)
    models = (*MODELS, *extra_models(rows))
    parts = [
        f'<h2 id="{anchor}">The answer: the paper\'s tables and the winner</h2>',
        "<p>Per dataset and protocol, the numbers of <code>results/tables/</code>: as "
        "published in the original release, our run in the original's settings (as "
        "published), and our run of the corrected pipeline. Test accuracy in %: a family's "
        "students as the mean &plusmn; sample std over seeds, its seed ensemble as one model "
        "(the mean of its seeds' class probabilities), KNN the 1-NN (its metric in "
        "brackets). <em>n/a</em>: no such run or number. The details of every dataset and "
        "protocol follow.</p>",
    ]
    for i, (row, arec, srec) in enumerate(zip(rows, acc, speed, strict=True)):
        title = f"{display_name(row.dataset)}, protocol {row.protocol}"
        parts.append(f'<h3 id="{anchor}-{i}">{_esc(title)}</h3>')
        corrected = row.corrected if isinstance(row.corrected, Mapping) else None
        parts.append("<p>Test accuracy (%).</p>" + _accuracy_table(arec, corrected, models))
        parts.append(_speed_table(srec, arec))
        parts.append(teacher_html(corrected))
        parts.append(_winner_html(corrected))
    return "\n".join(parts)
