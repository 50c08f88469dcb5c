"""Snakemake itself on a tiny config: lint, format, schema validation, a real run, the report."""

from __future__ import annotations

import copy
import html
import json
import re
import zipfile
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml

from geokd.data.splits import read_split
from geokd.data.store import load_sequences
from geokd.distances.shards import load_matrix, plan_blocks
from geokd.report.summary import read_summary
from tests.helpers.browser import chromium, inspect_page
from tests.helpers.processes import run
from tests.helpers.report import (
    RUN_FACTS_TITLES,
    SECTION_TITLES,
    assert_self_contained,
    assert_tables_match_summary,
)
from tests.helpers.workflow import BIN, ROOT, TINY, make_workdir, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished_run(tiny_run):
    """The tiny run (tests/conftest.py: built once per test run, read-only)."""
    return tiny_run


def test_the_run_writes_stores_splits_logs_benchmarks_and_report(finished_run):
    work = finished_run
    seqs, meta = load_sequences(work / "data/interim/tiny/sequences.parquet")
    assert len(seqs) == 3 * 4 * 2 and meta["label"].nunique() == 3
    paper = read_split(work / "results/tiny/paper/split.tsv")
    assert paper.groupby("split")["subject"].apply(set).to_dict() == {
        "train": {1, 2},
        "test": {3, 4},
    }
    cross = read_split(work / "results/tiny/cross_subject/split.tsv")
    assert set(cross["split"]) == {"train", "val", "test"}
    html = (work / "results/report.html").read_text()
    assert "tiny" in html and "data:image/png;base64," in html
    summary = read_summary(work / "results/tiny/cross_subject/summary.json")  # + timings.json
    assert set(summary) >= {"knn", "teacher", "transformer", "distilled", "inference", "provenance"}
    assert sorted(summary["knn"]["procrustes"]["accuracy_per_k"], key=int) == list("12345")
    assert set(summary["teacher"]) == {"softmax", "nngk"}
    for model in ("transformer", "distilled"):
        assert sorted(summary[model]["per_seed"]) == ["0", "1"]
        assert 0 <= summary[model]["accuracy_mean"] <= 1
    assert summary["inference"]["speedup"] > 0
    assert len(summary["provenance"]["data_sha256"]) == 64
    for rule in (
        "ingest_synthetic",
        "split",
        "distance_block",
        "distance_matrix",
        "soft_labels",
        "knn",
        "knn_latency",
        "train",
        "summary",
        "report_html",
    ):
        assert any((work / "logs" / rule).rglob("*.log")), rule
        assert any((work / "benchmarks" / rule).rglob("*.tsv")), rule


def test_matrices_come_from_upper_triangle_blocks(finished_run):
    train = read_split(finished_run / "results/tiny/paper/split.tsv").query("split == 'train'")
    matrix, side = load_matrix(
        finished_run / "results/tiny/paper/distances/procrustes/train-train.npy"
    )
    assert side["row_ids"] == train["sequence_id"].tolist() and matrix.shape == (12, 12)
    assert np.array_equal(matrix, matrix.T)
    plan = [f"{b[0]}_{b[1]}" for b in plan_blocks(12, 12, 5, symmetric=True)]
    logs = finished_run / "logs/distance_block/tiny/paper/procrustes/train-train"
    assert sorted(p.stem for p in logs.glob("*.log")) == sorted(plan)  # 6 of 9 blocks
    # blocks are temporary: removed once the matrix is assembled
    assert not list((finished_run / "results/tiny/paper/distances/procrustes").rglob("block_*"))


def test_nothing_to_do_after_a_finished_run(finished_run):
    done = snakemake(finished_run, "-n", "results/report.html")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_the_workflow_report_matches_its_summaries(finished_run):
    """Every section is there and its tables agree with the summary files."""
    text = (finished_run / "results/report.html").read_text(encoding="utf-8")
    parsed = assert_self_contained(text)
    protocols = list(TINY["datasets"]["tiny"]["protocols"])
    assert len(parsed.imgs) >= 3 + len(protocols) * 7
    for j, protocol in enumerate(protocols):
        for key, title in SECTION_TITLES.items():
            assert f'<h5 id="ds0-r{j}-{key}">{html.escape(title)}</h5>' in text
        results = finished_run / "results/tiny" / protocol
        summary = read_summary(results / "summary.json")  # + timings
        assert_tables_match_summary(text, summary)
        assert f"<code>{summary['provenance']['data_sha256']}</code> (matches the store)" in text
    for title in RUN_FACTS_TITLES:
        assert f">{html.escape(title)}</h" in text
    assert "<td>train</td>" in text and "<td>distance_block</td>" in text
    figures = finished_run / "results/figures"
    stages = {p.name for p in figures.iterdir() if not p.name.startswith(".")}
    assert stages == {"data", "distances", "teacher", "knn", "students", "budgets"}


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_report_opens_in_headless_chromium_offline(finished_run, tmp_path):
    """Every image loads, the page fetches nothing, and the screenshot shows a page."""
    page = inspect_page(finished_run / "results/report.html", tmp_path)
    html = (finished_run / "results/report.html").read_text()
    assert page.images == html.count("<img") >= 10
    assert page.broken == []
    assert page.resources == [] and page.page_requests == []
    shot = matplotlib.image.imread(page.screenshot)
    assert shot.shape[:2] == (2400, 1280)
    assert shot[..., :3].std() > 0.05  # not a blank page


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_the_browser_check_sees_broken_images_and_requests(finished_run, tmp_path):
    """The check above can fail: a broken image and an external one are both reported."""
    html = (finished_run / "results/report.html").read_text()
    bad = tmp_path / "bad.html"
    extra = (
        '<img alt="broken" src="data:image/png;base64,AAAA">'
        '<img alt="remote" src="http://geokd.invalid/x.png"></body>'
    )
    bad.write_text(html.replace("</body>", extra, 1))
    page = inspect_page(bad, tmp_path / "probe")
    assert set(page.broken) == {"broken", "remote"}
    assert page.page_requests == ["http://geokd.invalid/x.png"]


def test_native_snakemake_report(finished_run, tmp_path):
    report = tmp_path / "report.zip"  # not in the shared run, which other tests copy
    snakemake(finished_run, "--report", str(report), "results/report.html")
    with zipfile.ZipFile(report) as zf:
        names = zf.namelist()
        text = "".join(
            zf.read(n).decode("utf-8", "replace") for n in names if n.endswith((".html", ".js"))
        )
    pngs = {Path(n).name for n in names if n.endswith(".png")}
    for stem in ("tiny_lengths", "tiny_paper_distances_procrustes", "tiny_paper_training_curves"):
        assert f"{stem}.png" in pngs
    for caption in ("block diagonal", "Teacher soft labels", "mean over seeds"):  # figure.rst
        assert caption in text
    assert "accuracy.csv" in text and "report.html" in text


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda c: c.update(colour="blue"), "colour"),
        (lambda c: c["datasets"]["tiny"]["synthetic"].update(n_classes="many"), "many"),
        (lambda c: c["datasets"]["tiny"]["synthetic"].update(difficulty=3), "difficulty|3"),
        (lambda c: c["datasets"]["tiny"]["protocols"]["paper"].pop("test"), "test"),
        (lambda c: c["datasets"]["tiny"].update(source="kinect"), "kinect"),
    ],
)
def test_a_bad_config_fails_before_any_job_naming_the_key(tmp_path, patch, message):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    patch(config)
    work = make_workdir(tmp_path, config)
    done = snakemake(work, "results/report.html", check=False)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "ValidationError" in out or "validation" in out.lower()
    assert re.search(message, out)
    assert not (work / "data").exists() and not (work / "results").exists()


def test_lint_and_format_are_clean(tmp_path):
    work = make_workdir(tmp_path, TINY)
    done = snakemake(work, "--lint", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations" in done.stdout + done.stderr or not (done.stdout + done.stderr).strip()
    fmt = run([BIN / "snakefmt", "--check", ROOT / "workflow"], timeout=300)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_missing_raw_folder_is_named(tmp_path):
    config = {
        "datasets": {
            "real": {
                "source": "utd_mhad",
                "raw_dir": "no/such/folder",
                "protocols": {"paper": {"train": [1], "test": [2]}},
            }
        }
    }
    work = make_workdir(tmp_path, config)
    done = snakemake(work, "results/report.html", check=False)
    assert done.returncode != 0
    assert "no/such/folder" in done.stdout + done.stderr


def test_default_config_is_valid_and_plans_the_report():
    done = run(
        [BIN / "snakemake", "-n", "--cores", "1", "results/report.html"], cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_a_documented_device_setting_plans_the_workflow(tmp_path, device):
    """training.train.device (docs/cluster.md, the SLURM profile) passes the schema and the
    settings at start-up; the train jobs' settings files carry it."""
    config = copy.deepcopy(TINY)
    config["training"]["train"]["device"] = device
    work = make_workdir(tmp_path, config)
    out = snakemake(work, "-n", "-p", "results/report.html").stdout
    files = set(re.findall(r"geokd train .*--settings (\S+)", out))
    assert files
    for path in files:
        assert json.loads((work / path).read_text())["train"]["device"] == device


@pytest.mark.parametrize("flags", [["--replace-workflow-config"], []])
def test_real_data_config_replaces_the_default(utd_dir, tmp_path, flags):
    """config/utd_mhad.yaml plans the real datasets only, with --replace-workflow-config and
    without it (as in the jobs Snakemake submits to a cluster, which do not get that flag)."""
    config = yaml.safe_load((ROOT / "config" / "utd_mhad.yaml").read_text())
    for entry in config["datasets"].values():
        entry["raw_dir"] = str(utd_dir)
    work = make_workdir(tmp_path, TINY)  # a default config.yaml that must not be merged in
    (work / "config" / "utd.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(
        work,
        "-n",
        f"--configfile={work / 'config' / 'utd.yaml'}",
        *flags,
        "results/report.html",
    )
    out = done.stdout + done.stderr
    jobs = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+wildcards: (.*)$", out, flags=re.M)
    assert ("ingest_utd_mhad", "dataset=utd_mhad") in jobs
    assert ("ingest_utd_mhad", "dataset=utd_mhad_as_published") in jobs
    assert "synthetic" not in out and "dataset=tiny" not in out
    assert "--as-published utd_mhad/paper=results/utd_mhad_as_published/paper/summary.json" in out
    assert "--as-published-of=utd_mhad_as_published=utd_mhad" in out  # the report's link


def test_an_as_published_dataset_gets_its_own_settings_and_fills_the_tables(tmp_path):
    """datasets.<name>.overrides apply to that dataset only; as_published_of feeds the tables."""
    config = copy.deepcopy(TINY)
    variant = copy.deepcopy(config["datasets"]["tiny"])
    variant["protocols"] = {"paper": variant["protocols"]["paper"]}
    variant["as_published_of"] = "tiny"
    variant["overrides"] = {
        "distances": {"metrics": ["paper"], "block_size": 7},
        "teacher": {"metric": "paper", "methods": ["softmax"], "softmax": {"temperature": 3.0}},
        "knn": {"k_max": 3},
        "training": {"seeds": [5], "models": ["transformer", "distilled"], "train": {"epochs": 1}},
    }
    config["datasets"]["tiny_asp"] = variant
    work = make_workdir(tmp_path, config)
    out = snakemake(work, "-n", "-p", "--forceall", "results/report.html").stdout
    commands = [
        line[line.index("python -m geokd") :]
        for line in out.splitlines()
        if "python -m geokd" in line
    ]
    assert commands and not [c for c in commands if "{" in c]  # no serialised config

    def jobs(sub: str, dataset: str) -> list[str]:
        return [c for c in commands if sub in c and f"results/{dataset}/" in c]

    def settings(command: str) -> dict:
        path = re.search(r"--settings (\S+)", command).group(1)
        return json.loads((work / path).read_text())

    assert len(jobs("distances assemble", "tiny_asp")) == 2  # train-train, test-train
    for dataset, metric, size in (("tiny_asp", "paper", 7), ("tiny", "procrustes", 5)):
        for c in jobs("distances assemble", dataset):
            assert settings(c)["metric"] == metric and settings(c)["block_size"] == size
    asp_teacher = jobs("geokd teacher", "tiny_asp")
    assert len(asp_teacher) == 1 and settings(asp_teacher[0])["temperature"] == 3.0
    assert "distances/paper/train-train.npy" in asp_teacher[0]
    assert all(
        settings(c)["temperature"] != 3.0 for c in jobs("geokd teacher", "tiny") if "softmax" in c
    )
    assert all(settings(c)["k_max"] == 3 for c in jobs("geokd knn ", "tiny_asp"))
    assert all(settings(c)["k_max"] == 5 for c in jobs("geokd knn ", "tiny"))
    asp_runs = jobs("geokd train", "tiny_asp")
    assert len(asp_runs) == 2
    assert all("--seed 5" in c and settings(c)["train"]["epochs"] == 1 for c in asp_runs)
    (tables,) = [c for c in commands if "geokd tables" in c]
    assert "--as-published tiny/paper=results/tiny_asp/paper/summary.json" in tables
    assert "--summary tiny_asp" not in tables and "--summary tiny/paper=" in tables
