"""SIGNUM reader, landmark subsets, signer protocol and the synthetic SIGNUM-format writer."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from geokd.cli import main
from geokd.data.signum import SIGNER_PROTOCOL, SUBSETS, ingest, landmark_subset, read_signum
from geokd.data.signum_synthetic import SignumSyntheticConfig, write_synthetic_signum
from geokd.data.splits import assign_splits
from geokd.data.store import load_sequences, read_info
from geokd.data.synthetic import generate
from geokd.distances._cdist import cdist
from geokd.errors import InputError
from geokd.report.summary import read_summary
from tests.helpers.workflow import snakemake as run_snakemake

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_signs": 2, "n_signers": 25, "min_frames": 6, "max_frames": 9}
W = 1.25  # geokd.data.signum_synthetic's image width in metres


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A synthetic SIGNUM-format folder: 2 signs x 25 signers, (T, 225) arrays."""
    out = tmp_path_factory.mktemp("signum") / "raw"
    write_synthetic_signum(out, SignumSyntheticConfig(**SMALL))
    return out


@pytest.fixture
def raw(base, tmp_path) -> Path:
    """A private copy of :func:`base` that a test may damage."""
    return Path(shutil.copytree(base, tmp_path / "raw"))


def manifest(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / "manifest.csv", dtype=str, keep_default_na=False)


def save_manifest(raw: Path, table: pd.DataFrame) -> None:
    table.to_csv(raw / "manifest.csv", index=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expect_refusal(raw: Path, out: Path, match: str, **kw):
    with pytest.raises(InputError, match=match):
        ingest(raw, out, **kw)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


# ---------------------------------------------------------------------------- the reader
@pytest.mark.parametrize("layout", ["flat", "stacked"])
def test_round_trip_in_both_array_layouts(tmp_path, layout):
    raw = tmp_path / "raw"
    write_synthetic_signum(raw, SignumSyntheticConfig(**SMALL, n_repetitions=2, layout=layout))
    table = manifest(raw)
    assert np.load(raw / table["path"][0]).shape[1:] == ((225,) if layout == "flat" else (75, 3))
    out = tmp_path / "signum.parquet"
    assert ingest(raw / "manifest.csv", out, dataset="demo") == (2 * 25 * 2, [])
    seqs, meta = load_sequences(out)
    for i in (0, 37, 99):
        row = meta.iloc[i]
        src = table.set_index("path").loc[row["source"]]
        arr = np.load(raw / row["source"]).reshape(-1, 75, 3)
        assert np.array_equal(seqs[i], arr[:, 33:75].astype(np.float64))  # exact values
        assert row["label"] == int(src["sign"]) - 1 and row["label_name"] == src["gloss"]
        assert (row["subject"], row["trial"]) == (int(src["signer"]), int(src["repetition"]))
        assert row["sha256"] == sha(raw / row["source"])
        assert row["sequence_id"] == f"sign{int(src['sign']):03d}_s{row['subject']:02d}_r" + str(
            row["trial"]
        )
    keys = list(zip(meta["label"], meta["subject"], meta["trial"], strict=True))
    assert keys == sorted(keys) and meta["n_landmarks"].eq(42).all()
    info = read_info(out)
    assert info.dataset == "demo" and info.units == "normalised image coordinates"
    assert info.landmark_names[0] == "left_wrist" and info.landmark_names[21] == "right_wrist"
    assert len(info.bones) == 40 and "y down" in info.coordinate_system
    assert info.source_info["reader"] == "signum" and info.source_info["landmarks"] == "both_hands"


def test_flat_and_stacked_files_give_the_same_store(tmp_path):
    stores = []
    for layout in ("flat", "stacked"):
        raw = tmp_path / layout
        write_synthetic_signum(raw, SignumSyntheticConfig(**SMALL, layout=layout))
        ingest(raw, tmp_path / f"{layout}.parquet")
        stores.append(load_sequences(tmp_path / f"{layout}.parquet"))
    (a, ma), (b, mb) = stores
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert ma["sequence_id"].tolist() == mb["sequence_id"].tolist()


def test_parquet_manifest_and_manifest_folder(raw, tmp_path):
    seqs_csv, meta_csv, _, _ = read_signum(raw / "manifest.csv")
    table = manifest(raw).astype({"sign": int, "signer": int, "repetition": int})
    table.to_parquet(raw / "manifest.parquet")
    with pytest.raises(InputError, match="exactly one of"):
        read_signum(raw)  # a folder with both manifests is ambiguous
    (raw / "manifest.csv").unlink()
    seqs, meta, _, facts = read_signum(raw)
    assert facts["manifest"] == "manifest.parquet"
    assert meta.equals(meta_csv)
    assert all(np.array_equal(x, y) for x, y in zip(seqs, seqs_csv, strict=True))


def test_without_repetition_column_trial_is_null(raw, tmp_path):
    save_manifest(raw, manifest(raw).drop(columns=["repetition", "gloss"]))
    out = tmp_path / "s.parquet"
    ingest(raw, out)
    _, meta = load_sequences(out)
    assert meta["trial"].isna().all() and meta["sequence_id"].iloc[0] == "sign001_s01"
    assert meta["label_name"].iloc[0] == "sign001"


@pytest.mark.parametrize("subset", sorted(SUBSETS))
def test_landmark_subsets(raw, tmp_path, subset):
    idx, names, bones = landmark_subset(subset)
    k = {"both_hands": 42, "left_hand": 21, "right_hand": 21, "pose": 33, "all": 75}[subset]
    assert len(idx) == len(names) == len(set(names)) == k
    assert all(0 <= p < k and 0 <= c < k for p, c in bones)
    out = tmp_path / "s.parquet"
    ingest(raw, out, landmarks=subset)
    seqs, meta = load_sequences(out)
    arr = np.load(raw / meta["source"][3]).reshape(-1, 75, 3)
    assert np.array_equal(seqs[3], arr[:, idx])
    assert read_info(out).landmark_names == names
    firsts = {
        "both_hands": {0: "left_wrist", 21: "right_wrist"},
        "left_hand": {0: "left_wrist"},
        "right_hand": {0: "right_wrist"},
        "pose": {0: "pose_nose", 15: "pose_left_wrist"},
        "all": {0: "pose_nose", 33: "left_wrist", 54: "right_wrist"},
    }
    assert {i: names[i] for i in firsts[subset]} == firsts[subset]


def test_unknown_subset_is_refused():
    with pytest.raises(ValueError, match="unknown landmark subset 'face'"):
        landmark_subset("face")


def _bad_array(raw: Path, rel: str, array) -> None:
    path = raw / rel
    if isinstance(array, bytes):
        path.write_bytes(array)
    else:
        np.save(path, array)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (
            np.zeros((5, 224), np.float32),
            r"array of shape \(5, 224\), expected \(T, 225\) or \(T, 75, 3\)",
        ),
        (np.zeros((5, 75, 2), np.float32), r"array of shape \(5, 75, 2\)"),
        (np.zeros(225, np.float32), r"array of shape \(225,\)"),
        (np.zeros((0, 225), np.float32), r"sample has no frames \(T = 0\)"),
        (
            np.full((4, 225), np.nan, np.float32),
            r"504 NaN value\(s\) \(undetected landmarks\?\) in 4 of 4 frames, first frame 0; use "
            "missing_landmarks: zero",
        ),
        (np.full((4, 75, 3), np.inf), r"504 infinite value\(s\)"),
        (np.array([["a"] * 225] * 3), "array of dtype <U1"),
        (b"\x93NUMPY garbage", "not a readable .npy"),
        (b"hello", "not a readable .npy"),
    ],
)
def test_bad_sample_files_are_refused_naming_the_file(raw, tmp_path, array, match):
    rel = manifest(raw)["path"][7]
    _bad_array(raw, rel, array)
    expect_refusal(raw, tmp_path / "s.parquet", f"{rel}: {match}")


def test_a_missing_sample_file_is_named(raw, tmp_path):
    rel = manifest(raw)["path"][3]
    (raw / rel).unlink()
    expect_refusal(raw, tmp_path / "s.parquet", f"{rel}: sample file .* does not exist")


def test_nan_outside_the_stored_subset_is_ignored(raw, tmp_path):
    rel = manifest(raw)["path"][0]
    arr = np.load(raw / rel).reshape(-1, 75, 3)
    arr[:, 25:33] = np.nan  # legs out of the image: pose only
    np.save(raw / rel, arr.reshape(-1, 225))
    ingest(raw, tmp_path / "hands.parquet")  # both_hands: fine
    n_nan = 8 * 3 * len(arr)
    expect_refusal(raw, tmp_path / "pose.parquet", f"{rel}: {n_nan} NaN", landmarks="pose")


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("signer", "0", "signer '0' outside 1..25"),
        ("signer", "26", "signer '26' outside 1..25"),
        ("signer", "x", "signer 'x' outside"),
        ("sign", "451", "unknown sign '451': expected an integer in 1..450"),
        ("sign", "abc", "unknown sign 'abc'"),
        ("sign", "2.5", "unknown sign '2.5'"),
        ("repetition", "0", "repetition '0' is not an integer >= 1"),
        ("path", "", "empty path"),
    ],
)
def test_bad_manifest_rows_are_refused_naming_manifest_line(raw, tmp_path, column, value, match):
    table = manifest(raw)
    table.loc[4, column] = value
    save_manifest(raw, table)
    expect_refusal(raw, tmp_path / "s.parquet", rf"manifest.csv:6.*: {match}")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop(columns=["signer"]), r"manifest lacks column\(s\) \['signer'\]"),
        (lambda t: t.iloc[:0], "manifest lists no samples"),
        (lambda t: pd.concat([t, t.iloc[[2]]]), "duplicate sample: same path as line 4"),
        (
            lambda t: pd.concat([t, t.iloc[[2]].assign(path="copy.npy")]),
            "duplicate sample: same sign, signer and repetition as line 4",
        ),
        (lambda t: t.assign(gloss=t["gloss"].where(t.index != 1, "other")), "more than one"),
    ],
)
def test_bad_manifests_are_refused(raw, tmp_path, change, match):
    shutil.copy(raw / manifest(raw)["path"][2], raw / "copy.npy")
    save_manifest(raw, change(manifest(raw)))
    expect_refusal(raw, tmp_path / "s.parquet", f"manifest.csv.*{match}")


def test_missing_or_odd_manifests(tmp_path):
    expect_refusal(tmp_path / "none.csv", tmp_path / "a.parquet", "none.csv: manifest does not")
    (tmp_path / "m.json").write_text("{}")
    expect_refusal(tmp_path / "m.json", tmp_path / "b.parquet", "must be a .csv or .parquet")
    (tmp_path / "empty").mkdir()
    expect_refusal(tmp_path / "empty", tmp_path / "c.parquet", "empty: expected exactly one")


def test_skip_bad_writes_good_samples_and_a_rejection_table(raw, tmp_path):
    table = manifest(raw)
    _bad_array(raw, table["path"][0], b"garbage")
    (raw / table["path"][1]).unlink()
    table.loc[2, "signer"] = "99"
    save_manifest(raw, table)
    out = tmp_path / "s.parquet"
    n, rejected = ingest(raw, out, skip_bad=True)
    assert n == len(table) - 3 and len(rejected) == 3 and len(load_sequences(out)[0]) == n
    rows = pd.read_csv(f"{out}.rejected.tsv", sep="\t")
    assert rows["source"].tolist() == table["path"][:3].tolist()
    assert rows["reason"].str.contains("not a readable|does not exist|outside 1..25").all()
    # duplicates are never skipped
    save_manifest(raw, pd.concat([table, table.iloc[[5]]]))
    expect_refusal(raw, tmp_path / "d.parquet", "duplicate sample", skip_bad=True)


# ------------------------------------------------------- undetected hands and the metric
def test_missing_hands_policy_and_hand_metric_stays_finite(raw, tmp_path):
    table = manifest(raw)
    a = np.load(raw / table["path"][0]).reshape(-1, 75, 3)
    a[1:3, 33:54] = np.nan  # left hand not detected in frames 1-2 (NaN convention)
    np.save(raw / table["path"][0], a.reshape(-1, 225))
    b = np.load(raw / table["path"][1]).reshape(-1, 75, 3)
    b[:, 54:75] = 0.0  # right hand never detected (zeros convention)
    b[0, 33:54] = 0.0  # and no hand at all in frame 0
    np.save(raw / table["path"][1], b.reshape(-1, 225))
    expect_refusal(raw, tmp_path / "r.parquet", rf"{table['path'][0]}: 126 NaN value\(s\)")
    out = tmp_path / "z.parquet"
    ingest(raw, out, missing="zero")
    seqs, meta = load_sequences(out)
    assert read_info(out).source_info["zero_filled_values"] == 126
    row = meta.index[meta["source"] == table["path"][0]][0]
    assert (seqs[row][1:3, :21] == 0).all() and np.isfinite(seqs[row]).all()
    for metric in ("hand", "procrustes"):
        d = cdist(seqs, metric=metric)
        assert np.isfinite(d).all() and np.array_equal(d, d.T) and (np.diag(d) == 0).all()
        assert (d[row][np.arange(len(d)) != row] > 0).all()


def test_hand_metric_needs_hand_landmarks(raw, tmp_path):
    ingest(raw, tmp_path / "all.parquet", landmarks="all")
    seqs, _ = load_sequences(tmp_path / "all.parquet")
    with pytest.raises(ValueError, match=r"K = 21 \* H"):
        cdist(seqs[:2], metric="hand")
    ingest(raw, tmp_path / "right.parquet", landmarks="right_hand")
    seqs, _ = load_sequences(tmp_path / "right.parquet")
    assert np.isfinite(cdist(seqs[:5], metric="hand")).all()


# ---------------------------------------------------------------------- signer protocol
def test_signer_protocol_split(base, tmp_path):
    ingest(base, tmp_path / "s.parquet")
    _, meta = load_sequences(tmp_path / "s.parquet")
    table = assign_splits(meta, SIGNER_PROTOCOL)
    signers = table.groupby("split")["subject"].apply(lambda s: sorted(set(s))).to_dict()
    assert signers == {
        "train": list(range(1, 15)),
        "val": list(range(15, 19)),
        "test": list(range(19, 26)),
    }
    assert table["split"].value_counts().to_dict() == {"train": 28, "test": 14, "val": 8}
    for name in ("signum.yaml", "signum_demo.yaml", "signum_midscale.yaml"):
        config = yaml.safe_load((ROOT / "config" / name).read_text())
        (dataset,) = config["datasets"].values()
        assert dataset["protocols"] == {"signer": SIGNER_PROTOCOL}
        assert dataset["landmarks"] == "both_hands" and config["teacher"]["metric"] == "hand"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda d: d.pop("manifest"), "is not valid under any of the given schemas"),
        (lambda d: d.update(synthetic_signum={"n_signs": 3}), "is valid under each of"),
        (lambda d: d.update(landmarks="face"), "'face' is not one of"),
        (lambda d: d.update(source="synthetic"), "should not be valid under"),
        (
            lambda d: d.pop("manifest") and d.update(synthetic_signum={"n_signers": 26}),
            "26 is greater than the maximum of 25",
        ),
    ],
)
def test_config_schema_for_signum(patch, message):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config" / "signum.yaml").read_text())
    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    validate(yaml.safe_load(yaml.safe_dump(config)), schema)  # the shipped config is valid
    for shipped in ("signum_demo.yaml", "signum_midscale.yaml"):
        validate(yaml.safe_load((ROOT / "config" / shipped).read_text()), schema)
    patch(config["datasets"]["signum"])
    with pytest.raises(WorkflowError, match=message):
        validate(config, schema)


# ---------------------------------------------------------------- the synthetic writer
def test_synthetic_writer_is_deterministic(tmp_path):
    cfg = SignumSyntheticConfig(
        n_signs=3, n_signers=4, n_repetitions=2, min_frames=5, max_frames=12
    )
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg.seed = seed
        out = tmp_path / name
        write_synthetic_signum(out, cfg)
        runs[name] = {p.relative_to(out).as_posix(): sha(p) for p in out.rglob("*") if p.is_file()}
    assert len(runs["a"]) == 3 * 4 * 2 + 1 and runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys()
    assert all(runs["a"][k] != runs["c"][k] for k in runs["a"])


def test_synthetic_writer_hands_come_from_the_two_hands_generator(tmp_path):
    cfg = SignumSyntheticConfig(n_signs=2, n_signers=3, min_frames=10, max_frames=20, seed=4)
    write_synthetic_signum(tmp_path / "raw", cfg)
    seqs, meta, _ = generate(cfg.synthetic_config())
    table = manifest(tmp_path / "raw")
    assert table["gloss"].tolist() == meta["label_name"].tolist()
    for seq, rel in zip(seqs, table["path"], strict=True):
        arr = np.load(tmp_path / "raw" / rel).reshape(-1, 75, 3).astype(np.float64)
        assert arr.shape[0] == seq.shape[0]
        for o, h in ((33, 0), (54, 21)):  # x relative to the wrist, back in metres
            got = (arr[:, o : o + 21, 0] - arr[:, o : o + 1, 0]) * W
            want = seq[:, h : h + 21, 0] - seq[:, h : h + 1, 0]
            assert np.abs(got - want).max() < 1e-6
            assert (arr[:, o, 2] == 0).all()  # hand depth is relative to the wrist
        for pose, hand in ((15, 33), (16, 54), (17, 50), (19, 38), (21, 36)):  # wrist, pinky, ...
            assert np.array_equal(arr[:, pose, :2], arr[:, hand, :2])
        assert (0 < arr[:, :23, :2]).all() and (arr[:, :23, :2] < 1).all()  # upper body in view


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_signers": 26}, "n_signers must be <= 25"),
        ({"n_signs": 451}, "n_signs must be <= 450"),
        ({"n_signs": 1}, "n_signs must be an integer >= 2"),
        ({"n_repetitions": 0}, "n_repetitions must be an integer >= 1"),
        ({"layout": "wide"}, "layout must be one of"),
    ],
)
def test_bad_synthetic_settings(change, message):
    with pytest.raises(ValueError, match=f"synthetic SIGNUM config: {message}"):
        SignumSyntheticConfig(**change)


def test_writer_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="raw: already exists"):
        write_synthetic_signum(tmp_path / "raw", SignumSyntheticConfig(**SMALL))
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
    (tmp_path / "raw" / "keep.txt").unlink()  # an empty folder (as Snakemake may leave) is fine
    write_synthetic_signum(tmp_path / "raw", SignumSyntheticConfig(**SMALL))
    assert len(manifest(tmp_path / "raw")) == 50


# ------------------------------------------------------------------------- command line
def test_command_line(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "s.parquet"
    args = ["--n-signs", "2", "--n-signers", "3", "--min-frames", "4", "--max-frames", "4"]
    assert main(["synthetic-signum", str(raw), *args, "--layout", "stacked"]) == 0
    assert main(["ingest", "signum", str(raw), str(out), "--landmarks", "right_hand"]) == 0
    seqs, meta = load_sequences(out)
    assert len(seqs) == 6 and meta["subject"].max() == 3 and seqs[0].shape == (4, 21, 3)
    np.save(raw / "s02" / "sign001_r1.npy", np.zeros((4, 7)))
    assert main(["ingest", "signum", str(raw / "manifest.csv"), str(tmp_path / "b.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"geokd: error: {raw / 's02' / 'sign001_r1.npy'}: array of shape (4, 7), "
        "expected (T, 225) or (T, 75, 3)"
    )
    assert main(["synthetic-signum", str(raw)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_docstring_examples():
    import doctest

    import geokd.data.signum

    assert doctest.testmod(geokd.data.signum, raise_on_error=False).failed == 0


# ------------------------------------------------------------------------------ workflow
def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, check=check, timeout=900)


def workdir(tmp_path: Path, config: str) -> Path:
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / config, work / "config" / "config.yaml")
    return work


@pytest.mark.slow  # ~30 s on a Zen 1
@pytest.mark.workflow
def test_real_signum_config_plans_and_names_a_missing_manifest(tmp_path):
    work = workdir(tmp_path, "signum.yaml")
    done = snakemake(work, "-n", "results/report.html", check=False)
    assert done.returncode != 0
    assert "data/raw/signum/manifest.csv" in done.stdout + done.stderr
    write_synthetic_signum(work / "data/raw/signum", SignumSyntheticConfig(**SMALL))
    out = snakemake(work, "-n", "results/report.html").stdout
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.MULTILINE))
    assert jobs["ingest_signum"] == "1" and "synthetic_signum" not in jobs
    # 5 model families, each one job training its 3 seeds at once (training.seeds_per_job)
    assert {r: n for r, n in jobs.items() if r.startswith("train")} == {"train_seeds0_1_2": "5"}
    assert jobs["distance_matrix"] == "6"  # 2 metrics x (train, val, test) x train


@pytest.mark.workflow
@pytest.mark.slow
def test_signum_demo_runs_end_to_end(tmp_path):
    """config/signum_demo.yaml as shipped: synthetic SIGNUM files -> reader -> ... -> report."""
    work = workdir(tmp_path, "signum_demo.yaml")
    snakemake(work, "results/report.html")
    raw, store = work / "data/raw/signum_demo", work / "data/interim/signum_demo/sequences.parquet"
    table = manifest(raw)
    assert len(table) == 6 * 25 and np.load(raw / table["path"][0]).shape[1] == 225
    seqs, meta = load_sequences(store)
    assert len(seqs) == 150 and {s.shape[1] for s in seqs} == {42}
    assert set(meta["source"]) == set(table["path"])
    assert read_info(store).source_info["reader"] == "signum"
    res = work / "results/signum_demo/signer"
    split = pd.read_csv(res / "split.tsv", sep="\t")
    assert split["split"].value_counts().to_dict() == {"train": 84, "test": 42, "val": 24}
    shapes = {"train-train": (84, 84), "val-train": (24, 84), "test-train": (42, 84)}
    for metric in ("hand", "procrustes"):
        for pair, shape in shapes.items():
            d = np.load(res / f"distances/{metric}/{pair}.npy")
            assert d.shape == shape and np.isfinite(d).all()
    summary = read_summary(res / "summary.json")  # with the measured times
    assert set(summary["knn"]) == {"hand", "procrustes"}
    assert summary["inference"]["knn_metric"] == "hand"
    for model in ("transformer", "distilled"):
        assert sorted(summary[model]["per_seed"]) == ["0", "1"]
        run = json.loads((res / f"models/{model}/seed0/metrics.json").read_text())
        assert run["selection"] == "best val accuracy" and run["val"]["n"] == 24
        assert run["test"]["n"] == 42 and run["n_classes"] == 6
    assert summary["knn"]["hand"]["k1_accuracy"] > 0.5  # 6 signs: chance is 1/6
    assert "signum_demo" in (work / "results/report.html").read_text()
    study = json.loads((res / "budgets/summary.json").read_text())  # the demo's small study
    assert {r["budget"] for r in study["rows"]} == set(range(1, 15))  # 14: the full-label row
    assert {r["arm"] for r in study["rows"]} == {
        "knn",
        "labels",
        "distilled",
        "geometry_ssl",
        "self_ssl",
    }
    for rule in ("synthetic_signum", "ingest_signum"):
        assert any((work / "logs" / rule).rglob("*.log")), rule
        assert any((work / "benchmarks" / rule).rglob("*.tsv")), rule


def test_the_midscale_config_is_100_signs_of_80_frames_and_1_6e10_frame_pairs():
    config = yaml.safe_load((ROOT / "config" / "signum_midscale.yaml").read_text())
    (dataset,) = config["datasets"].values()
    gen = dataset["synthetic_signum"]
    assert (gen["n_signs"], gen["n_signers"], gen["n_repetitions"]) == (100, 25, 1)
    assert gen["min_frames"] == gen["max_frames"] == 80 and dataset["metrics"] == ["hand"]
    per_split = {k: 100 * len(v) for k, v in dataset["protocols"]["signer"].items()}
    assert per_split == {"train": 1400, "val": 400, "test": 700}
    n = per_split["train"]
    pairs = (n * (n - 1) // 2 + (per_split["val"] + per_split["test"]) * n) * 80 * 80
    assert 1.6e10 < pairs < 1.62e10
