"""What a run reports: per-protocol summaries, the paper's tables, the HTML page, figures.

Owns ``summary.json`` (:mod:`.summary`), ``results/tables/`` (:mod:`.tables`), the
self-contained ``results/report.html`` (:mod:`.page`, its shared HTML helpers :mod:`.html`
and result sections :mod:`.results`) and the figures (:mod:`.plots`, :mod:`.plots_results`);
the inference speed the summary job measures alone (:mod:`.speed`) and the marker that makes
the report target rebuild a lost input (:mod:`.missing`).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["read_summary", "summarize"], "summary"),
    "write_tables": "tables",
    "read_benchmarks": "run_facts",
    **dict.fromkeys(["DatasetEntry", "build_report", "render_report"], "page"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
