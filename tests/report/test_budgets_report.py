"""The report's label-budget section and the teacher line of its headline (issue 24)."""

from __future__ import annotations

import json

from geokd.report.answer import teacher_html
from geokd.report.budgets import summarise_budgets
from geokd.report.plots_budgets import budget_table_html, learning_curve


def _study(tmp_path):
    rows = []
    for m, subsets in ((1, [(1,), (2,)]), (2, [(1, 2)])):
        for subset in subsets:
            for seed in (0, 1):
                for arm, acc in (("geometry_ssl", 0.6 + 0.1 * m), ("self_ssl", 0.5 + 0.1 * m),
                                 ("labels", 0.45 + 0.1 * m), ("distilled", 0.5)):  # fmt: skip
                    rows.append({"budget": m, "labelled_subjects": list(subset), "arm": arm,
                                 "seed": seed, "accuracy": acc + 0.01 * seed})  # fmt: skip
            rows.append({"budget": m, "labelled_subjects": list(subset), "arm": "knn",
                         "seed": None, "accuracy": 0.55 + 0.1 * m})  # fmt: skip
    f = tmp_path / "rows.json"
    f.write_text(json.dumps({"labelled_subjects": [1], "rows": rows, "teacher": {}}))
    return summarise_budgets(
        [f], tmp_path / "s.json", dataset="toy", protocol="paper", train_subjects=[1, 2, 3]
    )


def test_the_learning_curve_and_table_show_every_arm_and_the_verdicts(tmp_path):
    summary = _study(tmp_path)
    fig = learning_curve(summary)
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 5 and any("exact 1-NN" in x for x in labels)
    geo = next(line for line in ax.get_lines() if line.get_label().startswith("geometry_ssl"))
    assert list(geo.get_xdata()) == [1, 2]
    assert list(geo.get_ydata()) == [70.5, 80.5]  # mean over subsets and seeds, in %
    html = budget_table_html(summary)
    assert html.count("<tr>") == 3  # header + 2 budgets
    assert "geometry_ssl - self_ssl (points)" in html and "+10.0" in html
    for b in summary["by_budget"]:
        assert b["verdict"] in html.replace("&#x27;", "'")
    assert "ahead of self_ssl by +10.0 points" in html


def test_the_headline_says_whether_the_teacher_is_degenerate():
    base = {"accuracy": 0.91, "mean_normalised_entropy": 0.06, "ece": 0.03}
    good = {"softmax": {**base, "params": {"temperature": 0.005, "exclude_self": True},
                        "exclude": {"pairs": "subject"}, "degenerate": False}}  # fmt: skip
    text = teacher_html({"teacher": good})
    assert "from other subjects only, T = 0.005" in text and "91.00 %" in text
    assert "informative (not degenerate)" in text and "Degenerate" not in text
    bad = {"softmax": {**base, "mean_normalised_entropy": 0.97, "params": {"temperature": 0.2},
                       "degenerate": True, "degenerate_reasons": ["near uniform"]}}  # fmt: skip
    text = teacher_html({"teacher": bad})
    assert text.index("<strong>Degenerate teacher</strong> (near uniform)") < text.index("0.97")
    assert teacher_html({}) == "" and teacher_html(None) == ""
