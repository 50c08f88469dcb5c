"""Determinism: the same config and seed give the same bytes, across runs and core counts.

Everything under data/ and results/ but the measured times (``timings.json``,
``knn/latency_*.json``) is compared byte for byte: store, split, distance matrices and their
sidecars, soft labels, checkpoints, histories, metrics and the summary.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from geokd.distances._cdist import cdist
from tests.helpers.faults import (
    FAULTS,
    PROTOCOL,
    TARGETS,
    assert_same_results,
    make_workdir,
    snakemake,
)


@pytest.mark.faults
@pytest.mark.workflow
def test_one_core_and_two_cores_give_the_same_bytes(tmp_path, reference_run):
    work = make_workdir(tmp_path, FAULTS)
    snakemake(work, *TARGETS, cores=1)
    assert_same_results(work, reference_run["files"])
    # what must be identical is there, and the measured times went elsewhere
    files = reference_run["files"]
    for name in (
        "distances/procrustes/train-train.npy",
        "teacher/softmax.parquet",
        "models/distilled/seed0/model.pt",
        "models/distilled/seed0/metrics.json",
        "summary.json",
    ):
        assert str(PROTOCOL / name) in files
    summary = json.loads(files[str(PROTOCOL / "summary.json")])
    assert "inference" not in summary
    timings = json.loads((reference_run["work"] / PROTOCOL / "timings.json").read_text())
    assert timings["inference"]["speedup"] > 0 and timings["train_seconds"]["distilled"]["0"] > 0
    metrics = json.loads(files[str(PROTOCOL / "models/distilled/seed0/metrics.json")])
    assert not {"train_seconds", "latency_ms_per_sample"} & set(metrics)
    history = json.loads(files[str(PROTOCOL / "models/distilled/seed0/history.json")])
    assert "seconds" not in history and len(history["loss"]) == 3


def test_distances_do_not_depend_on_threads_or_blocking():
    rng = np.random.default_rng(5)
    seqs = [rng.normal(size=(int(rng.integers(1, 30)), 20, 3)) for _ in range(14)]
    one = cdist(seqs, n_jobs=1)
    assert cdist(seqs, n_jobs=2).tobytes() == one.tobytes()
    # the blocks of a symmetric matrix (upper triangle, mirrored) are its entries, bit for bit
    assert cdist(seqs[:6], seqs[6:], n_jobs=2).tobytes() == one[:6, 6:].tobytes()
    assert cdist(seqs[6:], n_jobs=2).tobytes() == one[6:, 6:].tobytes()
