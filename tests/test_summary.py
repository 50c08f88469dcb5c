import json

import numpy as np
import pytest

from geokd.data.splits import write_split
from geokd.data.utd_mhad import ingest
from geokd.distances.shards import MatrixSpec, assemble, compute_block
from geokd.errors import InputError
from geokd.models.knn import knn_latency, run_knn
from geokd.report.summary import summarize


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _run(tmp_path, mode, seed, acc, f1, lat1, lat16):
    return _write(
        tmp_path / f"{mode}{seed}.json",
        {
            "mode": mode,
            "seed": seed,
            "epoch": 10,
            "test": {"accuracy": acc, "macro_f1": f1},
            "latency_ms_per_sample": {"batch_1": lat1, "batch_16": lat16, "device": "cpu"},
        },
    )


def test_summary_gathers_means_stds_and_speedup(tmp_path):
    knn = _write(
        tmp_path / "knn.json",
        {
            "metric": "procrustes",
            "per_k": {
                "1": {"accuracy": 0.5, "macro_f1": 0.4},
                "2": {"accuracy": 0.6, "macro_f1": 0.5},
            },
            "best_k": 2,
            "best_accuracy": 0.6,
        },
    )
    teacher = _write(tmp_path / "t.json", {"method": "softmax", "accuracy": 0.9, "ece": 0.1})
    runs = [
        _run(tmp_path, "transformer", 0, 0.5, 0.4, 1.0, 0.1),
        _run(tmp_path, "transformer", 1, 0.7, 0.6, 1.0, 0.1),
        _run(tmp_path, "distilled", 0, 0.8, 0.7, 2.0, 0.3),
        _run(tmp_path, "distilled", 1, 0.6, 0.5, 4.0, 0.2),
    ]
    latency = _write(tmp_path / "lat.json", {"metric": "procrustes", "ms_per_query": 300.0})
    store = _write(tmp_path / "store.bin", {})
    out = tmp_path / "summary.json"
    s = summarize(
        out,
        knn=[knn],
        teachers=[teacher],
        runs=runs,
        latency=[latency],
        store=store,
        config={"a": 1},
        dataset="d",
        protocol="p",
    )
    assert json.loads(out.read_text()) == s
    assert s["knn"]["procrustes"]["accuracy_per_k"] == {"1": 0.5, "2": 0.6}
    assert s["knn"]["procrustes"]["k1_accuracy"] == 0.5
    assert s["teacher"]["softmax"]["accuracy"] == 0.9
    assert s["transformer"]["accuracy_mean"] == pytest.approx(0.6)
    assert s["transformer"]["accuracy_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s["distilled"]["per_seed"] == {"0": 0.8, "1": 0.6}
    inf = s["inference"]
    assert inf["student_ms_per_sample"] == pytest.approx(3.0)  # distilled runs, batch 1
    assert inf["student_ms_per_sample_batched"] == pytest.approx(0.2)
    assert inf["speedup"] == pytest.approx(100.0)
    assert inf["speedup_batched"] == pytest.approx(inf["knn_ms_per_sample"] / 0.2)
    assert len(s["provenance"]["data_sha256"]) == 64 and s["provenance"]["packages"]["numpy"]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="broken.json: not a readable JSON"):
        summarize(
            out,
            knn=[tmp_path / "broken.json"],
            teachers=[],
            runs=[],
            latency=[],
            store=store,
            config={},
            dataset="d",
            protocol="p",
        )


def test_knn_and_latency_steps_on_a_small_store(fake_utd, tmp_path):
    store = tmp_path / "s.parquet"
    ingest(fake_utd, store)
    split = tmp_path / "split.tsv"
    write_split(store, split, {"train": [1, 2], "test": [3]})
    spec = MatrixSpec("test", "train")
    compute_block(store, split, tmp_path / "b.npy", spec, (0, 0), 100)
    matrix = tmp_path / "m.npy"
    assemble(split, [tmp_path / "b.npy"], matrix, spec, 100)
    result = run_knn(matrix, split, tmp_path / "knn.json", ks=range(1, 4))
    assert result["metric"] == "procrustes" and result["ks"] == [1, 2, 3]
    assert json.loads((tmp_path / "knn.json").read_text())["best_k"] == result["best_k"]
    lat = knn_latency(store, split, tmp_path / "lat.json", n_queries=2)
    assert lat["n_queries"] == 2 and lat["n_references"] == 8
    assert lat["ms_per_query"] > 0 and lat["ms_per_query_full"] > 0
    with pytest.raises(InputError, match="another split table"):
        write_split(store, tmp_path / "other.tsv", {"train": [1], "test": [3]})
        run_knn(matrix, tmp_path / "other.tsv", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
