"""Predict and export: a trained student applied to new recordings, and its exported graphs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geokd.data.signum import landmark_subset
from geokd.data.splits import write_split
from geokd.data.store import StoreInfo, write_store
from geokd.data.utd_mhad import ingest
from geokd.errors import InputError
from geokd.models.config import StudentConfig, TrainConfig
from geokd.models.export import FORMATS, export_student, run_exported
from geokd.models.predict import load_student, run_predict
from geokd.models.runs import run_training

ROOT = Path(__file__).resolve().parents[1]
STUDENT = dict(
    max_frames=24,
    d_model=16,
    n_heads=2,
    n_layers=1,
    ff_dim=32,
    frame="body_sequence",
    resampling="linear",
    streams=("joints", "bones", "velocity"),
)
TRAIN = dict(epochs=3, batch_size=32, lr=3e-3, warmup_epochs=1, progress=False, num_threads=1)
TEST_SUBJECTS = (6, 7, 8)


@pytest.fixture(scope="module")
def real_run(utd_dir, tmp_path_factory):
    """A small student trained on real UTD-MHAD (paper protocol) as the workflow trains it."""
    work = tmp_path_factory.mktemp("predict")
    store, split = work / "sequences.parquet", work / "split.tsv"
    ingest(utd_dir, store)
    write_split(store, split, {"train": [1, 2, 3, 4, 5], "test": list(TEST_SUBJECTS)})
    out = work / "models/transformer/seed0"
    metrics = run_training(
        store, split, None, out, "transformer", 0, TrainConfig(**TRAIN), StudentConfig(**STUDENT)
    )
    test_files = work / "test_files"
    test_files.mkdir()
    for path in sorted(utd_dir.glob("*.mat")):
        if any(f"_s{s}_" in path.name for s in TEST_SUBJECTS):
            (test_files / path.name).symlink_to(path)
    return {
        "work": work,
        "store": store,
        "model": out / "model.pt",
        "metrics": metrics,
        "test_files": test_files,
    }


def test_predicting_the_real_test_files_reproduces_the_recorded_accuracy(real_run, tmp_path):
    out = tmp_path / "predictions.csv"
    result = run_predict(real_run["model"], [real_run["test_files"]], out)
    recorded = real_run["metrics"]["test"]["accuracy"]
    assert (
        result["n_labelled"] == result["n_sequences"] == len(list(real_run["test_files"].iterdir()))
    )
    assert result["accuracy"] == recorded  # exactly: the same preparation and evaluation code
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:5] == [
        "source",
        "sequence_id",
        "predicted_label",
        "predicted_name",
        "probability",
    ]
    assert [c for c in rows[0] if c.startswith("top")] == [
        f"top{r}_{f}" for r in range(1, 6) for f in ("label", "name", "probability")
    ]
    names = real_run["metrics"]["class_names"]
    for row in rows:
        assert row["predicted_name"] == names[int(row["predicted_label"])]
        assert row["top1_label"] == row["predicted_label"]
        probs = [float(row[f"top{r}_probability"]) for r in range(1, 6)]
        assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
    by_id = {r["sequence_id"]: int(r["predicted_label"]) for r in rows}
    truth = {r["sequence_id"]: int(r["sequence_id"][1:3]) - 1 for r in rows}
    hits = sum(by_id[s] == truth[s] for s in by_id)
    assert hits / len(rows) == recorded


def test_python_api_returns_probabilities_of_the_store_sequences(real_run):
    from geokd.data.store import load_sequences

    student = load_student(real_run["model"])
    sequences, _ = load_sequences(real_run["store"])
    proba = student.predict(sequences[:9])
    assert proba.shape == (9, 27) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    # a store as INPUT gives the same probabilities, rows in store order
    again = student.predict(sequences[:9], batch_size=4)
    np.testing.assert_allclose(again, proba, atol=1e-6)
    assert (again.argmax(1) == proba.argmax(1)).all()


def test_another_topology_is_refused_naming_the_input(real_run, tmp_path):
    rng = np.random.default_rng(0)
    meta = pd.DataFrame(
        {
            "sequence_id": ["x0", "x1"],
            "label": [0, 1],
            "label_name": ["a", "b"],
            "subject": [1, 1],
            "trial": [1, 1],
            "source": ["x0", "x1"],
            "sha256": ["0" * 64, "1" * 64],
        }
    )
    _, hand_names, hand_bones = landmark_subset("left_hand")  # 21 landmarks
    hands = tmp_path / "hands.parquet"
    write_store(
        hands,
        [rng.normal(size=(9, 21, 3)) for _ in range(2)],
        meta,
        StoreInfo("hands", hand_names, "m", hand_bones),
    )
    with pytest.raises(InputError, match=r"hands\.parquet: sequence 'x0' has 21 landmarks"):
        run_predict(real_run["model"], [hands], tmp_path / "p.csv")
    # 20 landmarks with other names: the same count, another skeleton
    other = tmp_path / "other.parquet"
    write_store(
        other,
        [rng.normal(size=(9, 20, 3)) for _ in range(2)],
        meta,
        StoreInfo("other", [f"p{i}" for i in range(20)], "m"),
    )
    with pytest.raises(InputError, match=r"other\.parquet: landmark 0 is 'p0'.*another skeleton"):
        run_predict(real_run["model"], [other], tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_student_gives_the_same_logits_on_real_sequences(real_run, tmp_path, fmt):
    from geokd.data.store import load_sequences

    out = tmp_path / f"student.{fmt}"
    meta = export_student(real_run["model"], fmt, out)
    side = json.loads(Path(f"{out}.json").read_text())
    assert side["sha256"] and side["class_names"] == real_run["metrics"]["class_names"]
    assert side["inputs"]["x"] == ["batch", 24, 60] and meta["export_format"] == fmt
    student = load_student(real_run["model"])
    sequences, _ = load_sequences(real_run["store"])
    X, L = student.prepare(sequences[::20])  # 44 real sequences, all lengths
    with torch.inference_mode():
        reference = student.model(X, L).numpy()
    for b in (1, len(X)):
        got = run_exported(out, fmt, X[:b], L[:b])
        np.testing.assert_allclose(got, reference[:b], atol=1e-5, rtol=0)


def test_nngk_head_exports_too(real_run, tmp_path):
    from geokd.data.store import load_sequences

    out = tmp_path / "nngk"
    run_training(
        real_run["store"],
        real_run["work"] / "split.tsv",
        None,
        out,
        "nngk",
        0,
        TrainConfig(**{**TRAIN, "epochs": 1}),
        StudentConfig(**STUDENT),
    )
    student = load_student(out / "model.pt")
    sequences, _ = load_sequences(real_run["store"])
    X, L = student.prepare(sequences[::40])
    with torch.inference_mode():
        reference = student.model(X, L).numpy()
    for fmt in FORMATS:
        export_student(out / "model.pt", fmt, tmp_path / f"n.{fmt}")
        got = run_exported(tmp_path / f"n.{fmt}", fmt, X, L)
        np.testing.assert_allclose(got, reference, atol=1e-5, rtol=0)


def test_the_command_line_predicts_exports_and_names_a_bad_input(real_run, tmp_path, capsys):
    from geokd.cli import main

    out = tmp_path / "p.csv"
    assert main(["predict", str(real_run["model"]), str(real_run["store"]), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + 861
    err = capsys.readouterr().err
    assert "861 sequence(s) predicted; accuracy" in err
    assert (
        main(["export", str(real_run["model"]), str(tmp_path / "m.onnx"), "--format", "onnx"]) == 0
    )
    assert (tmp_path / "m.onnx.json").is_file()
    capsys.readouterr()
    missing = tmp_path / "nothing.pt"
    assert main(["predict", str(missing), str(real_run["store"]), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"geokd: error: {missing}: missing"]
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(real_run["model"].read_bytes()[:-7])
    Path(f"{damaged}.json").write_bytes(Path(f"{real_run['model']}.json").read_bytes())
    assert main(["export", str(damaged), str(tmp_path / "d.onnx"), "--format", "onnx"]) == 2
    assert "truncated or corrupted" in capsys.readouterr().err
    assert not (tmp_path / "d.onnx").exists()
