import json

import numpy as np
import pytest

from geokd.data.splits import write_split
from geokd.data.store import load_sequences
from geokd.data.utd_mhad import ingest
from geokd.distances._cdist import cdist
from geokd.distances.shards import (
    MatrixSpec,
    assemble,
    compute_block,
    load_matrix,
    matrix_pairs,
    plan_blocks,
    planned_blocks,
    split_ids,
)
from geokd.errors import InputError


def test_plan_covers_the_matrix_once():
    assert plan_blocks(5, 5, 2, symmetric=True) == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    assert plan_blocks(3, 5, 2, symmetric=False) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    # a block larger than the matrix is one block
    assert plan_blocks(3, 4, 100, symmetric=False) == [(0, 0)]
    with pytest.raises(ValueError, match="block size must be >= 1"):
        plan_blocks(3, 3, 0, symmetric=True)
    assert matrix_pairs({"train": [1], "test": [2]}) == [("train", "train"), ("test", "train")]
    assert matrix_pairs({"train": [1], "val": [3], "test": [2]})[1] == ("val", "train")


@pytest.fixture
def store_and_split(fake_utd, tmp_path):
    store = tmp_path / "s.parquet"
    ingest(fake_utd, store)
    split = tmp_path / "split.tsv"
    write_split(store, split, {"train": [1, 2], "test": [3]})
    return store, split


def _run_blocks(store, split, spec, bs, folder):
    paths = []
    for bi, bj in planned_blocks(split, spec.query_split, spec.reference_split, bs):
        path = folder / f"block_{bi}_{bj}.npy"
        compute_block(store, split, path, spec, (bi, bj), bs, n_jobs=1)
        paths.append(path)
    return paths


@pytest.mark.parametrize("bs", [1, 3, 5, 100])
@pytest.mark.parametrize(("query", "reference"), [("train", "train"), ("test", "train")])
def test_assembled_blocks_equal_the_whole_matrix(store_and_split, tmp_path, bs, query, reference):
    store, split = store_and_split
    spec = MatrixSpec(query, reference)
    paths = _run_blocks(store, split, spec, bs, tmp_path)
    out = tmp_path / "m.npy"
    matrix = assemble(split, paths, out, spec, bs, store_sha256="abc")
    seqs, meta = load_sequences(store)
    by_id = dict(zip(meta["sequence_id"], seqs, strict=True))
    q = [by_id[s] for s in split_ids(split, query)]
    r = [by_id[s] for s in split_ids(split, reference)]
    whole = cdist(q) if query == reference else cdist(q, r)
    np.testing.assert_allclose(matrix, whole, rtol=1e-12, atol=0)
    loaded, side = load_matrix(out)
    assert np.array_equal(loaded, matrix)
    assert side["row_ids"] == split_ids(split, query) and side["shape"] == list(matrix.shape)
    assert side["metric"] == "procrustes" and side["store_sha256"] == "abc"
    if query == reference:
        assert np.array_equal(matrix, matrix.T) and not np.diag(matrix).any()


def test_assembly_refuses_missing_corrupt_and_foreign_blocks(store_and_split, tmp_path):
    store, split = store_and_split
    spec = MatrixSpec("test", "train")
    paths = _run_blocks(store, split, spec, 3, tmp_path)
    out = tmp_path / "m.npy"
    with pytest.raises(InputError, match="block.*missing"):
        assemble(split, paths[1:], out, spec, 3)
    data = bytearray(paths[0].read_bytes())
    data[-3] ^= 0xFF  # flip bits of the last value
    paths[0].write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{paths[0].name}: checksum mismatch"):
        assemble(split, paths, out, spec, 3)
    compute_block(store, split, paths[0], MatrixSpec("test", "train", "euclidean"), (0, 0), 3)
    with pytest.raises(InputError, match="other settings"):
        assemble(split, paths, out, spec, 3)
    assert not out.exists()


def test_a_block_outside_the_plan_is_refused(store_and_split, tmp_path):
    store, split = store_and_split
    with pytest.raises(InputError, match="not part of the plan"):
        compute_block(store, split, tmp_path / "b.npy", MatrixSpec("train", "train"), (1, 0), 3)
    assert not (tmp_path / "b.npy").exists()


def test_sidecar_is_plain_json_with_checksum(store_and_split, tmp_path):
    store, split = store_and_split
    spec = MatrixSpec("test", "train")
    path = tmp_path / "b.npy"
    compute_block(store, split, path, spec, (0, 0), 100)
    side = json.loads((tmp_path / "b.npy.json").read_text())
    assert side["rows"] == [0, 4] and side["cols"] == [0, 8] and len(side["sha256"]) == 64


def _cli_block(store_and_split, tmp_path, name, settings, block=(0, 0), *options):
    """`geokd distances block` with a settings file; the block's path and values."""
    from geokd.cli import main

    store, split = store_and_split
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"metric": "procrustes", **settings}))
    out = tmp_path / f"{name}.npy"
    argv = ["distances", "block", str(store), str(split), str(out), "--block", *map(str, block)]
    assert main([*argv, *options, "--settings", str(path)]) == 0
    return out, np.load(out)


def test_the_backend_setting_reaches_the_block(store_and_split, tmp_path):
    """`distances.backend` (settings slice) and `--backend`: the torch kernel computes the
    block, equal to the CPU kernel's within 1e-9 (not to the bit: another arithmetic)."""
    from geokd.cli import main

    store, split = store_and_split
    blocks = {}
    for backend in ("cpu", "torch"):
        settings = {"block_size": 4, "backend": backend}
        options = ("--query", "train", "--reference", "train")
        blocks[backend] = _cli_block(
            store_and_split, tmp_path, backend, settings, (0, 1), *options
        )[1]
    np.testing.assert_allclose(blocks["torch"], blocks["cpu"], rtol=0, atol=1e-9)
    assert not np.array_equal(blocks["torch"], blocks["cpu"])  # the torch kernel really ran
    for backend in ("cpu", "torch"):  # the option, without a settings file
        out = tmp_path / f"opt-{backend}.npy"
        argv = ["distances", "block", str(store), str(split), str(out), "--block", "0", "0"]
        assert main([*argv, "--block-size", "4", "--backend", backend]) == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "opt-torch.npy"), np.load(tmp_path / "opt-cpu.npy"), atol=1e-9
    )


def test_the_precision_setting_reaches_the_block_and_the_matrix_sidecar(store_and_split, tmp_path):
    """`distances.precision: float32` (settings slice, or `--precision`): the float32 kernel
    computes the blocks (within 1e-5 of float64, not equal to it); the precision is part of
    the blocks' settings hash (assembly refuses to mix) and is recorded in the matrix sidecar.
    float64 keeps the hash it had before the option existed."""
    from dataclasses import asdict

    from geokd.checksum import sha256_bytes
    from geokd.cli import main

    store, split = store_and_split
    spec64, spec32 = MatrixSpec("test", "train"), MatrixSpec("test", "train", precision="float32")
    before = ("query_split", "reference_split", "metric", "window", "metric_params")
    blob = json.dumps({k: v for k, v in asdict(spec64).items() if k in before}, sort_keys=True)
    assert spec64.params_hash() == sha256_bytes(blob.encode())[:16] != spec32.params_hash()
    assert str(spec32) == "test x train procrustes float32"
    values = {}
    for precision in ("float64", "float32"):
        settings = {"block_size": 100, "precision": precision}
        out, values[precision] = _cli_block(store_and_split, tmp_path, precision, settings)
        matrix = tmp_path / f"m-{precision}.npy"
        argv = ["distances", "assemble", str(store), str(split), str(matrix), str(out)]
        assert main([*argv, "--settings", str(tmp_path / f"{precision}.json")]) == 0
        assert load_matrix(matrix)[1]["precision"] == precision
    np.testing.assert_allclose(values["float32"], values["float64"], rtol=1e-5)
    assert not np.array_equal(values["float32"], values["float64"])
    with pytest.raises(InputError, match="other settings"):
        assemble(split, [tmp_path / "float32.npy"], tmp_path / "mixed.npy", spec64, 100)
    out = tmp_path / "opt.npy"  # the option, without a settings file
    argv = ["distances", "block", str(store), str(split), str(out), "--block", "0", "0"]
    assert main([*argv, "--block-size", "100", "--precision", "float32"]) == 0
    np.testing.assert_array_equal(np.load(out), values["float32"])


def test_the_frame_budget_resamples_before_dtw_and_is_recorded(store_and_split, tmp_path):
    """`distances.frames` (settings slice, or `--frames`): every sequence is resampled
    (linear) to that many frames before DTW, so the block equals the kernel on the resampled
    sequences; the budget is part of the blocks' settings hash (assembly refuses to mix) and
    recorded in the matrix sidecar; no budget keeps the hash, the settings file and the sidecar
    they had before the option existed."""
    from geokd.cli import main
    from geokd.data.resample import resample

    store, split = store_and_split
    whole, budget = MatrixSpec("test", "train"), MatrixSpec("test", "train", frames=5)
    assert whole.params_hash() != budget.params_hash()
    assert str(budget) == "test x train procrustes (5 frames)"
    seqs, meta = load_sequences(store)
    by_id = dict(zip(meta["sequence_id"], seqs, strict=True))
    assert {len(by_id[s]) for s in by_id} != {5}  # the fake files are 7 frames long
    q = [resample(by_id[s], 5, "linear") for s in split_ids(split, "test")]
    r = [resample(by_id[s], 5, "linear") for s in split_ids(split, "train")]
    out, block = _cli_block(store_and_split, tmp_path, "budget", {"block_size": 100, "frames": 5})
    np.testing.assert_array_equal(block, cdist(q, r))
    full = cdist(
        [by_id[s] for s in split_ids(split, "test")], [by_id[s] for s in split_ids(split, "train")]
    )
    assert not np.allclose(block, full)
    matrix = tmp_path / "m.npy"
    argv = ["distances", "assemble", str(store), str(split), str(matrix), str(out)]
    assert main([*argv, "--settings", str(tmp_path / "budget.json")]) == 0
    assert load_matrix(matrix)[1]["frames"] == 5
    with pytest.raises(InputError, match="other settings"):
        assemble(split, [out], tmp_path / "mixed.npy", whole, 100)
    opt = tmp_path / "opt.npy"  # the option, without a settings file
    argv = ["distances", "block", str(store), str(split), str(opt), "--block", "0", "0"]
    assert main([*argv, "--block-size", "100", "--frames", "5"]) == 0
    np.testing.assert_array_equal(np.load(opt), block)
    plain = tmp_path / "plain.npy"  # no budget: no "frames" in the matrix sidecar
    assemble(split, _run_blocks(store, split, whole, 100, tmp_path), plain, whole, 100)
    assert "frames" not in load_matrix(plain)[1]
    with pytest.raises(SystemExit):  # a budget of one frame is refused
        main([*argv, "--frames", "1"])


def test_a_budgeted_matrix_is_normalised_by_its_budget(store_and_split, tmp_path):
    """`distances.normalise: path_length` on a matrix made with a frame budget divides by the
    frames the kernel compared (2 x the budget), read from the matrix sidecar, not by the
    stored sequences' lengths."""
    from geokd.distances.normalise import load_used

    store, split = store_and_split
    for frames, name in ((None, "all"), (5, "five")):
        spec = MatrixSpec("test", "train", frames=frames)
        paths = _run_blocks(store, split, spec, 100, tmp_path / name)
        assemble(split, paths, tmp_path / f"{name}.npy", spec, 100)
    raw = load_matrix(tmp_path / "five.npy")[0]
    used = load_used(tmp_path / "five.npy", split, "test", "train", "path_length", None)[0]
    np.testing.assert_array_equal(used, raw / 10.0)
    with pytest.raises(InputError, match="needs the store"):  # no budget: the store's lengths
        load_used(tmp_path / "all.npy", split, "test", "train", "path_length", None)
    used = load_used(tmp_path / "all.npy", split, "test", "train", "path_length", store)[0]
    np.testing.assert_array_equal(used, load_matrix(tmp_path / "all.npy")[0] / 14.0)


def test_the_1nn_latency_queries_the_budgeted_sequences(store_and_split, tmp_path, monkeypatch):
    """The 1-NN latency job times queries as the matrices compare them: resampled to the
    budget (``frames`` recorded in its JSON)."""
    import geokd.distances
    from geokd.models.knn import knn_latency

    store, split = store_and_split
    seen = []
    real = geokd.distances.knn_query

    def spy(query, refs, *args, **kwargs):
        seen.append(len(query))
        return real(query, refs, *args, **kwargs)

    monkeypatch.setattr(geokd.distances, "knn_query", spy)
    result = knn_latency(store, split, tmp_path / "lat.json", n_queries=2, frames=5)
    assert result["frames"] == 5 and set(seen) == {5}
    seen.clear()
    result = knn_latency(store, split, tmp_path / "lat.json", n_queries=2)
    assert "frames" not in result and set(seen) == {7}


def test_the_reports_alignment_path_uses_the_matrix_frame_budget(store_and_split, tmp_path):
    """The report's example DTW path is recomputed from the store's sequences: with a frame
    budget it resamples them as the matrix did, so its total is the matrix entry it shows."""
    import re

    from geokd import paths
    from geokd.report.alignment import dtw_path_html

    store, split = store_and_split
    seqs, meta = load_sequences(store)
    sequences = dict(zip(meta["sequence_id"].astype(str), seqs, strict=True))
    for frames in (None, 5):
        rdir = tmp_path / str(frames)
        out = rdir / paths.in_protocol(paths.MATRIX, metric="procrustes", query="test",
                                       reference="train")  # fmt: skip
        out.parent.mkdir(parents=True)
        spec = MatrixSpec("test", "train", frames=frames)
        assemble(split, _run_blocks(store, split, spec, 100, out.parent), out, spec, 100)
        captions = []
        dtw_path_html(rdir, sequences, lambda key, fig, alt, caption, c=captions: c.append(caption))
        total, stored = re.search(r"Its total cost, (\S+), .* holds (\S+)\.$", captions[0]).groups()
        assert float(total) == pytest.approx(float(stored), rel=1e-5), captions[0]
        assert ("resampled to 5 frames" in captions[0]) is (frames == 5)
