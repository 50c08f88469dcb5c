"""geokd.report.results and geokd.report.run_facts: the results sections of the report built
from a hand-made results folder (tables equal to the summary, run facts, benchmarks,
provenance, checksums, figures), missing and bad result files, and the comparison of the model
families."""

from __future__ import annotations

import hashlib
import html
import json
import shutil

import numpy as np
import pytest

from geokd.errors import InputError
from geokd.report import summary as summary_mod
from geokd.report.html import figure_stage
from geokd.report.page import DatasetEntry, build_report
from geokd.report.results import RESULT_FIGURE_STAGES, _comparison_html, seed_key
from tests.helpers.report import (
    EVIL,
    FIVE_CORRECT,
    N_RESULT_FIGURES,
    RUN_FACTS_TITLES,
    SECTION_TITLES,
    TITLES,
    assert_self_contained,
    assert_tables_match_summary,
    make_results,
    parse_html,
    pct,
    write_split_table,
)


def test_results_report_has_every_section_and_valid_pngs(results_built):
    text = results_built["out"].read_text(encoding="utf-8")
    parsed = assert_self_contained(text)
    # 3 dataset figures + 1 split figure + the results figures of one protocol
    assert len(parsed.imgs) == 4 + N_RESULT_FIGURES
    assert '<h4 id="ds0-r0">Results: protocol paper</h4>' in text
    for key, title in SECTION_TITLES.items():
        assert f'<h5 id="ds0-r0-{key}">{html.escape(title)}</h5>' in text
    for title in RUN_FACTS_TITLES:
        assert f">{html.escape(title)}</h" in text
    assert "Not shown" not in text
    assert '<a href="#ds0-r0">results, protocol paper</a>' in text
    # evil text from the results (teacher parameters) is escaped
    assert "<script" not in text.lower() and html.escape(EVIL, quote=True) in text


def test_results_tables_equal_the_summary(results_built):
    text = results_built["out"].read_text(encoding="utf-8")
    summary = results_built["summary"]
    assert_tables_match_summary(text, summary)
    # hand-made values, checked independently of the summary
    assert summary["distilled"]["per_seed"] == {"0": 8 / 12, "1": 9 / 12}
    assert (
        f"{100 * np.mean([8 / 12, 9 / 12]):.2f} ± {100 * np.std([8 / 12, 9 / 12], ddof=1):.2f}"
        in text
    )
    assert '<td class="num">0.625</td><td>ms/sample</td>' in text  # batch 1: mean of 0.5, 0.75
    assert '<td class="num">0.125</td><td>ms/sample</td>' in text  # batched: best of 0.125, 1.125
    assert '<td class="num">12.346</td><td>ms/query</td>' in text
    assert f'<td class="num">{12.3456 / 0.625:.1f}</td>' in text
    # k-NN table: queries, 1-NN, best k, latency
    assert (
        '<td>procrustes</td><td class="num">12</td><td class="num">75.00</td>'
        '<td class="num">74.00</td><td class="num">3</td><td class="num">83.33</td>'
        '<td class="num">12.346</td>'
    ) in text
    # teacher diagnostics
    diag = summary["teacher"]["softmax"]
    assert (
        f'<td>softmax</td><td class="num">{pct(diag["accuracy"])}</td>'
        f'<td class="num">{diag["mean_entropy"]:.3f}</td>'
        f'<td class="num">{diag["mean_normalised_entropy"]:.3f}</td>'
        f'<td class="num">{diag["ece"]:.3f}</td>'
        f'<td class="num">{diag["mean_true_class_probability"]:.3f}</td>'
    ) in text


def test_run_facts_benchmarks_provenance_and_checksums(results_built):
    text = results_built["out"].read_text(encoding="utf-8")
    assert (
        '<td>train_distilled</td><td class="num">2</td><td class="num">6.00</td>'
        '<td class="num">3.50</td><td class="num">120.4</td>'
    ) in text
    # max_rss "-" (not measured) is shown as a dash
    assert (
        '<td>knn</td><td class="num">1</td><td class="num">0.75</td>'
        '<td class="num">0.75</td><td class="num">&ndash;</td>'
    ) in text
    assert (
        '<td><strong>all rules</strong></td><td class="num">3</td><td class="num">6.75</td>'
        '<td class="num">3.50</td><td class="num">120.4</td>'
    ) in text
    prov = results_built["summary"]["provenance"]
    assert f"<code>{'0123abcd' * 5}</code>" in text
    assert f"<code>{prov['config_hash']}</code>" in text
    assert f"numpy {prov['packages']['numpy']}" in text
    rdir = results_built["rdir"]
    assert f"<code>{prov['data_sha256']}</code> (matches the store)" in text
    assert hashlib.sha256((rdir / "split.tsv").read_bytes()).hexdigest() in text
    side = json.loads((rdir / "distances/procrustes/train-train.npy.json").read_text())
    assert f"procrustes/train-train.npy: <code>{side['sha256']}</code>" in text
    # an explicit provenance replaces the summaries'
    out = results_built["tmp"] / "prov.html"
    build_report(out, results_built["entries"], provenance={"git_revision": "feedface"})
    again = out.read_text()
    assert "<code>feedface</code>" in again and "0123abcd" not in again
    assert "No Snakemake benchmark files" in again


def test_results_report_is_deterministic_and_writes_figures(results_built):
    figs = results_built["tmp"] / "figs"
    again = results_built["tmp"] / "again" / "report.html"
    build_report(again, results_built["entries"], figs, benchmarks_dir=results_built["bench"])
    assert again.read_bytes() == results_built["out"].read_bytes()
    keys = [
        "accuracy_vs_time",
        "distances_procrustes",
        "distance_hist_procrustes",
        "dtw_path_procrustes",
        "knn_vs_k",
        "reliability_softmax",
        "soft_labels_softmax",
        "training_curves",
        "confusion_knn",
        "confusion_distilled",
        "confusion_pair",
        "per_class_accuracy",
    ]
    assert len(keys) == N_RESULT_FIGURES
    names = {p.relative_to(figs).as_posix() for p in figs.rglob("*.*")}
    slug = "Toy_friends"
    for key in keys:
        prefix = next((k for k in RESULT_FIGURE_STAGES if key.startswith(k)), None)
        stage = RESULT_FIGURE_STAGES[prefix] if prefix else figure_stage(key)
        stem = f"{stage}/{slug}_paper_{key}"
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert len(names) == 2 * (3 + len(keys))
    pdf = (figs / "students" / f"{slug}_paper_training_curves.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"matplotlib.org" not in pdf


def test_missing_result_files_skip_their_sections(results_built, tmp_path):
    rdir = tmp_path / "paper"
    shutil.copytree(results_built["rdir"], rdir)
    shutil.rmtree(rdir / "teacher")
    shutil.rmtree(rdir / "models")
    (rdir / "summary.json").unlink()
    entry = DatasetEntry("toy", results_built["entries"][0].store, results={"paper": rdir})
    out = tmp_path / "r.html"
    build_report(out, [entry])
    text = out.read_text()
    parsed = assert_self_contained(text)
    # dataset (3), distances (2) + the DTW alignment path, k-NN curve, KNN confusion,
    # per-class bars of KNN alone
    assert len(parsed.imgs) == 3 + 3 + 1 + 1 + 1
    for key in ("dist", "knn", "confusion"):
        assert f'id="ds0-r0-{key}"' in text
    for key in ("acc", "teacher", "curves"):
        assert f'id="ds0-r0-{key}"' not in text
    assert "Not shown, files missing: Accuracy and inference speed (summary.json)" in text
    assert "No provenance recorded" in text
    # an empty results folder: every sub-section is skipped, the page still builds
    (tmp_path / "empty").mkdir()
    entry = DatasetEntry("toy", entry.store, results={"paper": tmp_path / "empty"})
    build_report(out, [entry])
    assert len(parse_html(out.read_text()).imgs) == 3


def test_report_leads_with_the_comparison_of_five_families(built, tmp_path):
    rdir = make_results(built["store"], tmp_path / "toy" / "paper", models=FIVE_CORRECT)
    out = tmp_path / "r.html"
    build_report(out, [DatasetEntry("toy", built["store"], results={"paper": rdir})])
    text = out.read_text()
    assert len(assert_self_contained(text).imgs) == 3 + N_RESULT_FIGURES
    summary = summary_mod.read_summary(rdir / "summary.json")
    assert_tables_match_summary(text, summary)
    cmp = summary["comparisons"]
    assert (cmp["geometry"], cmp["labels_only"]) == ("metric", "label_smoothing")
    assert cmp["differences"] == pytest.approx([3 / 12, 2 / 12])
    # the comparison leads the first results sub-section
    section = text[text.index('id="ds0-r0-acc"') :]
    assert section.index("The models compared") < section.index("Test accuracy; models")
    for mode, per_seed in FIVE_CORRECT.items():
        accs = [sum(c) / 12 for c in per_seed]
        cell = f"{pct(np.mean(accs))} ± {pct(np.std(accs, ddof=1))}"
        side = "geometry-taught" if mode in ("distilled", "metric") else "labels only"
        # batch 1: mean of 0.5 and 0.75; batched: best of 0.125 and 1.125
        assert (
            f'<td>{html.escape(TITLES[mode])}</td><td>{side}</td><td class="num">{cell}</td>'
            '<td class="num">2</td><td class="num">0.625</td><td class="num">0.125</td>'
        ) in text
    assert (
        '<td>KNN 1-NN (procrustes)</td><td>teacher</td><td class="num">75.00</td>'
        '<td class="num">&ndash;</td><td class="num">12.346</td>'
    ) in text
    lo, hi = (100 * x for x in cmp["ci95"])
    assert (
        "Gain of Metric distillation over Label smoothing (labels only), paired by seed: "
        f"+{100 * np.mean([3 / 12, 2 / 12]):.2f} points (95 % CI {lo:.2f} to {hi:.2f}) "
        "over 2 seed(s): 0, 1."
    ) in text
    assert "not significant" in cmp["verdict"]
    assert f"<strong>Verdict:</strong> {html.escape(cmp['verdict'])}</p>" in text
    assert "Best overall: Metric distillation, 83.33 % test accuracy." in text


def test_comparison_is_robust_to_missing_pieces():
    assert _comparison_html({}) == ""
    one = {"transformer": {"accuracy_mean": 0.5, "per_seed": {"0": 0.5}}}
    text = _comparison_html(one)
    assert "No comparison: none declared (training.comparisons)" in text
    assert '<td class="num">50.00</td>' + '<td class="num">&ndash;</td>' * 3 in text
    # an older summary: no comparisons, winner or per-model times, the student's time only
    model = {"accuracy_mean": 0.6, "accuracy_std": 0.0, "n_seeds": 1, "per_seed": {"0": 0.6}}
    old = {
        "transformer": {**model, "per_seed": {"0": 0.5}, "accuracy_mean": 0.5},
        "distilled": model,
        "inference": {"student_ms_per_sample": 0.4},
    }
    text = _comparison_html(old)
    assert '<td class="num">0.400</td><td class="num">&ndash;</td>' in text
    assert "No comparison: none declared" in text  # never a pick of the test winners
    assert "Best overall: Distilled student, 60.00 % test accuracy." in text


def test_bad_results_are_clear_errors(results_built, tmp_path):
    store = results_built["entries"][0].store
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="results folder not found"):
        build_report(tmp_path / "r.html", [DatasetEntry("t", store, results={"p": missing})])
    rdir = tmp_path / "paper"
    shutil.copytree(results_built["rdir"], rdir)
    write_split_table(store, rdir / "split.tsv", [3], [4])  # another split: matrix ids unknown
    with pytest.raises(InputError, match="row ids are not sequences of split.tsv"):
        build_report(tmp_path / "r.html", [DatasetEntry("t", store, results={"p": rdir})])
    (rdir / "knn" / "procrustes.json").write_text("{broken")
    with pytest.raises(InputError, match="not a readable JSON file"):
        build_report(tmp_path / "r.html", [DatasetEntry("t", store, results={"p": rdir})])
    assert not (tmp_path / "r.html").exists()


def test_seed_key_orders_numeric_seeds_then_named_runs():
    seeds = ["10", "ensemble", "2", "0"]
    assert sorted(seeds, key=seed_key) == ["0", "2", "10", "ensemble"]
