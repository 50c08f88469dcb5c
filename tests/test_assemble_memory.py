"""Assembly and loading of large distance matrices without copies of them in memory.

The streaming writer (:func:`geokd.distances.shards.assemble`) writes the same bytes as the
former in-memory writer (``in_memory=True``, kept as the reference), refuses the same broken
inputs, and needs a fraction of the memory; the verified reader maps the file it checked.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import geokd.checksum as checksum
import geokd.distances.shards as shards
from geokd.checksum import check_distances, open_verified, read_npy_array, sidecar_path
from geokd.distances.shards import (
    MatrixSpec,
    assemble,
    load_aligned,
    load_matrix,
    plan_blocks,
    read_npy_checked,
    write_block,
    write_npy_with_sidecar,
)
from geokd.errors import InputError
from tests.helpers.bench import load_bench


def _split(folder: Path, n_train: int, n_test: int) -> Path:
    rows = [f"tr{i}\t{i % 3}\t1\ttrain" for i in range(n_train)]
    rows += [f"te{i}\t{i % 3}\t2\ttest" for i in range(n_test)]
    split = folder / "split.tsv"
    split.write_text("sequence_id\tlabel\tsubject\tsplit\n" + "\n".join(rows) + "\n")
    return split


def _blocks(folder: Path, spec: MatrixSpec, n_query: int, n_ref: int, bs: int, seed=0):
    """Random blocks of a (query x reference) matrix, written as the workflow writes them."""
    rng = np.random.default_rng(seed)
    paths = []
    for bi, bj in plan_blocks(n_query, n_ref, bs, spec.symmetric):
        values = rng.random((min(bs, n_query - bi * bs), min(bs, n_ref - bj * bs))) * 10
        if spec.symmetric and bi == bj:
            values = values + values.T
            np.fill_diagonal(values, 0.0)
        paths.append(folder / f"block_{bi}_{bj}.npy")
        write_block(paths[-1], values, spec, (bi, bj), bs)
    return paths


@pytest.fixture
def matrix_inputs(tmp_path):
    """(split table, spec, blocks) of a 23 x 23 train matrix and a 9 x 23 test matrix."""
    split = _split(tmp_path, 23, 9)

    def make(query: str, bs: int):
        spec = MatrixSpec(query, "train")
        folder = tmp_path / f"{query}-{bs}"
        folder.mkdir()
        return spec, _blocks(folder, spec, 23 if query == "train" else 9, 23, bs)

    return split, make


def _files(path: Path) -> tuple[bytes, bytes]:
    return path.read_bytes(), sidecar_path(path).read_bytes()


@pytest.mark.parametrize("strip_rows", [1, 3, 7, 1000])
@pytest.mark.parametrize(("query", "bs"), [("train", 5), ("train", 23), ("test", 4), ("test", 50)])
def test_streaming_assembly_writes_the_bytes_of_the_in_memory_writer(
    matrix_inputs, tmp_path, monkeypatch, query, bs, strip_rows
):
    """Same .npy bytes, same sidecar bytes (sha256 and size included), whatever the strips."""
    split, make = matrix_inputs
    spec, blocks = make(query, bs)
    monkeypatch.setattr(shards, "_STRIP_BYTES", strip_rows * 23 * 8)
    streamed = assemble(split, blocks, tmp_path / "stream.npy", spec, bs, store_sha256="ab")
    reference = assemble(
        split, blocks, tmp_path / "memory.npy", spec, bs, store_sha256="ab", in_memory=True
    )
    assert _files(tmp_path / "stream.npy") == _files(tmp_path / "memory.npy")
    assert np.array_equal(streamed, reference) and not streamed.flags.writeable
    side = json.loads(sidecar_path(tmp_path / "stream.npy").read_text())
    assert side["size"] == (tmp_path / "stream.npy").stat().st_size
    loaded, _ = load_matrix(tmp_path / "stream.npy")
    assert np.array_equal(loaded, reference)
    if spec.symmetric:
        assert np.array_equal(loaded, loaded.T) and not np.diagonal(loaded).any()


def test_the_streamed_file_equals_numpy_save(matrix_inputs, tmp_path):
    split, make = matrix_inputs
    spec, blocks = make("test", 4)
    matrix = assemble(split, blocks, tmp_path / "m.npy", spec, 4)
    np.save(tmp_path / "np.npy", np.array(matrix))
    assert (tmp_path / "m.npy").read_bytes() == (tmp_path / "np.npy").read_bytes()


@pytest.mark.parametrize("in_memory", [False, True])
def test_holes_are_refused_and_leave_nothing_behind(matrix_inputs, tmp_path, in_memory):
    split, make = matrix_inputs
    spec, blocks = make("train", 5)
    values, _ = read_npy_checked(blocks[1])  # block (0, 1): rows 0-4, columns 5-9
    write_block(blocks[1], np.array(values[:4]), spec, (0, 1), 5)  # row 4 left out: a hole
    out = tmp_path / "out" / "m.npy"
    with pytest.raises(InputError, match="holes") as err:
        assemble(split, blocks, out, spec, 5, in_memory=in_memory)
    assert err.value.where == str(out)
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temporaries either


def _rewrite(path: Path, change) -> None:
    D, side = read_npy_checked(path, mmap=False)
    change(D)
    keep = {k: v for k, v in side.items() if k not in ("sha256", "size", "shape", "dtype")}
    write_npy_with_sidecar(path, D, keep)


@pytest.mark.parametrize(
    ("block", "change", "pattern"),
    [
        (1, lambda D: D.__setitem__((2, 3), -1.0), r"D\[2, 8\] = -1\.0.*non-negative"),
        (1, lambda D: D.__setitem__((4, 0), np.nan), r"D\[4, 5\] = nan.*finite"),
        (0, lambda D: D.__setitem__((1, 3), D[1, 3] + 1), r"D\[1, 3\] = .* but D\[3, 1\]"),
        (0, lambda D: D.__setitem__((2, 2), 0.5), r"D\[2, 2\] = 0\.5.*zero diagonal"),
    ],
)
def test_blocks_breaking_the_contract_are_refused(matrix_inputs, tmp_path, block, change, pattern):
    split, make = matrix_inputs
    spec, blocks = make("train", 5)
    _rewrite(blocks[block], change)
    out = tmp_path / "m.npy"
    with pytest.raises(InputError, match=pattern) as err:
        assemble(split, blocks, out, spec, 5)
    assert err.value.where == str(blocks[block]) and not out.exists()


def test_chunked_contract_check_names_the_same_entry(monkeypatch):
    """Row chunks do not change which entry is named: a non-finite one anywhere comes before
    a negative one, and the first bad one in row-major order is named."""
    D = np.ones((9, 9))
    np.fill_diagonal(D, 0)
    D[1, 7] = D[7, 1] = D[3, 2] = D[2, 3] = -1.0
    D[6, 4] = D[4, 6] = np.inf
    messages = {}
    for chunk in (1, 9, 20, 1 << 22):
        monkeypatch.setattr(checksum, "_CHECK_CHUNK", chunk)
        for bad in ("inf", "negative"):
            M = D.copy()
            if bad == "negative":
                M[M == np.inf] = 1.0
            with pytest.raises(InputError) as err:
                check_distances("m.npy", M, {"symmetric": True})
            messages.setdefault(bad, set()).add(err.value.problem)
    assert [m.split(":")[0] for m in messages["inf"]] == ["D[4, 6] = inf"]
    assert [m.split(":")[0] for m in messages["negative"]] == ["D[1, 7] = -1.0"]


@pytest.fixture
def matrix(matrix_inputs, tmp_path) -> Path:
    split, make = matrix_inputs
    spec, blocks = make("train", 5)
    assemble(split, blocks, tmp_path / "m.npy", spec, 5)
    return tmp_path / "m.npy"


def _consistent(path: Path, data: bytes) -> None:
    """Replace the file and fix its sidecar's size and checksum: only the reader can tell."""
    side = json.loads(sidecar_path(path).read_text())
    path.write_bytes(data)
    side |= {"size": len(data), "sha256": checksum.sha256_bytes(data)}
    sidecar_path(path).write_text(json.dumps(side))


DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or corrupted"),
    "bit flipped": (lambda p: _flip(p, -5), "checksum mismatch"),
    "truncated, sidecar fixed": (
        lambda p: _consistent(p, p.read_bytes()[:-100]),
        "not a readable .npy file.*fewer than",
    ),
    "header only, sidecar fixed": (
        lambda p: _consistent(p, p.read_bytes()[:128]),
        "not a readable .npy file",
    ),
    "object array, sidecar fixed": (
        lambda p: _consistent(p, _object_npy()),
        "not a readable .npy file.*Object arrays",
    ),
    "not .npy, sidecar fixed": (lambda p: _consistent(p, b"hello" * 50), "not a readable .npy"),
}


def _flip(path: Path, where: int) -> None:
    data = bytearray(path.read_bytes())
    data[where] ^= 0x10
    path.write_bytes(bytes(data))


def _object_npy() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_matrix_is_refused_naming_it(matrix, damage, mmap):
    corrupt, pattern = DAMAGE[damage]
    corrupt(matrix)
    with pytest.raises(InputError, match=pattern) as err:
        load_matrix(matrix, mmap=mmap)
    assert err.value.where == str(matrix)


def test_mapped_and_in_memory_loads(matrix, tmp_path):
    mapped, side = load_matrix(matrix)
    copy, side2 = load_matrix(matrix, mmap=False)
    assert side == side2 and np.array_equal(mapped, copy)
    assert type(mapped) is np.ndarray and not mapped.flags.writeable
    assert copy.flags.writeable and copy.flags.c_contiguous
    copy[0, 1] = 5.0  # a copy: the file is unchanged
    assert np.array_equal(load_matrix(matrix)[0], mapped)
    split = tmp_path / "split.tsv"
    D, _, rows, cols = load_aligned(matrix, split, "train", "train", mmap=False)
    assert D.flags.writeable and len(rows) == len(cols) == 23


def test_the_reader_maps_the_file_it_checked(matrix, tmp_path):
    """A file renamed onto the path after the check is not the one mapped (no race)."""
    before = np.load(matrix)
    other = tmp_path / "other.npy"
    np.save(other, before + 1)
    with open_verified(matrix) as (fh, _):
        os.replace(other, matrix)  # what an atomic writer does
        mapped = read_npy_array(matrix, fh)
    assert np.array_equal(mapped, before)


def test_a_block_replaced_during_assembly_is_refused(matrix_inputs, tmp_path, monkeypatch):
    split, make = matrix_inputs
    spec, blocks = make("train", 5)
    checked_blocks = shards._checked_blocks

    def then_replace(*args):
        checked = checked_blocks(*args)
        shutil.copyfile(blocks[1], tmp_path / "copy.npy")
        os.replace(tmp_path / "copy.npy", blocks[1])
        return checked

    monkeypatch.setattr(shards, "_checked_blocks", then_replace)
    with pytest.raises(InputError, match="replaced or changed during assembly") as err:
        assemble(split, blocks, tmp_path / "out" / "m.npy", spec, 5)
    assert err.value.where == str(blocks[1])
    assert not any((tmp_path / "out").iterdir())


def test_stale_temporaries_of_the_matrix_are_swept(matrix_inputs, tmp_path):
    """The streaming writer's temporaries are geokd.atomic's: a killed writer's are removed."""
    from geokd.atomic import _owner_tag

    split, make = matrix_inputs
    spec, blocks = make("train", 5)
    out = tmp_path / "m.npy"
    host = _owner_tag().rsplit("-", 1)[0]
    stale = [
        tmp_path / f".m.npy.{host}-999999999.x.tmp",
        tmp_path / f".m.npy.json.{host}-999999999.y.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half")
    assemble(split, blocks, out, spec, 5)
    assert not any(p.exists() for p in stale)
    assert not list(tmp_path.glob(".m.npy*.tmp"))


def test_streaming_assembly_needs_a_fraction_of_the_matrix_in_memory(tmp_path):
    """3000 x 3000 (72 MB) in child processes: peak RSS growth over the child's RSS after its
    imports (bench/bench_assemble.py). Streaming assembly stays below 1x the matrix (measured
    0.5x, mostly fixed costs), the verified loads below 1.5x (1.1x: the matrix itself, mapped
    or read); the in-memory writer (2.4x) and the former reader (2.1x) exceed 1.5x, so the
    bound can fail."""
    bench = load_bench("bench_assemble")
    n, bs = 3000, 500
    bench.write_blocks(tmp_path, n, bs)
    size = n * n * 8
    growth = {step: bench.run_child(step, tmp_path, bs)["growth"] for step in bench.STEPS}
    ratio = {step: round(g / size, 2) for step, g in growth.items()}
    assert ratio["stream"] < 1.0, ratio  # no copy of the matrix at all
    assert ratio["load"] < 1.5 and ratio["load_copy"] < 1.5, ratio
    assert ratio["in_memory"] > 1.5 and ratio["load_old"] > 1.5, ratio
    same = [(tmp_path / f"stream{e}").read_bytes() == (tmp_path / f"in_memory{e}").read_bytes()
            for e in (".npy", ".npy.json")]  # fmt: skip
    assert all(same)


def test_strips_that_do_not_fill_the_shape_write_nothing(tmp_path):
    out = tmp_path / "m.npy"
    with pytest.raises(ValueError, match="strips gave"):
        checksum.write_npy_streamed(out, (3, 4), [np.zeros((2, 4))])
    assert not any(tmp_path.iterdir())
    written = checksum.write_npy_streamed(out, (3, 4), [np.zeros((2, 4)), np.ones((1, 4))])
    assert np.array_equal(written, np.load(out)) and written[2, 0] == 1
    assert checksum.verify_sidecar(out)["size"] == out.stat().st_size
