"""The report's per-protocol results sections (the closing "Run facts": :mod:`.run_facts`).

A results section is drawn from ``results/<dataset>/<protocol>/``, each sub-section left out
when its files are missing (see :mod:`geokd.report.page`); it leads with the comparison of the
model families (:mod:`.answer`: accuracy, latency, the gain of geometry over labels only with
its 95 % CI, the verdict), and draws what a reader of the paper expects besides: accuracy
against inference time, the DTW alignment path of an example pair over its frame costs, the
teacher's reliability diagram, the labels-only transformer's confusion matrix beside the
distilled one. "Run facts" gathers wall time, memory, versions and data checksums.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .. import paths
from ..checksum import sha256_file
from ..data.splits import read_split
from ..distances.shards import load_matrix
from ..errors import InputError, read_json
from ..models.teacher import N_ECE_BINS, read_soft_labels
from . import plots, plots_budgets
from . import plots_answer as aplots
from . import plots_results as rplots
from .alignment import dtw_path_html
from .answer import _accuracy_time_html, _comparison_html, mode_title, seeds_text
from .html import _Emitter, _esc, _grid, _img, _mono, _num, _pct, _slug
from .run_facts import RunFacts
from .summary import model_names, read_summary, sort_models
from .tables import Cell, fmt_number, knn_metric


def _read_json(path: Path) -> dict | None:
    """A JSON file, ``None`` where it is absent; :class:`InputError` where unreadable."""
    return read_json(path) if path.is_file() else None


#: Results sub-sections: key -> (heading, the files it needs).
RESULT_SECTIONS = {
    "acc": ("Accuracy and inference speed", "summary.json"),
    "dist": (
        "Distances",
        "split.tsv, distances/*/train-train.npy; the alignment path: distances/*/test-train.npy",
    ),
    "knn": ("k-NN accuracy against k", "knn/*.json"),
    "teacher": ("Teacher", "teacher/*.json, teacher/*.parquet with split.tsv"),
    "curves": ("Training curves", "models/*/seed*/history.json"),
    "confusion": (
        "Confusion matrices and per-class accuracy",
        "knn/*.json, models/*/seed*/metrics.json",
    ),
    "budgets": (
        "Label budgets: what geometry teaches when labels are scarce",
        "budgets/summary.json",
    ),
}
#: Stages (figures sub-folders) of the figure keys added here; the others:
#: :data:`geokd.report.html.FIGURE_STAGES`.
RESULT_FIGURE_STAGES = {
    "reliability": "teacher",
    "dtw_path": "distances",
    "accuracy_vs_time": "students",
    "confusion_pair": "students",
    "budgets": "budgets",
}


class ResultsEmitter(_Emitter):
    """:class:`~geokd.report.html._Emitter` that also files the keys of
    :data:`RESULT_FIGURE_STAGES` (``<key>`` or ``<key>_<suffix>``) by their stage."""

    def __call__(self, key: str, fig: Figure, alt: str, caption: str) -> str:
        stage = next(
            (s for k, s in RESULT_FIGURE_STAGES.items() if key == k or key.startswith(k + "_")),
            None,
        )
        if stage is None:
            return super().__call__(key, fig, alt, caption)
        out = _img(fig, alt, caption)
        if self.figures_dir is not None:
            folder = Path(self.figures_dir) / stage
            folder.mkdir(parents=True, exist_ok=True)
            plots.save_figure(fig, folder / f"{self.prefix}_{_slug(key)}")
        return out


def seed_key(seed: str) -> tuple:
    """Numeric seeds in order, then named runs (an ensemble's ``"ensemble"``)."""
    return (0, int(seed), "") if str(seed).lstrip("-").isdigit() else (1, 0, str(seed))


def _accuracy_html(summary: dict, emit: _Emitter | None = None) -> str:
    rows = []
    for metric, res in sorted((summary.get("knn") or {}).items()):
        f1, k = res.get("macro_f1_per_k") or {}, res["best_k"]
        rows.append([f"KNN 1-NN ({_esc(metric)})", _pct(res["k1_accuracy"]), _pct(f1.get("1"))])
        rows.append(
            [
                f"KNN best k = {k} ({_esc(metric)}; k chosen on test: optimistic)",
                _pct(res["best_accuracy"]),
                _pct(f1.get(str(k))),
            ]
        )
    for row in rows:
        row += ["&ndash;", "&ndash;"]
    for mode in model_names(summary):
        res = summary[mode]
        cell = Cell(res["accuracy_mean"], res["accuracy_std"], res["n_seeds"])
        per_seed = sorted(res.get("per_seed", {}).items(), key=lambda kv: seed_key(kv[0]))
        seeds = ", ".join(f"{s}: {100 * a:.2f}" for s, a in per_seed)
        rows.append(
            [
                _esc(mode_title(mode)),
                fmt_number(cell, 100, 2),
                _pct(res.get("macro_f1_mean")),
                seeds_text(res, mode),
                _esc(seeds),
            ]
        )
    head = ["model", "test accuracy (%)", "macro-F1 (%)", "seeds", "accuracy per seed (%)"]
    inf = summary.get("inference") or {}
    knn = f"exact KNN 1-NN ({_esc(inf.get('knn_metric', '?'))}) against the whole training set"
    irows = [
        [label, _num(inf[key], fmt), unit]
        for key, label, fmt, unit in (
            ("student_ms_per_sample", "student, batch 1", ".3f", "ms/sample"),
            ("student_ms_per_sample_batched", "student, batched (best batch)", ".3f", "ms/sample"),
            ("knn_ms_per_sample", knn, ".3f", "ms/query"),
            ("speedup", "speed-up (KNN / student batch 1)", ".1f", "&times;"),
            ("speedup_batched", "speed-up (KNN / student batched)", ".1f", "&times;"),
        )
        if key in inf
    ]
    out = _comparison_html(summary)
    out += "<p>Test accuracy; models: mean &plusmn; sample standard deviation over seeds.</p>"
    out += _grid(head, rows)
    if irows:
        out += "<p>Inference speed as timed in the training and KNN jobs, beside other jobs "
        out += "(timed alone, and in ONNX Runtime: the first section).</p>"
        out += _grid(["quantity", "value", "unit"], irows, text_cols=(0, 2))
    if emit is not None:
        out += _accuracy_time_html(summary, emit)
    return out


def _distances_html(
    rdir: Path,
    labels: dict,
    names: list[str],
    emit: _Emitter,
    sequences: Mapping[str, np.ndarray] | None = None,
) -> str | None:
    parts = []
    train_train = paths.in_protocol(paths.MATRIX, metric="*", query="train", reference="train")
    for path in sorted(rdir.glob(train_train)) if labels else []:
        metric = path.parent.name
        D, sidecar = load_matrix(path)
        ids = [str(i) for i in sidecar.get("row_ids") or []]
        if len(ids) != D.shape[0] or any(i not in labels for i in ids):
            raise InputError(path, "row ids are not sequences of split.tsv beside it")
        y = [labels[i] for i in ids]
        parts.append(
            emit(
                f"distances_{metric}",
                rplots.distance_heatmap(D, y, names, metric),
                f"train x train distance matrix, {metric}",
                f"{metric}-DTW distances between the {len(ids)} training sequences, rows and "
                "columns ordered by class; white lines mark the class boundaries.",
            )
        )
        parts.append(
            emit(
                f"distance_hist_{metric}",
                rplots.distance_distributions(D, y, metric),
                f"intra- and inter-class distance histograms, {metric}",
                "Distances between training sequences of the same class and of different "
                "classes (each pair once; areas normalised to 1).",
            )
        )
    parts.append(dtw_path_html(rdir, sequences or {}, emit))
    return "".join(parts) or None


def _knn_html(rdir: Path, knn: dict[str, dict], emit: _Emitter) -> str | None:
    if not knn:
        return None
    rows, curves = [], {}
    for metric, res in knn.items():
        curves[metric] = ({int(k): v["accuracy"] for k, v in res["per_k"].items()}, res["best_k"])
        one = res["per_k"].get("1") or {}
        lat = _read_json(rdir / paths.in_protocol(paths.KNN_LATENCY, metric=metric)) or {}
        rows.append(
            [
                _esc(metric),
                str(one.get("n", "&ndash;")),
                _pct(one.get("accuracy")),
                _pct(one.get("macro_f1")),
                str(res["best_k"]),
                _pct(res["best_accuracy"]),
                _num(lat.get("ms_per_query")),
            ]
        )
    head = ["metric", "test queries", "1-NN accuracy (%)", "1-NN macro-F1 (%)", "best k"]
    head += ["best-k accuracy (%)", "1-NN latency (ms/query)"]
    fig = emit(
        "knn_vs_k",
        rplots.knn_accuracy_curve(curves),
        "k-NN test accuracy against k",
        "Test accuracy of k-NN on the test x train distances for each k; circle: 1-NN, "
        "star: the best k (chosen on test, so optimistic).",
    )
    return _grid(head, rows) + fig


def _teacher_html(rdir: Path, labels: dict, names: list[str], emit: _Emitter) -> str | None:
    diags = {
        p.stem: _read_json(p) or {}
        for p in sorted(rdir.glob(paths.in_protocol(paths.TEACHER_DIAGNOSTICS, method="*")))
        if not p.name.endswith(".parquet.json")  # a soft-label file's checksum sidecar
    }
    soft = sorted(rdir.glob(paths.in_protocol(paths.SOFT_LABELS, method="*")))
    if not diags and not (soft and labels):
        return None
    parts = [
        f'<p class="warning"><strong>Warning: degenerate teacher {_esc(method)}</strong>: '
        f"{_esc('; '.join(d.get('degenerate_reasons') or ['flagged by the teacher step']))}. "
        "Its soft labels carry next to no class information; a student distilled from them "
        "learns little (choose a lower temperature or k).</p>"
        for method, d in diags.items()
        if d.get("degenerate")
    ]
    if diags:
        rows = [
            [
                _esc(method),
                _pct(d.get("accuracy")),
                _num(d.get("mean_entropy")),
                _num(d.get("mean_normalised_entropy")),
                _num(d.get("ece")),
                _num(d.get("mean_true_class_probability")),
                _mono(json.dumps(d.get("params", {}), sort_keys=True)),
            ]
            for method, d in diags.items()
        ]
        bins = next((d["ece_bins"] for d in diags.values() if "ece_bins" in d), "?")
        head = ["method", "train accuracy, argmax (%)", "mean entropy (nats)"]
        head += ["mean normalised entropy", f"ECE ({bins} bins)", "mean P(true class)"]
        parts.append(_grid([*head, "parameters"], rows, text_cols=(0, 6)))
    for path in soft if labels else []:
        ids, P = read_soft_labels(path)
        if any(i not in labels for i in ids):
            raise InputError(path, "sequence ids are not sequences of split.tsv beside it")
        y = [labels[i] for i in ids]
        bins = int((diags.get(path.stem) or {}).get("ece_bins") or N_ECE_BINS)
        parts.append(
            emit(
                f"reliability_{path.stem}",
                aplots.reliability_diagram(P, y, path.stem, bins),
                f"reliability diagram of the teacher, {path.stem}",
                f"Calibration of the teacher's soft labels ({path.stem}) on the "
                f"{len(ids)} training sequences: the training sequences binned by the "
                f"probability of their top class ({bins} equal-width bins), the accuracy of "
                "that class per bin against the diagonal of perfect calibration, and the "
                "number of sequences per bin; the title gives the expected calibration error "
                "(ECE).",
            )
        )
        parts.append(
            emit(
                f"soft_labels_{path.stem}",
                rplots.soft_label_examples(P, y, ids, names, path.stem),
                f"soft labels of training samples, {path.stem}",
                f"Teacher probabilities ({path.stem}) over the classes for training samples "
                "spread over the classes; the true class is in red.",
            )
        )
    return "".join(parts)


def _load_runs(rdir: Path) -> dict[str, list[tuple[int, dict | None, dict | None]]]:
    """Model -> [(seed, metrics.json, history.json)] in seed order; absent files are None."""
    runs = {}
    modes = [d.name for d in (rdir / paths.in_protocol(paths.MODELS)).glob("*") if d.is_dir()]
    for mode in sort_models(modes):
        found = []
        for d in rdir.glob(paths.in_protocol(paths.RUN, model=mode, seed="*")):
            m = re.fullmatch(r"seed(\d+)", d.name)
            if m and d.is_dir():
                run = {"model": mode, "seed": m[1]}
                metrics = _read_json(rdir / paths.in_protocol(paths.RUN_METRICS, **run))
                history = _read_json(rdir / paths.in_protocol(paths.RUN_HISTORY, **run))
                found.append((int(m[1]), metrics, history))
        if found:
            runs[mode] = sorted(found, key=lambda r: r[0])
    return runs


def _curves_html(runs: dict, emit: _Emitter) -> str | None:
    histories = {mode: [h for _, _, h in rs if h] for mode, rs in runs.items()}
    histories = {mode: hs for mode, hs in histories.items() if hs}
    if not histories:
        return None
    return emit(
        "training_curves",
        rplots.training_curves(histories),
        "training curves over seeds",
        "Per epoch: training objective, cross-entropy against the labels on the training set, "
        "and test accuracy; line: mean over seeds, band: min to max over seeds.",
    )


def _confusion_html(
    knn: dict, runs: dict, summary: dict | None, names: list[str], emit: _Emitter
) -> str | None:
    parts, per_class = [], {}
    if knn:
        metric = knn_metric({"knn": knn, "inference": (summary or {}).get("inference") or {}})
        one = knn[metric]["per_k"].get("1") or {}
        if "confusion" in one:
            fig = rplots.confusion_matrix(one["confusion"], names, f"KNN 1-NN ({metric})")
            cap = f"Test confusion matrix of 1-NN on the {metric} distances (colour: row fraction)."
            parts.append(emit("confusion_knn", fig, "KNN 1-NN confusion matrix", cap))
        if "per_class_accuracy" in one:
            per_class[f"KNN 1-NN ({metric})"] = _floats(one["per_class_accuracy"])
    colors = {f"KNN 1-NN ({metric})": rplots.mode_color("knn")} if knn else {}
    for i, mode in enumerate(runs):
        tests = [(seed, m["test"]) for seed, m, _ in runs.get(mode, []) if m and "test" in m]
        if mode == "distilled" and tests and "confusion" in tests[0][1]:
            seed, test = tests[0]
            fig = rplots.confusion_matrix(
                test["confusion"], names, f"Distilled student, seed {seed}"
            )
            cap = f"Test confusion matrix of the distilled student, seed {seed}."
            parts.append(
                emit("confusion_distilled", fig, "distilled student confusion matrix", cap)
            )
        pcs = [_floats(t["per_class_accuracy"]) for _, t in tests if "per_class_accuracy" in t]
        if pcs:
            label = f"{mode_title(mode)}, mean of {len(pcs)} seed(s)"
            per_class[label] = np.mean(pcs, axis=0)
            colors[label] = rplots.mode_color(mode, i)
    parts.append(_confusion_pair_html(runs, names, emit))
    if per_class:
        parts.append(
            emit(
                "per_class_accuracy",
                rplots.per_class_accuracy(per_class, names, colors),
                "per-class test accuracy",
                "Test accuracy per class: KNN 1-NN and the models (mean over seeds).",
            )
        )
    return "".join(parts) or None


def _confusion_pair_html(runs: dict, names: list[str], emit: _Emitter) -> str:
    """The labels-only transformer's test confusion matrix beside the distilled student's,
    of the lowest seed both have (else each one's lowest seed)."""
    tests = {
        mode: {
            seed: m["test"]["confusion"]
            for seed, m, _ in runs.get(mode, [])
            if m and "confusion" in (m.get("test") or {})
        }
        for mode in ("transformer", "distilled")
    }
    if not tests["transformer"] or not tests["distilled"]:
        return ""
    common = sorted(set(tests["transformer"]) & set(tests["distilled"]))
    seeds = {m: common[0] if common else min(tests[m]) for m in tests}
    left, right = tests["transformer"][seeds["transformer"]], tests["distilled"][seeds["distilled"]]
    if np.shape(left) != np.shape(right):
        return ""
    same = "the same seed" if common else "each one's first seed"
    return emit(
        "confusion_pair",
        aplots.confusion_pair(
            left,
            right,
            names,
            f"{mode_title('transformer')}, seed {seeds['transformer']}",
            f"{mode_title('distilled')}, seed {seeds['distilled']}",
        ),
        "confusion matrices of the labels-only transformer and the distilled student",
        "Test confusion matrices of the transformer taught by the labels alone (left) and of "
        f"the distilled student (right), {same}; same class order and colour scale (fraction "
        "of the true class), counts in the cells.",
    )


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _results_section(
    rdir: Path,
    dataset: str,
    protocol: str,
    names: list[str],
    anchor: str,
    emit: _Emitter,
    store_sha: str,
    facts: RunFacts,
    sequences: Mapping[str, np.ndarray] | None = None,
) -> str:
    """One protocol's results; each sub-section is left out where its files are missing.
    ``sequences``: the store's sequences by id (the example DTW alignment path)."""
    if not rdir.is_dir():
        raise InputError(rdir, "results folder not found")
    split = rdir / paths.in_protocol(paths.SPLIT)
    labels: dict[str, int] = {}
    if split.is_file():
        table = read_split(split)
        ids, ys = table["sequence_id"].astype(str), table["label"].astype(int)
        labels = dict(zip(ids, ys, strict=True))
    summary_path = rdir / paths.in_protocol(paths.SUMMARY)
    summary = read_summary(summary_path) if summary_path.is_file() else None
    knn = {
        p.stem: _read_json(p) or {}
        for p in sorted(rdir.glob(paths.in_protocol(paths.KNN_RESULT, metric="*")))
        if not p.stem.startswith("latency_")
    }
    runs = _load_runs(rdir)
    bodies = {
        "acc": _accuracy_html(summary, emit) if summary else None,
        "dist": _distances_html(rdir, labels, names, emit, sequences),
        "knn": _knn_html(rdir, knn, emit),
        "teacher": _teacher_html(rdir, labels, names, emit),
        "curves": _curves_html(runs, emit),
        "confusion": _confusion_html(knn, runs, summary, names, emit),
        "budgets": plots_budgets.budgets_html(rdir, emit),
    }
    subs = [(key, *RESULT_SECTIONS[key], body) for key, body in bodies.items()]
    parts = [
        f'<h4 id="{anchor}">Results: protocol {_esc(protocol)}</h4>',
        f'<p class="meta">results folder <code>{_esc(rdir)}</code></p>',
    ]
    optional = {"budgets"}  # a dataset with the study off, or one training subject
    missing = [f"{t} ({needs})" for k, t, needs, body in subs if body is None and k not in optional]
    for key, title, _, body in subs:
        if body is not None:
            parts.append(f'<h5 id="{anchor}-{key}">{_esc(title)}</h5>\n{body}')
    if missing:
        parts.append(f'<p class="meta">Not shown, files missing: {_esc("; ".join(missing))}.</p>')

    prov = (summary or {}).get("provenance") or {}
    if prov:
        facts.provenance.append(prov)
    recorded = prov.get("data_sha256")
    data = "&ndash;"
    if recorded:
        same = "matches the store" if recorded == store_sha else "<strong>not the store</strong>"
        data = f"<code>{_esc(recorded)}</code> ({same})"
    mats = []
    matrices = paths.in_protocol(paths.MATRIX_SIDECAR, metric="*", query="*", reference="*")
    for side in sorted(rdir.glob(matrices)):
        sha = (_read_json(side) or {}).get("sha256", "?")
        mats.append(f"{_esc(side.parent.name)}/{_esc(side.name[:-5])}: <code>{_esc(sha)}</code>")
    split_sha = f"<code>{sha256_file(split)}</code>" if split.is_file() else "&ndash;"
    row = [_esc(dataset), _esc(protocol), data, split_sha, "<br>".join(mats) or "&ndash;"]
    facts.checksums.append(row)
    return "\n".join(parts)
