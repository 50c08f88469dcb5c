import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geokd.data.store import SCHEMA, StoreInfo, load_meta, load_sequences, read_info, write_store
from geokd.errors import InputError


def _meta(n):
    return pd.DataFrame(
        {
            "sequence_id": [f"s{i}" for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "label_name": [f"class{i % 2}" for i in range(n)],
            "subject": [1 + i // 2 for i in range(n)],
            "trial": [1] * (n - 1) + [None],
            "source": [f"raw/{i}.mat" for i in range(n)],
            "sha256": ["0" * 64] * n,
        }
    )


INFO = StoreInfo(dataset="toy", landmark_names=["a", "b", "c", "d"], units="m", bones=[(0, 1)])


def _seqs(n, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(1, 9)), k, 3)) for _ in range(n)]


def test_round_trip_is_exact_and_follows_the_contract(tmp_path):
    seqs = _seqs(5)
    path = tmp_path / "s.parquet"
    write_store(path, seqs, _meta(5), INFO)
    back, meta = load_sequences(path)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, back, strict=True))
    assert all(b.dtype == np.float64 and b.shape[1:] == (4, 3) for b in back)
    table = pq.read_table(path)
    assert table.schema.remove_metadata().equals(SCHEMA)
    # frames is the row-major flattening of (T, K, 3)
    assert table.column("frames")[2].as_py() == seqs[2].ravel().tolist()
    assert meta["n_frames"].tolist() == [s.shape[0] for s in seqs]
    assert meta["n_landmarks"].unique().tolist() == [4]
    assert meta["dataset"].unique().tolist() == ["toy"]
    assert pd.isna(meta["trial"].iloc[-1]) and meta["trial"].iloc[0] == 1
    assert read_info(path) == INFO
    assert list(load_meta(path)["sequence_id"]) == [f"s{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s[1].__setitem__((0, 0, 0), np.nan), "s1: 1 non-finite"),
        (lambda s: s.__setitem__(2, np.zeros((0, 4, 3))), "s2: sequence has no frames"),
        (lambda s: s.__setitem__(3, np.zeros((3, 5, 3))), "s3: expected 4 landmarks"),
        (lambda s: s.__setitem__(0, np.zeros((3, 4))), "s0: expected an array of shape"),
    ],
)
def test_bad_sequences_are_refused_and_nothing_is_written(tmp_path, mutate, message):
    seqs = _seqs(4)
    mutate(seqs)
    path = tmp_path / "s.parquet"
    with pytest.raises(InputError, match=message):
        write_store(path, seqs, _meta(4), INFO)
    assert list(tmp_path.iterdir()) == []


def test_duplicate_ids_are_refused(tmp_path):
    meta = _meta(3)
    meta.loc[2, "sequence_id"] = "s0"
    with pytest.raises(InputError, match="duplicate sequence_id"):
        write_store(tmp_path / "s.parquet", _seqs(3), meta, INFO)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_store(tmp_path):
    path = tmp_path / "s.parquet"
    write_store(path, _seqs(3), _meta(3), INFO)
    before = path.read_bytes()
    bad = _seqs(3)
    bad[0][0, 0, 0] = np.inf
    with pytest.raises(InputError):
        write_store(path, bad, _meta(3), INFO)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet"]


def test_loading_something_else_names_the_file(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="junk.parquet: not a readable Parquet"):
        load_sequences(junk)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with pytest.raises(InputError, match="other.parquet: not a geokd sequence store"):
        load_sequences(other)
