"""The paper's tables as CSV and LaTeX, checked cell by cell against hand-made summaries."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from geokd.errors import InputError
from geokd.report.run_facts import read_benchmarks
from geokd.report.tables import (
    TableRow,
    latex_escape,
    write_tables,
)

FILES = ["accuracy.csv", "accuracy.tex", "inference.csv", "inference.tex"]


def _summary(knn: dict[str, float], tr: list[float], di: list[float], inf: dict) -> dict:
    """A summary as :func:`geokd.report.summary.summarize` writes it (the parts the tables read)."""

    def model(accs: list[float]) -> dict:
        a = np.array(accs)
        return {
            "accuracy_mean": float(a.mean()),
            "accuracy_std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "macro_f1_mean": float(a.mean()) - 0.01,
            "n_seeds": len(a),
            "per_seed": {str(i): v for i, v in enumerate(accs)},
        }

    return {
        "knn": {
            m: {"k1_accuracy": v, "best_k": 3, "best_accuracy": v + 0.05} for m, v in knn.items()
        },
        "transformer": model(tr),
        "distilled": model(di),
        "inference": inf,
    }


OURS_UTD = _summary(
    {"procrustes": 0.4123, "euclidean": 0.3},
    [0.60, 0.62, 0.65],
    [0.66, 0.70, 0.71],
    {
        "student_ms_per_sample": 0.4938,
        "student_ms_per_sample_batched": 0.2294,
        "knn_ms_per_sample": 5.7787,
        "knn_metric": "procrustes",
        "speedup": 5.7787 / 0.4938,
        "speedup_batched": 5.7787 / 0.2294,
    },
)
PAPER_UTD = _summary(
    {"paper": 0.3199, "procrustes": 0.41},
    [0.55, 0.58],
    [0.63, 0.65],
    {
        "student_ms_per_sample": 0.3,
        "student_ms_per_sample_batched": 0.1,
        "knn_ms_per_sample": 900.0,
        "knn_metric": "procrustes",
        "speedup": 3000.0,
        "speedup_batched": 9000.0,
    },
)
OURS_XS = _summary({"procrustes": 0.5}, [0.7], [0.8], {})  # one seed, no timing
# a dataset name full of LaTeX specials
ODD = "my_data&co #1 100%"


def _pct(x: float, digits: int = 4) -> str:
    return f"{100 * x:.{digits}f}"


@pytest.fixture
def written(tmp_path: Path) -> dict:
    summaries = {
        ("utd_mhad", "paper"): OURS_UTD,
        ("utd_mhad", "cross_subject"): OURS_XS,
        (ODD, "paper"): OURS_XS,
    }
    out = tmp_path / "tables"
    paths = write_tables(out, summaries, as_published={("utd_mhad", "paper"): PAPER_UTD})
    return {"out": out, "paths": paths, "summaries": summaries}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _tex_body(path: Path) -> list[list[str]]:
    """The body rows of a tabular (between the last \\midrule block and \\bottomrule)."""
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Dataset &"))
    end = lines.index(r"\bottomrule")
    rows = [line for line in lines[start + 1 : end] if line != r"\midrule"]
    for line in rows:
        assert line.endswith(r" \\")
    return [line[: -len(r" \\")].split(" & ") for line in rows]


def test_writes_the_four_files_atomically_and_deterministically(written, tmp_path):
    assert [p.name for p in written["paths"]] == FILES
    assert sorted(p.name for p in written["out"].iterdir()) == sorted(FILES)  # no temp files
    again = write_tables(
        tmp_path / "again", written["summaries"], {("utd_mhad", "paper"): PAPER_UTD}
    )
    for first, second in zip(written["paths"], again, strict=True):
        assert first.read_bytes() == second.read_bytes()


def test_accuracy_csv_cells(written):
    rows = _csv(written["out"] / "accuracy.csv")
    assert [(r["dataset"], r["protocol"]) for r in rows] == [
        ("utd_mhad", "paper"),
        ("utd_mhad", "cross_subject"),
        (ODD, "paper"),
    ]
    utd, xs, odd = rows
    # published values of UTD-MHAD under the original protocol, as printed
    assert (utd["published_knn_pct"], utd["published_transformer_pct"]) == ("32.0", "57.45")
    assert utd["published_distilled_pct"] == "64.91"
    # as published: KNN on the original ("paper") metric, models mean and std over seeds
    assert utd["as_published_knn_pct"] == _pct(0.3199)
    assert utd["as_published_knn_metric"] == "paper"
    assert utd["as_published_transformer_pct"] == _pct(np.mean([0.55, 0.58]))
    assert utd["as_published_transformer_std_pct"] == _pct(np.std([0.55, 0.58], ddof=1))
    assert utd["as_published_transformer_n_seeds"] == "2"
    assert utd["as_published_distilled_pct"] == _pct(0.64)
    # corrected: the KNN metric timed for inference; 3 seeds
    assert utd["corrected_knn_pct"] == _pct(0.4123)
    assert utd["corrected_knn_metric"] == "procrustes"
    assert utd["corrected_transformer_pct"] == _pct(np.mean([0.60, 0.62, 0.65]))
    assert utd["corrected_transformer_std_pct"] == _pct(np.std([0.60, 0.62, 0.65], ddof=1))
    assert utd["corrected_distilled_pct"] == _pct(np.mean([0.66, 0.70, 0.71]))
    assert utd["corrected_distilled_std_pct"] == _pct(np.std([0.66, 0.70, 0.71], ddof=1))
    assert utd["corrected_distilled_n_seeds"] == "3"
    # another protocol has no published numbers; no as-published run gives n/a
    for row in (xs, odd):
        assert {v for k, v in row.items() if k.startswith(("published", "as_published"))} == {"n/a"}
        assert row["corrected_knn_pct"] == _pct(0.5)
        assert row["corrected_distilled_pct"] == _pct(0.8)
        assert row["corrected_distilled_std_pct"] == _pct(0.0)
        assert row["corrected_distilled_n_seeds"] == "1"


def test_accuracy_tex_cells(written):
    body = _tex_body(written["out"] / "accuracy.tex")
    pm = r" $\pm$ "
    assert body[0] == [
        "UTD-MHAD",
        "paper",
        "32.0",
        "57.45",
        "64.91",
        _pct(0.3199, 2),
        _pct(np.mean([0.55, 0.58]), 2) + pm + _pct(np.std([0.55, 0.58], ddof=1), 2),
        _pct(0.64, 2) + pm + _pct(np.std([0.63, 0.65], ddof=1), 2),
        _pct(0.4123, 2),
        _pct(np.mean([0.60, 0.62, 0.65]), 2) + pm + _pct(np.std([0.60, 0.62, 0.65], ddof=1), 2),
        _pct(np.mean([0.66, 0.70, 0.71]), 2) + pm + _pct(np.std([0.66, 0.70, 0.71], ddof=1), 2),
    ]
    # the dataset name only on its first row; one seed: no std
    na = ["n/a"] * 6
    assert body[1] == ["", r"cross\_subject", *na, "50.00", "70.00", "80.00"]
    assert body[2] == [r"my\_data\&co \#1 100\%", "paper", *na, "50.00", "70.00", "80.00"]


def test_inference_csv_and_tex_cells(written):
    utd, xs, _ = _csv(written["out"] / "inference.csv")
    assert utd["published_student_ms"] == "0.2-0.8 (GPU)"
    assert utd["as_published_student_batch1_ms"] == "0.3000"
    assert utd["as_published_knn_ms"] == "900.0000"
    assert utd["as_published_speedup_x"] == "3000.00"
    assert utd["as_published_speedup_batched_x"] == "9000.00"
    assert utd["corrected_student_batch1_ms"] == "0.4938"
    assert utd["corrected_student_batched_ms"] == "0.2294"
    assert utd["corrected_knn_ms"] == "5.7787"
    assert utd["corrected_speedup_x"] == f"{5.7787 / 0.4938:.2f}"
    assert utd["corrected_speedup_batched_x"] == f"{5.7787 / 0.2294:.2f}"
    assert set(xs.values()) - {"utd_mhad", "cross_subject"} == {"n/a"}
    body = _tex_body(written["out"] / "inference.tex")
    assert body[0] == [
        "UTD-MHAD",
        "paper",
        "0.2--0.8 (GPU)",
        "0.30",
        "0.10",
        "900.00",
        "3000.0",
        "9000.0",
        "0.49",
        "0.23",
        "5.78",
        f"{5.7787 / 0.4938:.1f}",
        f"{5.7787 / 0.2294:.1f}",
    ]
    assert body[1] == ["", r"cross\_subject", *["n/a"] * 11]


@pytest.mark.parametrize("name", ["accuracy.tex", "inference.tex"])
def test_tex_is_a_complete_booktabs_tabular(written, name):
    text = (written["out"] / name).read_text()
    code = [line for line in text.splitlines() if not line.startswith("%")]
    assert code[0].startswith(r"\begin{tabular}{") and code[1] == r"\toprule"
    assert code[-2:] == [r"\bottomrule", r"\end{tabular}"]
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    assert text.index(r"\toprule") < text.index(r"\midrule") < text.index(r"\bottomrule")
    stripped = re.sub(r"\\[{}%&#_$]", "", "\n".join(code))
    depth = 0
    for ch in stripped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    # no unescaped specials outside commands and math
    for line in code[4:-2]:
        assert not re.search(r"(?<!\\)[%#_&]", line.replace(" & ", " "))
    # every row has as many cells as the column spec
    n_cols = len(re.match(r"\\begin\{tabular\}\{([a-z]+)\}", code[0])[1])
    for line in code:
        if line.endswith(r"\\") and r"\multicolumn" not in line:
            assert line.count(" & ") == n_cols - 1, line
    groups = re.findall(r"\\multicolumn\{(\d+)\}\{c\}\{([^}]*)\}", text)
    assert [g[1] for g in groups] == ["Published", "As published (our run)", "Corrected (ours)"]
    assert 2 + sum(int(g[0]) for g in groups) == n_cols


def test_rows_as_table_rows_summary_paths_and_published_override(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(OURS_XS))
    rows = [
        TableRow("SIGNUM", "paper", corrected=path),
        TableRow("utd_mhad", "paper", corrected=OURS_XS, published=None),
        TableRow("x", "p", corrected=OURS_XS, published={"knn": 12.5}),
    ]
    write_tables(tmp_path / "t", rows)
    signum, utd, x = _csv(tmp_path / "t" / "accuracy.csv")
    assert signum["published_knn_pct"] == "n/a"  # not printed for SIGNUM
    assert (signum["published_transformer_pct"], signum["published_distilled_pct"]) == (
        "86.90",
        "90.16",
    )
    assert signum["corrected_transformer_pct"] == _pct(0.7)
    assert utd["published_transformer_pct"] == "n/a"
    assert x["published_knn_pct"] == "12.5"
    with pytest.raises(InputError, match="not a readable summary"):
        write_tables(tmp_path / "u", [TableRow("d", "p", corrected=tmp_path / "missing.json")])
    with pytest.raises(ValueError, match="no rows"):
        write_tables(tmp_path / "u", [])
    assert not (tmp_path / "u").exists()


def test_latex_escape():
    assert latex_escape("a_b & c #1 50% $x$ {y} ~^\\") == (
        r"a\_b \& c \#1 50\% \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )


def test_read_benchmarks_sums_and_maxima(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\n"
    files = {
        "train/a/seed0.tsv": "2.5\t0:00:02\t100.5\t1\n",
        "train/a/seed1.tsv": "3.5\t0:00:03\t120.4\t1\n4.0\t0:00:04\t90.0\t1\n",
        "knn/a.tsv": "0.75\t0:00:00\tNA\t1\n",
    }
    for rel, rows in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(header + rows)
    table = read_benchmarks(tmp_path)
    assert table["rule"].tolist() == ["knn", "train"]
    assert table["jobs"].tolist() == [1, 3]
    assert table["wall_s_sum"].tolist() == [0.75, 10.0]
    assert table["wall_s_max"].tolist() == [0.75, 4.0]
    assert np.isnan(table["max_rss_mb"][0]) and table["max_rss_mb"][1] == 120.4
    assert read_benchmarks(tmp_path / "none").empty
    (tmp_path / "bad" / "x.tsv").parent.mkdir()
    (tmp_path / "bad" / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="no 's' column"):
        read_benchmarks(tmp_path)


def test_other_model_families_get_their_own_corrected_columns(tmp_path):
    """Label smoothing, metric distillation, NNGK: columns in "corrected" only."""
    five = _summary({"procrustes": 0.5}, [0.60, 0.62], [0.70, 0.72], {})
    five["label_smoothing"] = {**five["transformer"], "accuracy_mean": 0.65, "n_seeds": 1}
    five["metric"] = {**five["distilled"], "accuracy_mean": 0.75}
    five["nngk"] = {**five["transformer"], "accuracy_mean": 0.55}
    five["inference"] = {
        "student_ms_per_sample": 0.5,
        "models": {
            "distilled": {"ms_per_sample": 0.5, "ms_per_sample_batched": 0.05},
            "nngk": {"ms_per_sample": 0.8, "ms_per_sample_batched": 0.08},
        },
    }
    rows = {("utd_mhad", "paper"): five, ("utd_mhad", "cross_subject"): OURS_XS}
    write_tables(tmp_path, rows, as_published={("utd_mhad", "paper"): PAPER_UTD})
    utd, xs = _csv(tmp_path / "accuracy.csv")
    assert list(utd) == list(xs)  # one header for every row
    assert utd["corrected_label_smoothing_pct"] == _pct(0.65)
    assert utd["corrected_label_smoothing_n_seeds"] == "1"
    assert utd["corrected_metric_pct"] == _pct(0.75)
    assert utd["corrected_metric_std_pct"] == _pct(np.std([0.70, 0.72], ddof=1))
    assert utd["corrected_nngk_pct"] == _pct(0.55)
    assert xs["corrected_nngk_pct"] == xs["corrected_metric_n_seeds"] == "n/a"
    assert not any(k.startswith(("as_published_nngk", "published_nngk")) for k in utd)
    # columns: the corrected group in display order after KNN, transformer, distilled
    corrected = [k for k in utd if k.startswith("corrected_") and k.endswith("_pct")]
    corrected = [k for k in corrected if not k.endswith("_std_pct")]
    assert corrected == [
        f"corrected_{m}_pct"
        for m in ("knn", "transformer", "distilled", "label_smoothing", "metric", "nngk")
    ]
    text = (tmp_path / "accuracy.tex").read_text()
    assert r"\multicolumn{6}{c}{Corrected (ours)}" in text
    assert "Label smoothing & Metric distillation & NNGK head" in text
    body = _tex_body(tmp_path / "accuracy.tex")
    pm = r" $\pm$ " + _pct(np.std([0.70, 0.72], ddof=1), 2)  # copied stds, two seeds
    assert body[0][-3:] == ["65.00", _pct(0.75, 2) + pm, "55.00" + pm]
    assert body[1][-3:] == ["n/a"] * 3
    assert all(len(row) == 2 + 3 + 3 + 6 for row in body)
    inf, inf_xs = _csv(tmp_path / "inference.csv")
    assert (inf["corrected_distilled_batch1_ms"], inf["corrected_nngk_batched_ms"]) == (
        "0.5000",
        "0.0800",
    )
    assert inf_xs["corrected_nngk_batch1_ms"] == "n/a"
    assert "nngk" not in (tmp_path / "inference.tex").read_text()  # the student's times only
