"""Snakemake itself on a tiny config: lint, format, schema validation, a real run, the report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from geokd.shards import load_matrix, plan_blocks
from geokd.splits import read_split
from geokd.store import load_sequences

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.workflow

TINY = {
    "datasets": {
        "tiny": {
            "source": "synthetic",
            "synthetic": {
                "n_classes": 3,
                "n_subjects": 4,
                "n_trials": 2,
                "min_frames": 12,
                "max_frames": 20,
                "seed": 7,
            },
            "protocols": {
                "paper": {"train": [1, 2], "test": [3, 4]},
                "cross_subject": {"train": [1, 3], "val": [2], "test": [4]},
            },
        }
    },
    "distances": {"block_size": 5},
    "knn": {"k_max": 5, "latency_queries": 2},
    "training": {
        "seeds": [0, 1],
        "train": {"epochs": 2, "batch_size": 8},
        "student": {"d_model": 16, "n_heads": 2, "n_layers": 1, "ff_dim": 32},
    },
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(ROOT / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def make_workdir(tmp_path: Path, config: dict) -> Path:
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    work = make_workdir(tmp_path_factory.mktemp("wf"), TINY)
    snakemake(work, "results/report.html")
    return work


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
    summary = json.loads((work / "results/tiny/cross_subject/summary.json").read_text())
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
        "train_transformer",
        "train_distilled",
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


def test_native_snakemake_report(finished_run):
    snakemake(finished_run, "--report", "report.zip", "results/report.html")
    assert (finished_run / "report.zip").stat().st_size > 1000


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
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", str(ROOT / "workflow")], capture_output=True, text=True
    )
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
    done = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", "results/report.html"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_real_data_config_replaces_the_default(utd_dir):
    done = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-n",
            "--cores",
            "2",
            "--configfile",
            "config/utd_mhad.yaml",
            "--replace-workflow-config",
            "results/report.html",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "ingest_utd_mhad" in out and "synthetic" not in out
