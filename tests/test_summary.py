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
        config={
            "training": {"comparisons": [["distilled", "label_smoothing"], ["metric", "nngk"]]}
        },
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


FAMILIES = {  # accuracy per seed (0, 1, 2) and batch-1 latency per family
    "transformer": ([0.50, 0.55, 0.60], 1.0),
    "label_smoothing": ([0.60, 0.62, 0.64], 1.1),
    "distilled": ([0.70, 0.66, 0.65], 1.2),
    "metric": ([0.63, 0.66, 0.67], 1.3),
    "nngk": ([0.55, 0.58, 0.61], 2.0),
}


def _family_runs(tmp_path, families=FAMILIES):
    """metrics.json (no latency) and timings.json of every family and seed."""
    runs, timings = [], []
    for mode, (accs, lat1) in families.items():
        for seed, acc in enumerate(accs):
            m = {"mode": mode, "seed": seed, "epoch": 5, "test": {"accuracy": acc, "macro_f1": acc}}
            runs.append(_write(tmp_path / f"{mode}{seed}.json", m))
            lat = {"batch_1": lat1 + seed, "batch_64": lat1 / 10, "device": "cpu", "threads": 1}
            t = {"mode": mode, "seed": seed, "train_seconds": 1.0, "latency_ms_per_sample": lat}
            timings.append(_write(tmp_path / f"{mode}{seed}.timings.json", t))
    return runs, timings


def _summarize_families(tmp_path, families=FAMILIES, name="summary.json"):
    knn = _write(
        tmp_path / "knn.json",
        {
            "metric": "procrustes",
            "per_k": {"1": {"accuracy": 0.4, "macro_f1": 0.3}},
            "best_k": 1,
            "best_accuracy": 0.4,
        },
    )
    latency = _write(tmp_path / "lat.json", {"metric": "procrustes", "ms_per_query": 60.0})
    runs, timings = _family_runs(tmp_path, families)
    out = tmp_path / name
    s = summarize(
        out,
        knn=[knn],
        teachers=[],
        runs=runs,
        latency=[latency],
        store=_write(tmp_path / "store.bin", {}),
        config={
            "training": {"comparisons": [["distilled", "label_smoothing"], ["metric", "nngk"]]}
        },
        dataset="d",
        protocol="p",
        run_timings=timings,
        timings_out=tmp_path / f"timings_{name}",
    )
    return s, out, tmp_path / f"timings_{name}"


def test_summary_compares_five_families(tmp_path):
    s, out, timings = _summarize_families(tmp_path)
    written = json.loads(out.read_text())
    for mode, (accs, _) in FAMILIES.items():
        entry = written[mode]
        assert {"accuracy_mean", "accuracy_std", "per_seed", "n_seeds", "macro_f1_mean"} <= set(
            entry
        )
        assert entry["accuracy_mean"] == pytest.approx(np.mean(accs))
        assert entry["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
        assert entry["n_seeds"] == 3
    cmp = written["comparisons"]  # the first declared pair
    assert (cmp["geometry"], cmp["labels_only"]) == ("distilled", "label_smoothing")
    assert [(c["geometry"], c["labels_only"]) for c in written["declared_comparisons"]] == [
        ("distilled", "label_smoothing"),
        ("metric", "nngk"),
    ]
    diffs = np.array([0.70 - 0.60, 0.66 - 0.62, 0.65 - 0.64])
    assert cmp["seeds"] == [0, 1, 2] and cmp["n"] == 3
    assert cmp["differences"] == pytest.approx(diffs)
    assert cmp["mean_difference"] == pytest.approx(diffs.mean())
    half = 4.302652729749462 * diffs.std(ddof=1) / np.sqrt(3)
    assert cmp["ci95"] == pytest.approx([diffs.mean() - half, diffs.mean() + half])
    assert "not significant" in cmp["verdict"] and "3 paired seeds" in cmp["verdict"]
    assert written["winner"] == {"model": "distilled", "accuracy": pytest.approx(0.67)}
    # measured times stay out of summary.json; per-model latency is in timings.json
    assert "inference" not in written and "train_seconds" not in written
    inf = json.loads(timings.read_text())["inference"]
    assert sorted(inf["models"]) == sorted(FAMILIES)
    for mode, (_, lat1) in FAMILIES.items():
        lat = inf["models"][mode]
        assert lat["ms_per_sample"] == pytest.approx(lat1 + 1)  # mean of lat1 + 0, 1, 2
        assert lat["ms_per_sample_batched"] == pytest.approx(lat1 / 10)
        assert lat["speedup"] == pytest.approx(60.0 / (lat1 + 1))
    # the student keys stay those of the distilled model
    assert inf["student_ms_per_sample"] == inf["models"]["distilled"]["ms_per_sample"]
    assert inf["student_ms_per_sample_batched"] == pytest.approx(0.12)
    assert inf["speedup"] == pytest.approx(60.0 / 2.2)
    assert s["inference"] == inf
    # the same inputs give the same summary.json to the byte
    _, again, _ = _summarize_families(tmp_path, name="again.json")
    assert again.read_bytes() == out.read_bytes()


def test_summary_without_one_side_has_no_comparison(tmp_path):
    labels_only = {m: FAMILIES[m] for m in ("transformer", "nngk")}
    s, out, _ = _summarize_families(tmp_path, labels_only)
    written = json.loads(out.read_text())
    assert "comparisons" not in written
    # KNN 1-NN (0.4) loses to the models; without distilled the student is the first model
    assert written["winner"] == {"model": "nngk", "accuracy": pytest.approx(0.58)}
    assert s["inference"]["student_ms_per_sample"] == pytest.approx(2.0)


def test_run_without_latency_is_an_error(tmp_path):
    runs, timings = _family_runs(tmp_path, {"metric": FAMILIES["metric"]})
    with pytest.raises(InputError, match="metric1.json: no latency_ms_per_sample"):
        summarize(
            tmp_path / "s.json",
            knn=[],
            teachers=[],
            runs=runs,
            latency=[],
            store=_write(tmp_path / "store.bin", {}),
            config={},
            dataset="d",
            protocol="p",
            run_timings=[timings[0], timings[2]],
        )
