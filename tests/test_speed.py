"""Inference speed timed alone (geokd.report.speed, `geokd summarize --speed`): the student in
PyTorch eager mode and exported to ONNX, and exact 1-NN, one thread each, into timings.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geokd.checksum import sidecar_path
from geokd.cli import main
from geokd.data.splits import write_split
from geokd.data.synthetic import SyntheticConfig, write_synthetic
from geokd.errors import InputError
from geokd.models.config import StudentConfig, TrainConfig
from geokd.models.export import onnx_latency_ms_per_sample
from geokd.models.knn import knn_latency
from geokd.models.runs import run_training
from geokd.report.speed import measure_speed
from geokd.report.summary import read_summary, summarize

pytest.importorskip("onnxruntime")

STUDENT = dict(max_frames=16, d_model=16, n_heads=2, n_layers=1, ff_dim=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small synthetic store, its split, a student trained for one epoch, the 1-NN latency
    file of the workflow's knn_latency step."""
    work = tmp_path_factory.mktemp("speed")
    store, split = work / "sequences.parquet", work / "split.tsv"
    cfg = SyntheticConfig(n_classes=3, n_subjects=4, n_trials=2, min_frames=10, max_frames=16)
    write_synthetic(store, cfg)
    write_split(store, split, {"train": [1, 2], "test": [3, 4]})
    run = work / "models/transformer/seed0"
    train = TrainConfig(epochs=1, batch_size=8, progress=False, num_threads=1)
    run_training(store, split, None, run, "transformer", 0, train, StudentConfig(**STUDENT))
    latency = work / "knn/latency_procrustes.json"
    knn_latency(store, split, latency, metric="procrustes", n_queries=3, n_jobs=1)
    return {"work": work, "store": store, "split": split, "run": run, "latency": latency}


def _summarize(t: dict, out_dir, distances: dict | None = None, **extra) -> dict:
    return summarize(
        out_dir / "summary.json",
        knn=[],
        teachers=[],
        runs=[t["run"] / "metrics.json"],
        latency=[t["latency"]],
        store=t["store"],
        config={"distances": {"window": None, "metric_params": {}, **(distances or {})}},
        dataset="toy",
        protocol="paper",
        run_timings=[t["run"] / "timings.json"],
        timings_out=out_dir / "timings.json",
        **extra,
    )


def test_the_summary_times_the_student_and_1nn_alone_into_the_timings(trained, tmp_path):
    threads = torch.get_num_threads()
    _summarize(trained, tmp_path, speed=trained["split"])
    assert torch.get_num_threads() == threads  # one thread while timing, then as it was
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "inference" not in summary  # measured times stay out of the byte-stable summary
    timings = json.loads((tmp_path / "timings.json").read_text())
    speed = timings["inference"]["speed"]
    assert (speed["model"], speed["seed"], speed["threads"]) == ("transformer", 0, 1)
    assert speed["checkpoint"] == str(trained["run"] / "model.pt")
    assert speed["test_sequences"] == 12  # subjects 3, 4: 3 classes x 2 trials each
    recorded = json.loads(trained["latency"].read_text())
    knn = speed["knn"]
    assert (knn["metric"], knn["n_queries"], knn["n_references"]) == ("procrustes", 3, 12)
    assert "frames" not in knn  # no frame budget
    for runtime in ("eager", "onnx"):
        timed = speed[runtime]
        assert timed["batch_size"] == 12  # the checkpoint's latency batch, at most the test set
        for key in ("ms_per_sample", "ms_per_sample_batched"):
            assert 0 < timed[key] < 1000
        assert timed["speedup"] == knn["ms_per_query"] / timed["ms_per_sample"]
        assert timed["speedup_batched"] == knn["ms_per_query"] / timed["ms_per_sample_batched"]
    assert speed["onnx"]["max_abs_logit_difference"] < 1e-4
    # the training job's latency is kept as it was, beside
    models = timings["inference"]["models"]["transformer"]
    run_timings = json.loads((trained["run"] / "timings.json").read_text())
    assert models["ms_per_sample"] == run_timings["latency_ms_per_sample"]["batch_1"]
    assert timings["inference"]["knn_ms_per_sample"] == recorded["ms_per_query"]
    # read back with the summary
    assert read_summary(tmp_path / "summary.json")["inference"]["speed"] == speed


def test_with_a_frame_budget_the_timed_1nn_queries_resampled_sequences(trained, tmp_path):
    """``distances.frames``: the 1-NN timed beside the student compares sequences as the
    matrices did, resampled to the budget (recorded with its timing)."""
    _summarize(trained, tmp_path, distances={"frames": 6}, speed=trained["split"])
    speed = json.loads((tmp_path / "timings.json").read_text())["inference"]["speed"]
    assert speed["knn"]["frames"] == 6 and speed["knn"]["n_queries"] == 3


def test_without_speed_nothing_is_timed_and_the_summary_is_the_same(trained, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _summarize(trained, tmp_path / "a")
    _summarize(trained, tmp_path / "b", speed=trained["split"])
    timings = json.loads((tmp_path / "a" / "timings.json").read_text())
    assert "speed" not in timings["inference"]
    same = [(tmp_path / d / "summary.json").read_bytes() for d in "ab"]
    assert same[0] == same[1]


def test_bad_inputs_are_errors_naming_them(trained, tmp_path):
    with pytest.raises(InputError, match="--speed"):
        summarize(
            tmp_path / "s.json",
            knn=[],
            teachers=[],
            runs=[trained["run"] / "metrics.json"],
            latency=[],
            store=trained["store"],
            config={},
            dataset="toy",
            protocol="paper",
            run_timings=[trained["run"] / "timings.json"],
            speed=trained["split"],
        )
    damaged = tmp_path / "run"
    damaged.mkdir()
    for name in ("model.pt", "model.pt.json"):
        (damaged / name).write_bytes((trained["run"] / name).read_bytes())
    (damaged / "model.pt").write_bytes((damaged / "model.pt").read_bytes()[:-10])
    with pytest.raises(InputError) as err:
        measure_speed(
            damaged / "model.pt", trained["store"], trained["split"], knn_metric="procrustes",
            n_queries=2,
        )  # fmt: skip
    assert str(damaged / "model.pt") in str(err.value)
    assert sidecar_path(damaged / "model.pt").is_file()


def test_the_cli_takes_speed(trained, tmp_path):
    args = ["summarize", str(tmp_path / "summary.json"), "--dataset", "toy", "--protocol", "p"]
    args += ["--store", str(trained["store"]), "--run", str(trained["run"] / "metrics.json")]
    args += ["--run-timings", str(trained["run"] / "timings.json")]
    args += ["--latency", str(trained["latency"]), "--timings-out", str(tmp_path / "t.json")]
    assert main([*args, "--speed", str(trained["split"])]) == 0
    speed = json.loads((tmp_path / "t.json").read_text())["inference"]["speed"]
    assert speed["onnx"]["ms_per_sample"] > 0
    assert main([*args, "--speed", str(tmp_path / "no_split.tsv")]) == 2


class _Session:
    """Records the batches an ONNX Runtime session would be run on."""

    def __init__(self):
        self.batches = []

    def run(self, outputs, feed):
        self.batches.append((feed["x"][:, 0, 0].tolist(), feed["lengths"].tolist()))


def test_onnx_timing_runs_consecutive_wrapping_batches():
    x = torch.arange(5, dtype=torch.float32)[:, None, None].repeat(1, 4, 3)
    lengths = torch.arange(5) + 1
    session = _Session()
    ms = onnx_latency_ms_per_sample(session, x, lengths, 2, warmup=1, repeats=3)
    assert ms > 0
    assert session.batches == [
        ([0.0, 1.0], [1, 2]),
        ([2.0, 3.0], [3, 4]),
        ([4.0, 0.0], [5, 1]),
        ([1.0, 2.0], [2, 3]),
    ]
    session = _Session()
    onnx_latency_ms_per_sample(session, x, lengths, 100, warmup=0, repeats=2)
    assert [len(b[0]) for b in session.batches] == [5, 5]  # a batch is at most the data
    assert np.isfinite(ms)
