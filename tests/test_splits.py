import pandas as pd
import pytest

from geokd.data.splits import assign_splits, read_split, write_split
from geokd.data.utd_mhad import ingest
from geokd.errors import InputError

META = pd.DataFrame(
    {
        "sequence_id": [f"x{i}" for i in range(8)],
        "label": [0, 1] * 4,
        "subject": [1, 1, 2, 2, 3, 3, 4, 4],
        "trial": [1] * 8,
    }
)


def test_subjects_go_to_their_split_and_others_are_left_out():
    table = assign_splits(META, {"train": [1, 2], "val": [3], "test": [4]})
    assert table.groupby("split")["subject"].apply(set).to_dict() == {
        "train": {1, 2},
        "val": {3},
        "test": {4},
    }
    table = assign_splits(META, {"train": [1], "test": [3]})
    assert sorted(table["subject"].unique()) == [1, 3]


@pytest.mark.parametrize(
    ("protocol", "match"),
    [
        ({"train": [1, 2], "test": [2]}, "subject 2 is in both"),
        ({"train": [1], "test": [9]}, "split 'test' has no sequences"),
        ({"train": [1], "tset": [2]}, "unknown split name"),
    ],
)
def test_bad_protocols(protocol, match):
    with pytest.raises(ValueError, match=match):
        assign_splits(META, protocol)


def test_write_split_round_trip_and_errors_name_the_store(fake_utd, tmp_path):
    store = tmp_path / "s.parquet"
    ingest(fake_utd, store)
    out = tmp_path / "split.tsv"
    table = write_split(store, out, {"train": [1, 2], "test": [3]})
    back = read_split(out)
    assert back["sequence_id"].tolist() == table["sequence_id"].tolist()
    assert back["split"].value_counts().to_dict() == {"train": 8, "test": 4}
    with pytest.raises(InputError, match="s.parquet: split 'test' has no sequences"):
        write_split(store, tmp_path / "other.tsv", {"train": [1], "test": [7]})
    assert not (tmp_path / "other.tsv").exists()
