"""The self-contained HTML report (``results/report.html``): one section per dataset.

Each section holds a facts table (counts, lengths, units, landmarks, source, checksum),
the sequences per class and subject, the length histogram, the first sequence of the store
drawn as a strip of frames, and per protocol the split sizes with a bar chart.

With ``DatasetEntry.results`` (protocol -> ``results/<dataset>/<protocol>/``) each protocol
also gets a results section drawn from the workflow's files, each sub-section left out when
its files are missing: accuracy and inference-speed tables (``summary.json``), the train x
train distance matrix and the intra/inter-class distance distributions, k-NN accuracy against
k, the teacher diagnostics and soft-label examples, training curves over seeds, confusion
matrices and per-class accuracy. A closing "Run facts" section gives per-rule wall time and
peak memory (Snakemake benchmark files), package versions, git revision and data checksums.

The page has no external references: the figures are embedded PNG data URIs, the CSS is
inline and there is no JavaScript. It carries no timestamp, so equal inputs give a
byte-identical file. All text from the data is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import __version__, plots
from . import plots_results as rplots
from .atomic import write_text
from .errors import InputError
from .shards import load_matrix
from .splits import SPLITS, read_split
from .store import StoreInfo, load_sequences, read_info
from .tables import Cell, fmt_number, knn_metric, read_benchmarks
from .teacher import read_soft_labels

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
"""


@dataclass
class DatasetEntry:
    """One dataset of the report.

    Parameters
    ----------
    name : str
        Display name of the dataset.
    store : pathlib.Path
        Its Parquet sequence store.
    splits : dict of str to pathlib.Path
        Protocol name -> split table (TSV), shown in the given order.
    results : dict of str to pathlib.Path
        Protocol name -> its results folder ``results/<dataset>/<protocol>/`` (optional).
    """

    name: str
    store: Path
    splits: dict[str, Path] = field(default_factory=dict)
    results: dict[str, Path] = field(default_factory=dict)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputError(path, f"{what} not found")


def _img(fig: Figure, alt: str, caption: str) -> str:
    data = plots.fig_to_png_base64(fig)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    """A two-column table; keys are escaped here, values must be HTML already."""
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _fmt_source_info(info: dict) -> str:
    if not info:
        return "<em>none recorded</em>"
    items = []
    for key in sorted(info):
        value = info[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        items.append(f'<li><code>{_esc(key)}</code>: <span class="mono">{_esc(text)}</span></li>')
    return f"<ul>{''.join(items)}</ul>"


def _facts(entry: DatasetEntry, info: StoreInfo, meta: pd.DataFrame, checksum: str) -> str:
    lengths = meta["n_frames"].to_numpy(dtype=np.int64)
    trials = meta["trial"].dropna()
    n_trials = f"{trials.nunique()}" if len(trials) else "none (no trial numbers)"
    subjects = sorted(int(s) for s in meta["subject"].unique())
    names = ", ".join(info.landmark_names)
    classes = ", ".join(f"{k}: {v}" for k, v in sorted(_label_names(meta).items()))
    rows = [
        ("dataset", _esc(info.dataset)),
        ("store", f"<code>{_esc(entry.store)}</code>"),
        ("sequences", f"{len(meta)}"),
        ("classes", f"{meta['label'].nunique()}"),
        ("class names", f'<span class="mono">{_esc(classes)}</span>'),
        ("subjects", f"{len(subjects)} ({_esc(', '.join(map(str, subjects)))})"),
        ("trials (distinct trial numbers)", n_trials),
        ("landmarks", f"{len(info.landmark_names)}"),
        ("bones", f"{len(info.bones)}"),
        (
            "frames per sequence",
            f"min {lengths.min()}, median {np.median(lengths):g}, max {lengths.max()}",
        ),
        ("total frames", f"{lengths.sum()}"),
        ("units", _esc(info.units or "unspecified")),
        ("coordinate system", _esc(info.coordinate_system or "unspecified")),
        ("landmark names", f'<span class="mono">{_esc(names)}</span>'),
        ("source", _fmt_source_info(info.source_info)),
        ("store format version", f"{info.format_version}"),
        ("data checksum (SHA-256 of the Parquet file)", f"<code>{checksum}</code>"),
    ]
    return _table(rows)


def _label_names(meta: pd.DataFrame) -> dict[int, str]:
    first = meta.drop_duplicates("label")
    return {int(k): str(v) for k, v in zip(first["label"], first["label_name"], strict=True)}


def _load_split(path: Path, meta: pd.DataFrame, store: Path) -> pd.DataFrame:
    _require_file(path, "split table")
    table = read_split(path)
    table["sequence_id"] = table["sequence_id"].astype(str)
    unknown = sorted(set(table["sequence_id"]) - set(meta["sequence_id"].astype(str)))
    if unknown:
        raise InputError(
            path, f"{len(unknown)} sequence id(s) not in the store {store}: {unknown[:5]}"
        )
    bad = sorted(set(table["split"].astype(str)) - set(SPLITS))
    if bad:
        raise InputError(path, f"unknown split name(s) {bad}; expected {list(SPLITS)}")
    return table


def _split_section(
    protocol: str, path: Path, table: pd.DataFrame, meta: pd.DataFrame, anchor: str
) -> str:
    head = "<tr><th>split</th><th>sequences</th><th>classes</th><th>subjects</th></tr>"
    rows = []
    for split in SPLITS:
        part = table[table["split"] == split]
        subjects = ", ".join(str(s) for s in sorted(int(s) for s in part["subject"].unique()))
        rows.append(
            f'<tr><td>{split}</td><td class="num">{len(part)}</td>'
            f'<td class="num">{part["label"].nunique()}</td>'
            f"<td>{_esc(subjects) if subjects else '&ndash;'}</td></tr>"
        )
    rest = meta[~meta["sequence_id"].astype(str).isin(table["sequence_id"])]
    subjects = ", ".join(str(s) for s in sorted(int(s) for s in rest["subject"].unique()))
    rows.append(
        f'<tr><td>not used</td><td class="num">{len(rest)}</td>'
        f'<td class="num">{rest["label"].nunique()}</td>'
        f"<td>{_esc(subjects) if subjects else '&ndash;'}</td></tr>"
    )
    fig = plots.split_counts(table, _label_names(meta))
    image = _img(
        fig,
        f"sequences per class and split, protocol {protocol}",
        f"Sequences per class in train, val and test under protocol {protocol}.",
    )
    return (
        f'<h4 id="{anchor}">Protocol {_esc(protocol)}</h4>'
        f'<p class="meta">split table <code>{_esc(path)}</code></p>'
        f"<table>{head}{''.join(rows)}</table>{image}"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "x"


class _Emitter:
    """Figures to ``<figure>`` HTML and, with a figures folder, to PNG + PDF files there."""

    def __init__(self, figures_dir: Path | None, prefix: str):
        self.figures_dir, self.prefix = figures_dir, prefix

    def __call__(self, key: str, fig: Figure, alt: str, caption: str) -> str:
        out = _img(fig, alt, caption)
        if self.figures_dir is not None:
            plots.save_figure(fig, Path(self.figures_dir) / f"{self.prefix}_{_slug(key)}")
        return out


@dataclass
class _RunFacts:
    """What the results sections gather for the closing "Run facts" section."""

    checksums: list[list[str]] = field(default_factory=list)
    provenance: list[dict] = field(default_factory=list)


def _read_json(path: Path) -> dict | None:
    """A JSON file, ``None`` where it is absent; :class:`InputError` where unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON file ({exc})") from exc


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


#: Results sub-sections: key -> (heading, the files it needs).
RESULT_SECTIONS = {
    "acc": ("Accuracy and inference speed", "summary.json"),
    "dist": ("Distances", "split.tsv, distances/*/train-train.npy"),
    "knn": ("k-NN accuracy against k", "knn/*.json"),
    "teacher": ("Teacher", "teacher/*.json, teacher/*.parquet with split.tsv"),
    "curves": ("Training curves", "models/*/seed*/history.json"),
    "confusion": (
        "Confusion matrices and per-class accuracy",
        "knn/*.json, models/*/seed*/metrics.json",
    ),
}
MODE_TITLES = {"transformer": "Transformer (labels only)", "distilled": "Distilled student"}


def _accuracy_html(summary: dict) -> str:
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
    for mode in ("transformer", "distilled"):
        res = summary.get(mode)
        if res:
            cell = Cell(res["accuracy_mean"], res["accuracy_std"], res["n_seeds"])
            per_seed = sorted(res.get("per_seed", {}).items(), key=lambda kv: int(kv[0]))
            seeds = ", ".join(f"{s}: {100 * a:.2f}" for s, a in per_seed)
            rows.append(
                [
                    MODE_TITLES[mode],
                    fmt_number(cell, 100, 2),
                    _pct(res.get("macro_f1_mean")),
                    str(res["n_seeds"]),
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
        )
        if key in inf
    ]
    out = "<p>Test accuracy; models: mean &plusmn; sample standard deviation over seeds.</p>"
    out += _grid(head, rows)
    if irows:
        out += "<p>Inference speed (as timed by the workflow).</p>"
        out += _grid(["quantity", "value", "unit"], irows, text_cols=(0, 2))
    return out


def _distances_html(rdir: Path, labels: dict, names: list[str], emit: _Emitter) -> str | None:
    parts = []
    for path in sorted(rdir.glob("distances/*/train-train.npy")) if labels else []:
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
    return "".join(parts) or None


def _knn_html(rdir: Path, knn: dict[str, dict], emit: _Emitter) -> str | None:
    if not knn:
        return None
    rows, curves = [], {}
    for metric, res in knn.items():
        curves[metric] = ({int(k): v["accuracy"] for k, v in res["per_k"].items()}, res["best_k"])
        one = res["per_k"].get("1") or {}
        lat = _read_json(rdir / "knn" / f"latency_{metric}.json") or {}
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
    diags = {p.stem: _read_json(p) or {} for p in sorted(rdir.glob("teacher/*.json"))}
    soft = sorted(rdir.glob("teacher/*.parquet"))
    if not diags and not (soft and labels):
        return None
    parts = []
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
    for mode in ("transformer", "distilled"):
        found = []
        for d in (rdir / "models" / mode).glob("seed*"):
            m = re.fullmatch(r"seed(\d+)", d.name)
            if m and d.is_dir():
                found.append(
                    (int(m[1]), _read_json(d / "metrics.json"), _read_json(d / "history.json"))
                )
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
    for mode in ("transformer", "distilled"):
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
            per_class[f"{MODE_TITLES[mode]}, mean of {len(pcs)} seed(s)"] = np.mean(pcs, axis=0)
    if per_class:
        parts.append(
            emit(
                "per_class_accuracy",
                rplots.per_class_accuracy(per_class, names),
                "per-class test accuracy",
                "Test accuracy per class: KNN 1-NN and the models (mean over seeds).",
            )
        )
    return "".join(parts) or None


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _results_section(
    rdir: Path,
    entry: DatasetEntry,
    protocol: str,
    names: list[str],
    anchor: str,
    emit: _Emitter,
    store_sha: str,
    facts: _RunFacts,
) -> str:
    """One protocol's results; each sub-section is left out where its files are missing."""
    if not rdir.is_dir():
        raise InputError(rdir, "results folder not found")
    split = rdir / "split.tsv"
    labels: dict[str, int] = {}
    if split.is_file():
        table = read_split(split)
        ids, ys = table["sequence_id"].astype(str), table["label"].astype(int)
        labels = dict(zip(ids, ys, strict=True))
    summary = _read_json(rdir / "summary.json")
    knn = {
        p.stem: _read_json(p) or {}
        for p in sorted(rdir.glob("knn/*.json"))
        if not p.stem.startswith("latency_")
    }
    runs = _load_runs(rdir)
    bodies = {
        "acc": _accuracy_html(summary) if summary else None,
        "dist": _distances_html(rdir, labels, names, emit),
        "knn": _knn_html(rdir, knn, emit),
        "teacher": _teacher_html(rdir, labels, names, emit),
        "curves": _curves_html(runs, emit),
        "confusion": _confusion_html(knn, runs, summary, names, emit),
    }
    subs = [(key, *RESULT_SECTIONS[key], body) for key, body in bodies.items()]
    parts = [
        f'<h4 id="{anchor}">Results: protocol {_esc(protocol)}</h4>',
        f'<p class="meta">results folder <code>{_esc(rdir)}</code></p>',
    ]
    missing = [f"{title} ({needs})" for _, title, needs, body in subs if body is None]
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
    for side in sorted(rdir.glob("distances/*/*.npy.json")):
        sha = (_read_json(side) or {}).get("sha256", "?")
        mats.append(f"{_esc(side.parent.name)}/{_esc(side.name[:-5])}: <code>{_esc(sha)}</code>")
    split_sha = f"<code>{file_sha256(split)}</code>" if split.is_file() else "&ndash;"
    row = [_esc(entry.name), _esc(protocol), data, split_sha, "<br>".join(mats) or "&ndash;"]
    facts.checksums.append(row)
    return "\n".join(parts)


def _dataset_section(
    entry: DatasetEntry, anchor: str, figures_dir: Path | None, facts: _RunFacts
) -> str:
    store = Path(entry.store)
    _require_file(store, "sequence store")
    info = read_info(store)
    sequences, meta = load_sequences(store)
    checksum = file_sha256(store)
    tables = {p: _load_split(Path(sp), meta, store) for p, sp in entry.splits.items()}
    slug = _slug(entry.name) if entry.name else "dataset"
    emit = _Emitter(figures_dir, slug)

    first_split = next(iter(tables.items()), None)
    hist_caption = "Sequence lengths in frames"
    hist_caption += f", by split of protocol {first_split[0]}." if first_split else "."
    row = meta.iloc[0]
    trial = "" if pd.isna(row["trial"]) else f", trial {int(row['trial'])}"
    title = f"{row['sequence_id']}: {row['label_name']} (subject {int(row['subject'])}{trial})"
    strip = plots.skeleton_strip(
        sequences[0], info.bones, info.landmark_names, title, units=info.units
    )
    figures = [
        emit(
            "class_subject",
            plots.class_subject_counts(meta),
            "sequences per class and subject",
            "Number of sequences per class (rows) and subject (columns).",
        ),
        emit(
            "lengths",
            plots.length_histogram(meta, first_split[1] if first_split else None),
            "histogram of sequence lengths",
            hist_caption,
        ),
        emit(
            "skeleton",
            strip,
            f"skeleton sequence {row['sequence_id']}",
            f"The first sequence of the store, {title}: evenly spaced frames, front view "
            "(x right, y up), bones coloured by side (blue left, red right).",
        ),
    ]

    parts = [f'<h2 id="{anchor}">{_esc(entry.name)}</h2>']
    parts.append(f'<h3 id="{anchor}-facts">Facts</h3>')
    parts.append(_facts(entry, info, meta, checksum))
    parts.append(f'<h3 id="{anchor}-figures">Classes, subjects, lengths, a sequence</h3>')
    parts += figures
    parts.append(f'<h3 id="{anchor}-splits">Protocols</h3>')
    if not tables:
        parts.append("<p><em>No split tables given.</em></p>")
    for j, (protocol, table) in enumerate(tables.items()):
        parts.append(
            _split_section(protocol, Path(entry.splits[protocol]), table, meta, f"{anchor}-p{j}")
        )
    if entry.results:
        parts.append(f'<h3 id="{anchor}-results">Results</h3>')
        label_names = _label_names(meta)
        names = [label_names.get(c, str(c)) for c in range(max(label_names) + 1)]
        for j, protocol in enumerate(entry.results):
            emit_p = _Emitter(figures_dir, f"{slug}_{_slug(protocol)}")
            parts.append(
                _results_section(
                    Path(entry.results[protocol]),
                    entry,
                    protocol,
                    names,
                    f"{anchor}-r{j}",
                    emit_p,
                    checksum,
                    facts,
                )
            )
    return "\n".join(parts)


def _bench_cells(wall_sum: float, wall_max: float, rss: float) -> list[str]:
    rss_cell = "&ndash;" if np.isnan(rss) else _num(rss, ".1f")
    return [_num(wall_sum, ".2f"), _num(wall_max, ".2f"), rss_cell]


def _run_facts_section(
    benchmarks_dir: Path | None, provenance: dict | None, facts: _RunFacts
) -> str:
    parts = [
        '<h2 id="run-facts">Run facts</h2>',
        '<h3 id="run-facts-time">Wall time and memory per rule</h3>',
    ]
    bench = read_benchmarks(benchmarks_dir) if benchmarks_dir and benchmarks_dir.is_dir() else None
    if bench is None or bench.empty:
        where = f" under <code>{_esc(benchmarks_dir)}</code>" if benchmarks_dir else ""
        parts.append(f"<p><em>No Snakemake benchmark files{where}.</em></p>")
    else:
        rows = [
            [_esc(r.rule), str(r.jobs), *_bench_cells(r.wall_s_sum, r.wall_s_max, r.max_rss_mb)]
            for r in bench.itertuples()
        ]
        total = [
            "<strong>all rules</strong>",
            str(int(bench["jobs"].sum())),
            *_bench_cells(
                bench["wall_s_sum"].sum(), bench["wall_s_max"].max(), bench["max_rss_mb"].max()
            ),
        ]
        head = ["rule", "jobs", "wall time, sum (s)", "wall time, max (s)", "peak max_rss (MB)"]
        parts.append(f'<p class="meta">From <code>{_esc(benchmarks_dir)}</code>.</p>')
        parts.append(_grid(head, [*rows, total]))
    parts.append('<h3 id="run-facts-provenance">Software and revision</h3>')
    prov = provenance if provenance is not None else next(iter(facts.provenance), None)
    if not prov:
        parts.append("<p><em>No provenance recorded.</em></p>")
    else:
        packages = prov.get("packages") or {}
        pkgs = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
        rows = [
            ("git revision", f"<code>{_esc(prov.get('git_revision', 'unknown'))}</code>"),
            ("config hash", f"<code>{_esc(prov.get('config_hash', 'unknown'))}</code>"),
            ("packages", f'<span class="mono">{_esc(pkgs) or "&ndash;"}</span>'),
        ]
        parts.append(_table(rows))
        keys = ("git_revision", "packages", "config_hash")
        seen = {json.dumps({k: p.get(k) for k in keys}, sort_keys=True) for p in facts.provenance}
        if len(seen) > 1:
            parts.append(
                f'<p class="meta">The summaries record {len(seen)} different revisions, package '
                "sets or configurations; the first is shown.</p>"
            )
    if facts.checksums:
        parts.append('<h3 id="run-facts-checksums">Data checksums (SHA-256)</h3>')
        head = ["dataset", "protocol", "store (recorded in summary.json)", "split.tsv"]
        parts.append(
            _grid([*head, "distance matrices"], facts.checksums, text_cols=(0, 1, 2, 3, 4))
        )
    return "\n".join(parts)


def _toc(datasets: list[DatasetEntry], run_facts: bool) -> str:
    items = []
    for i, entry in enumerate(datasets):
        anchor = f"ds{i}"
        sub = [
            f'<li><a href="#{anchor}-facts">facts</a></li>',
            f'<li><a href="#{anchor}-figures">classes, subjects, lengths, a sequence</a></li>',
        ]
        sub += [
            f'<li><a href="#{anchor}-p{j}">protocol {_esc(p)}</a></li>'
            for j, p in enumerate(entry.splits)
        ]
        sub += [
            f'<li><a href="#{anchor}-r{j}">results, protocol {_esc(p)}</a></li>'
            for j, p in enumerate(entry.results)
        ]
        items.append(f'<li><a href="#{anchor}">{_esc(entry.name)}</a><ul>{"".join(sub)}</ul></li>')
    if run_facts:
        items.append('<li><a href="#run-facts">run facts</a></li>')
    return f"<nav><h2>Contents</h2><ul>{''.join(items)}</ul></nav>"


def render_report(
    datasets: list[DatasetEntry],
    figures_dir: Path | None = None,
    benchmarks_dir: Path | None = None,
    provenance: dict | None = None,
) -> str:
    """The report page as an HTML string (see :func:`build_report`)."""
    if not datasets:
        raise ValueError("no datasets to report")
    facts = _RunFacts()
    sections = [_dataset_section(e, f"ds{i}", figures_dir, facts) for i, e in enumerate(datasets)]
    run_facts = (
        benchmarks_dir is not None or provenance is not None or any(e.results for e in datasets)
    )
    if run_facts:
        sections.append(_run_facts_section(benchmarks_dir, provenance, facts))
    names = ", ".join(e.name for e in datasets)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>geokd report</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        "<header><h1>geokd report</h1>\n"
        f'<p class="meta">Generated by geokd {_esc(__version__)} for {len(datasets)} '
        f"dataset(s): {_esc(names)}. The page is self-contained: figures are embedded, "
        "nothing is loaded from elsewhere.</p></header>\n"
        f"{_toc(datasets, run_facts)}\n<main>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


def build_report(
    out_html: str | os.PathLike,
    datasets: list[DatasetEntry],
    figures_dir: str | os.PathLike | None = None,
    benchmarks_dir: str | os.PathLike | None = None,
    provenance: dict | None = None,
) -> Path:
    """Write the self-contained report page, atomically.

    Parameters
    ----------
    out_html : str or os.PathLike
        Output HTML file (its folder is created if needed).
    datasets : list of DatasetEntry
        The datasets, in page order, each with its store, split tables and (optionally)
        results folders per protocol.
    figures_dir : str or os.PathLike, optional
        If given, every figure is also written there as PNG and PDF
        (``<dataset>_<key>`` and ``<dataset>_<protocol>_<key>``).
    benchmarks_dir : str or os.PathLike, optional
        Snakemake's ``benchmarks/`` folder (``<rule>/<wildcards>.tsv``): wall time and peak
        memory per rule in the "Run facts" section.
    provenance : dict, optional
        Provenance to show (``git_revision``, ``config_hash``, ``packages``); default: that
        of the first ``summary.json`` among the results.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    InputError
        If a store or split table is missing or unreadable, a split table names
        sequences that are not in its store, a results folder is missing, a results file
        is unreadable or does not match the split table beside it, or no dataset is given.
    """
    out = Path(out_html)
    if not datasets:
        raise InputError(out, "no datasets given to report")
    figs = Path(figures_dir) if figures_dir is not None else None
    bench = Path(benchmarks_dir) if benchmarks_dir is not None else None
    write_text(out, render_report(list(datasets), figs, bench, provenance))
    return out
