import hashlib

import numpy as np
import pytest
import scipy.io

from geokd.data.splits import assign_splits
from geokd.data.store import load_sequences, read_info
from geokd.data.utd_mhad import ingest, read_folder
from geokd.errors import InputError
from tests.helpers.utd import write_mat


def test_fake_folder_round_trip(fake_utd, tmp_path):
    out = tmp_path / "utd.parquet"
    n, rejected = ingest(fake_utd, out)
    assert (n, rejected) == (12, [])
    seqs, meta = load_sequences(out)
    row = meta.index[meta["sequence_id"] == "a02_s3_t1"][0]
    d_skel = scipy.io.loadmat(fake_utd / "a2_s3_t1_skeleton.mat")["d_skel"]
    # frame t is d_skel[:, :, t]
    assert np.array_equal(seqs[row], d_skel.transpose(2, 0, 1))
    assert np.array_equal(seqs[row][4], d_skel[:, :, 4])
    assert meta.loc[row, ["label", "subject", "trial"]].tolist() == [1, 3, 1]
    assert meta.loc[row, "label_name"] == "swipe_right"
    raw = (fake_utd / "a2_s3_t1_skeleton.mat").read_bytes()
    assert meta.loc[row, "sha256"] == hashlib.sha256(raw).hexdigest()
    assert meta.loc[row, "source"] == "a2_s3_t1_skeleton.mat"
    info = read_info(out)
    assert info.landmark_names[0] == "head" and len(info.landmark_names) == 20
    assert info.units == "m"


def _expect_refusal(raw, out, match):
    with pytest.raises(InputError, match=match):
        ingest(raw, out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("a1_s9_t1_skeleton.mat", b"MATLAB 5.0 MAT-file truncated", "not a readable MATLAB file"),
        ("a1_s9_t1_skeleton.mat", b"hello, not a mat file", "not a readable MATLAB file"),
        ("a1_s9_t1_skeleton.mat", {"other": np.zeros((20, 3, 4))}, "no variable 'd_skel'"),
        ("a1_s9_t1_skeleton.mat", {"d_skel": np.zeros((25, 3, 4))}, r"shape \(25, 3, 4\)"),
        ("a1_s9_t1_skeleton.mat", {"d_skel": np.zeros((60, 4))}, r"shape \(60, 4\)"),
        ("a1_s9_t1_skeleton.mat", {"d_skel": np.full((20, 3, 4), np.nan)}, "non-finite"),
        ("a1_s9_t1_skeleton.mat", {"d_skel": np.full((20, 3, 4), np.inf)}, "non-finite"),
        ("a1_s9_t1_skeleton.mat", {"d_skel": np.zeros((20, 3, 0))}, "no frames"),
        ("a1_s9_t1_skeleton.mat", {"d_skel": "text"}, "not a numeric array"),
        ("walk_s9.mat", {"d_skel": np.zeros((20, 3, 4))}, "does not match"),
        ("a28_s9_t1_skeleton.mat", {"d_skel": np.zeros((20, 3, 4))}, "action 28 outside"),
        ("a01_s1_t1_skeleton.mat", {"d_skel": np.zeros((20, 3, 4))}, "duplicate sequence"),
    ],
)
def test_bad_files_are_refused_naming_the_file(fake_utd, tmp_path, name, content, match):
    bad = fake_utd / name
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        scipy.io.savemat(bad, content)
    out = tmp_path / "out" / "utd.parquet"
    out.parent.mkdir()
    _expect_refusal(fake_utd, out, f"{name}.*{match}|{match}.*{name}")


def test_empty_and_missing_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no mat files here")
    _expect_refusal(empty, tmp_path / "a.parquet", "empty: no .mat files")
    _expect_refusal(tmp_path / "nowhere", tmp_path / "b.parquet", "nowhere: raw folder does not")


def test_skip_bad_writes_good_sequences_and_a_rejection_table(fake_utd, tmp_path):
    (fake_utd / "a3_s1_t1_skeleton.mat").write_bytes(b"garbage")
    write_mat(fake_utd / "a3_s1_t2_skeleton.mat", np.full((20, 3, 5), np.nan))
    out = tmp_path / "utd.parquet"
    n, rejected = ingest(fake_utd, out, skip_bad=True)
    assert n == 12
    assert sorted(r.source for r in rejected) == ["a3_s1_t1_skeleton.mat", "a3_s1_t2_skeleton.mat"]
    table = (tmp_path / "utd.parquet.rejected.tsv").read_text().splitlines()
    assert table[0] == "source\treason" and len(table) == 3
    assert "non-finite" in "".join(table)


def test_a_single_frame_file_is_one_frame(fake_utd, tmp_path):
    write_mat(fake_utd / "a5_s1_t1_skeleton.mat", np.arange(60.0).reshape(20, 3))
    seqs, meta = read_folder(fake_utd)[:2]
    seq = seqs[meta.index[meta["sequence_id"] == "a05_s1_t1"][0]]
    assert seq.shape == (1, 20, 3) and seq[0, 1, 2] == 5.0


def test_real_utd_mhad(utd_dir, tmp_path):
    out = tmp_path / "utd.parquet"
    n, rejected = ingest(utd_dir, out)
    assert (n, rejected) == (861, [])
    seqs, meta = load_sequences(out)
    assert meta["label"].nunique() == 27 and meta["label"].between(0, 26).all()
    assert sorted(meta["subject"].unique()) == list(range(1, 9))
    assert meta["n_frames"].min() == 41 and meta["n_frames"].max() == 125
    assert meta["sequence_id"].is_unique
    for seq, source in zip(seqs, meta["source"], strict=True):
        d_skel = scipy.io.loadmat(utd_dir / source)["d_skel"]
        assert np.array_equal(seq, d_skel.transpose(2, 0, 1)), source
    paper = assign_splits(meta, {"train": [1, 2, 3, 4, 5], "test": [6, 7, 8]})
    assert paper["split"].value_counts().to_dict() == {"train": 539, "test": 322}
    cross = assign_splits(meta, {"train": [1, 3, 5, 7], "test": [2, 4, 6, 8]})
    assert set(cross.loc[cross["split"] == "train", "subject"]) == {1, 3, 5, 7}
    assert set(cross.loc[cross["split"] == "test", "subject"]) == {2, 4, 6, 8}
    assert len(cross) == 861


def test_reshape_layout_reproduces_the_original_scrambling(fake_utd, tmp_path):
    """layout="reshape" = the original: d_skel as (60, T), zero-padded to 125, reshaped."""
    ingest(fake_utd, tmp_path / "nat.parquet")
    ingest(fake_utd, tmp_path / "scr.parquet", layout="reshape")
    natural, meta = load_sequences(tmp_path / "nat.parquet")
    scrambled, meta2 = load_sequences(tmp_path / "scr.parquet")
    assert list(meta["sequence_id"]) == list(meta2["sequence_id"])
    for sid, nat, scr in zip(meta["sequence_id"], natural, scrambled, strict=True):
        a, s, t = (int(x[1:]) for x in sid.split("_"))
        d_skel = scipy.io.loadmat(fake_utd / f"a{a}_s{s}_t{t}_skeleton.mat")["d_skel"]
        T = d_skel.shape[2]
        stored = np.zeros((60, 125))
        stored[:, :T] = d_skel.reshape(60, T)  # the original's (features x time) array
        np.testing.assert_array_equal(scr, stored.reshape(125, 20, 3))
        np.testing.assert_array_equal(nat, d_skel.transpose(2, 0, 1))
        assert not np.array_equal(scr[:T], nat)  # really scrambled, not the natural frames
    assert "reshape" in read_info(tmp_path / "scr.parquet").source_info["layout"]


def test_reshape_layout_refuses_sequences_longer_than_the_padding(fake_utd, tmp_path):
    write_mat(fake_utd / "a3_s1_t1_skeleton.mat", seed=1, frames=126)
    with pytest.raises(InputError, match=r"a3_s1_t1.*126 frames"):
        ingest(fake_utd, tmp_path / "x.parquet", layout="reshape")
