"""geokd.report.answer: the report leads with the paper's tables as accuracy.csv and
inference.csv have them, the winner and the geometry-taught against labels-only comparison, and
an "as published" run linked to its dataset (by setting or on the command line)."""

from __future__ import annotations

import html

import pytest

from geokd.report import summary as summary_mod
from geokd.report.page import DatasetEntry, build_report
from tests.helpers.report import (
    acc_text,
    assert_self_contained,
    csv_rows,
    headline_html,
    pct,
)


def test_the_report_leads_with_the_papers_tables_as_the_csv_has_them(answer_built):
    text = answer_built["out"].read_text(encoding="utf-8")
    assert_self_contained(text)
    # first on the page and first in the table of contents, before the datasets' details
    assert text.index('<h2 id="headline">') < text.index('<h2 id="ds0">')
    nav = text[text.index("<nav>") : text.index("</nav>")]
    assert nav.index('href="#headline"') < nav.index('href="#ds0"')
    assert '<a href="#headline-0">utd_mhad, protocol paper</a>' in nav
    head = headline_html(text)
    assert '<h3 id="headline-0">UTD-MHAD, protocol paper</h3>' in head
    # one headline row: the as-published dataset fills utd_mhad's row, as in the CSV
    assert head.count("<h3 ") == 1
    (acc,) = csv_rows(answer_built["tmp"] / "tables" / "accuracy.csv")
    (inf,) = csv_rows(answer_built["tmp"] / "tables" / "inference.csv")
    # accuracy: a row per model family (no ensembles here: no ensemble column)
    sides = {"knn": "no training", "transformer": "labels", "label_smoothing": "labels"}
    sides |= {"distilled": "geometry", "metric": "geometry", "nngk": "labels"}
    labels = {"knn": "KNN 1-NN", "transformer": "Transformer", "label_smoothing": "Label smoothing"}
    labels |= {"distilled": "Distilled", "metric": "Metric distillation", "nngk": "NNGK head"}
    assert "Corrected (ours): seed ensemble" not in head
    assert "Corrected (ours): one student, mean ± std over 2 seeds</th>" in head
    for model, label in labels.items():
        cells = [acc_text(acc, g, model) for g in ("published", "as_published", "corrected")]
        row = f"<tr><td>{label}</td><td>{sides[model]}</td>"
        row += "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>"
        assert row in head, row
    assert head.index("<td>Transformer</td>") < head.index("<td>Label smoothing</td>")
    assert head.index("<td>Label smoothing</td>") < head.index("<td>Distilled</td>")
    # inference: these summaries have no times measured alone: the times of their own jobs
    assert inf["corrected_alone_knn_ms"] == "n/a"
    speed = [["Published", "student, on a GPU", inf["published_student_ms"], "n/a", "n/a", "n/a"]]
    for group, label in (
        ("as_published", "As published (our run)"),
        ("corrected", "Corrected (ours)"),
    ):
        ms = [f"{float(inf[f'{group}_{k}_ms']):.3f}" for k in ("student_batch1", "student_batched")]
        x = [f"{float(inf[f'{group}_{k}_x']):.1f}" for k in ("speedup", "speedup_batched")]
        knn = f"{float(inf[f'{group}_knn_ms']):.3f}"
        speed.append([label, "exact 1-NN (procrustes), per query", knn, "–", "–", "–"])
        speed.append(["", "student, PyTorch eager, timed in its training job", *ms, *x])
    for cells in speed:
        row = "".join(
            f"<td>{html.escape(c)}</td>" if i < 2 else f'<td class="num">{html.escape(c)}</td>'
            for i, c in enumerate(cells)
        )
        assert f"<tr>{row}</tr>" in head, row
    # the published values as printed, and the runs' own numbers
    assert acc["published_distilled_pct"] == "64.91" and acc["published_knn_pct"] == "32.0"
    summary = summary_mod.read_summary(answer_built["ours"] / "summary.json")
    cell = acc_text(acc, "corrected", "metric")
    assert cell.startswith(f"{100 * summary['metric']['accuracy_mean']:.2f} ± ")
    asp = summary_mod.read_summary(answer_built["asp"] / "summary.json")
    assert acc_text(acc, "as_published", "distilled").startswith(
        f"{100 * asp['distilled']['accuracy_mean']:.2f}"
    )


def test_the_headline_says_which_model_wins_and_by_how_much(answer_built):
    head = headline_html(answer_built["out"].read_text(encoding="utf-8"))
    summary = summary_mod.read_summary(answer_built["ours"] / "summary.json")
    win, cmp = summary["winner"], summary["comparisons"]
    assert win["model"] == "metric"
    k1 = summary["knn"]["procrustes"]["k1_accuracy"]
    assert (
        f"<strong>Best overall: Metric distillation</strong>, {pct(win['accuracy'])} % test "
        f"accuracy (mean over 2 seeds), {100 * (win['accuracy'] - k1):+.2f} points against "
        f"the exact KNN 1-NN (procrustes) it learns from ({pct(k1)} %)."
    ) in head
    lo, hi = (100 * x for x in cmp["ci95"])
    assert (
        "as declared before the run: Metric distillation at 83.33 % against "
        "Label smoothing (labels only) at 62.50 %: "
        f"{100 * cmp['mean_difference']:+.2f} points (geometry ahead), mean of the per-seed "
        f"differences over 2 paired seed(s), 95 % CI {lo:+.2f} to {hi:+.2f}."
    ) in head
    assert f"<strong>Verdict:</strong> {html.escape(cmp['verdict'])}" in head


@pytest.mark.slow  # two more reports: ~50 s on a Zen 1
def test_an_as_published_run_is_linked_by_its_setting_too(answer_built, tmp_path):
    a, b = answer_built["entries"]
    renamed = DatasetEntry("original", b.store, results=b.results, as_published_of="utd_mhad")
    out = tmp_path / "r.html"
    build_report(out, [a, renamed])
    head = headline_html(out.read_text())
    assert head == headline_html(answer_built["out"].read_text())
    # without the link the run is a dataset of its own, with its own row, whatever its name
    build_report(out, [a, DatasetEntry("original", b.store, results=b.results)])
    assert headline_html(out.read_text()).count("<h3 ") == 2
    build_report(out, [a, DatasetEntry("utd_mhad_as_published", b.store, results=b.results)])
    assert headline_html(out.read_text()).count("<h3 ") == 2


def test_the_cli_links_an_as_published_run_and_names_a_bad_link(answer_built, tmp_path):
    from geokd.cli import main

    a, b = answer_built["entries"]
    out = tmp_path / "r.html"
    args = ["report", str(out), "--dataset", f"utd_mhad={a.store}", "--dataset", f"orig={b.store}"]
    args += ["--results", f"utd_mhad/paper={a.results['paper']}"]
    args += ["--results", f"orig/paper={b.results['paper']}"]
    assert main([*args, "--as-published-of", "orig=utd_mhad"]) == 0
    assert headline_html(out.read_text()) == headline_html(answer_built["out"].read_text())
    assert main([*args, "--as-published-of", "orig=nothing"]) == 2


def test_no_results_no_headline(built):
    text = built["out"].read_text(encoding="utf-8")
    assert 'id="headline"' not in text and "#headline" not in text
