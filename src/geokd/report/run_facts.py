"""The report's closing "Run facts" section: per-rule wall time and peak memory from the
Snakemake benchmark files, package versions, git revision and data checksums."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .html import _esc, _grid, _num, _table


@dataclass
class RunFacts:
    """What the results sections gather for the closing "Run facts" section."""

    checksums: list[list[str]] = field(default_factory=list)
    provenance: list[dict] = field(default_factory=list)


def read_benchmarks(benchmarks_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-rule totals of Snakemake benchmark files ``<dir>/<rule>/**/*.tsv``.

    Returns a frame with columns ``rule``, ``jobs``, ``wall_s_sum``, ``wall_s_max`` (the
    ``s`` column) and ``max_rss_mb`` (the largest ``max_rss``; NaN where not measured),
    one row per rule in name order; empty when the folder has no benchmark files.
    Repeated measurements in one file count as separate jobs.
    """
    root = Path(benchmarks_dir)
    parts = []
    for path in sorted(root.glob("*/**/*.tsv")):
        try:
            table = pd.read_csv(path, sep="\t")
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(path, f"not a readable benchmark file ({exc})") from exc
        if "s" not in table:
            raise InputError(path, "not a Snakemake benchmark file (no 's' column)")
        rss = table["max_rss"] if "max_rss" in table else pd.Series(float("nan"), table.index)
        parts.append(
            pd.DataFrame(
                {
                    "rule": path.relative_to(root).parts[0],
                    "s": pd.to_numeric(table["s"], errors="coerce"),
                    "max_rss": pd.to_numeric(rss, errors="coerce"),
                }
            )
        )
    columns = ["rule", "jobs", "wall_s_sum", "wall_s_max", "max_rss_mb"]
    if not parts:
        return pd.DataFrame(columns=columns)
    data = pd.concat(parts, ignore_index=True)
    grouped = data.groupby("rule", sort=True)
    return pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall_s_sum": grouped["s"].sum(),
            "wall_s_max": grouped["s"].max(),
            "max_rss_mb": grouped["max_rss"].max(),
        }
    ).reset_index()[columns]


def _bench_cells(wall_sum: float, wall_max: float, rss: float) -> list[str]:
    rss_cell = "&ndash;" if np.isnan(rss) else _num(rss, ".1f")
    return [_num(wall_sum, ".2f"), _num(wall_max, ".2f"), rss_cell]


def run_facts_section(benchmarks_dir: Path | None, provenance: dict | None, facts: RunFacts) -> str:
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
