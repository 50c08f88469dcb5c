"""The self-contained HTML report (``results/report.html``): the answer, then one section per
dataset.

With results, the page leads with the answer (:func:`geokd.report.answer.headline_section`):
per dataset and protocol the paper's tables as ``results/tables/`` has them (published | as
published | ours; accuracy and inference time, from the same rows as
:func:`geokd.report.tables.write_tables` builds from the summaries), then which model wins and
by how much. A dataset that is the "as published" run of another (``as_published_of``, as
the workflow passes it from the config) fills that one's "as published" row, as in the tables.

Each dataset section holds a facts table (counts, lengths, units, landmarks, source, checksum),
the sequences per class and subject, the length histogram, the first sequence of the store
drawn as a strip of frames, and per protocol the split sizes with a bar chart.

With ``DatasetEntry.results`` (protocol -> ``results/<dataset>/<protocol>/``) each protocol
also gets a results section drawn from the workflow's files, each sub-section left out when
its files are missing: the comparison of the model families (accuracy, latency, the gain of
geometry over labels only with its confidence interval, the verdict) and the accuracy and
inference-speed tables (``summary.json``), the train x train distance matrix and the
intra/inter-class distance distributions, k-NN accuracy against k, the teacher diagnostics
and soft-label examples, training curves over seeds, confusion matrices and per-class
accuracy. A closing "Run facts" section gives per-rule wall time and
peak memory (Snakemake benchmark files), package versions, git revision and data checksums.

The page has no external references: the figures are embedded PNG data URIs, the CSS is
inline and there is no JavaScript. It carries no timestamp, so equal inputs give a
byte-identical file. All text from the data is HTML-escaped.

The results and "Run facts" sections are built in :mod:`geokd.report.results`, the shared
HTML helpers live in :mod:`geokd.report.html`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__, paths
from ..atomic import write_text
from ..checksum import sha256_file as file_sha256  # public name of the report API
from ..data.splits import SPLITS, read_split
from ..data.store import StoreInfo, load_sequences, read_info
from ..errors import InputError
from . import plots
from .answer import headline_section
from .html import CSS, _Emitter, _esc, _img, _slug, _table
from .results import ResultsEmitter, _results_section
from .run_facts import RunFacts, run_facts_section
from .tables import TableRow, as_rows, read_summary


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
    as_published_of : str, optional
        The dataset whose "as published" run this is (the config's ``as_published_of``):
        its summaries fill that dataset's "as published" row of the headline tables (the
        name does not matter: without it, a dataset is a corrected run of its own).
    """

    name: str
    store: Path
    splits: dict[str, Path] = field(default_factory=dict)
    results: dict[str, Path] = field(default_factory=dict)
    as_published_of: str | None = None


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputError(path, f"{what} not found")


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


def _dataset_section(
    entry: DatasetEntry, anchor: str, figures_dir: Path | None, facts: RunFacts
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
    y_down = "y down" in (info.coordinate_system or "")
    strip = plots.skeleton_strip(
        sequences[0], info.bones, info.landmark_names, title, units=info.units, y_down=y_down
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
            f"(x right, y {'down' if y_down else 'up'}), bones coloured by side (blue left, "
            "red right).",
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
        by_id = dict(zip(meta["sequence_id"].astype(str), sequences, strict=True))
        for j, protocol in enumerate(entry.results):
            emit_p = ResultsEmitter(figures_dir, f"{slug}_{_slug(protocol)}")
            parts.append(
                _results_section(
                    Path(entry.results[protocol]),
                    entry.name,
                    protocol,
                    names,
                    f"{anchor}-r{j}",
                    emit_p,
                    checksum,
                    facts,
                    by_id,
                )
            )
    return "\n".join(parts)


def _as_published_of(entry: DatasetEntry, names: set[str]) -> str | None:
    return entry.as_published_of if entry.as_published_of in names else None


def headline_rows(datasets: list[DatasetEntry]) -> list[TableRow]:
    """The rows of the paper's tables from the datasets' ``summary.json`` files, as
    ``geokd tables`` builds them (:func:`geokd.report.tables.as_rows`): corrected runs keyed
    by their dataset and protocol, an "as published" run (:attr:`DatasetEntry.as_published_of`)
    keyed by the dataset it stands for; summaries read with their timings."""
    names = {e.name for e in datasets}
    corrected: dict[tuple[str, str], dict] = {}
    published: dict[tuple[str, str], dict] = {}
    for entry in datasets:
        of = _as_published_of(entry, names)
        for protocol, rdir in entry.results.items():
            path = Path(rdir) / paths.in_protocol(paths.SUMMARY)
            if path.is_file():
                (published if of else corrected)[(of or entry.name, protocol)] = read_summary(path)
    return as_rows(corrected, published) if corrected or published else []


def _toc(
    datasets: list[DatasetEntry], run_facts: bool, headline: list[TableRow] | None = None
) -> str:
    items = []
    if headline:
        sub = "".join(
            f'<li><a href="#headline-{i}">{_esc(r.dataset)}, protocol {_esc(r.protocol)}</a></li>'
            for i, r in enumerate(headline)
        )
        items.append(
            f'<li><a href="#headline">the answer: the paper\'s tables and the winner</a>'
            f"<ul>{sub}</ul></li>"
        )
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
    facts = RunFacts()
    sections = [_dataset_section(e, f"ds{i}", figures_dir, facts) for i, e in enumerate(datasets)]
    headline = headline_rows(datasets)
    if headline:
        sections.insert(0, headline_section(headline, "headline"))
    run_facts = (
        benchmarks_dir is not None or provenance is not None or any(e.results for e in datasets)
    )
    if run_facts:
        sections.append(run_facts_section(benchmarks_dir, provenance, facts))
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
        f"{_toc(datasets, run_facts, headline)}\n<main>\n"
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
