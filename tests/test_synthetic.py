import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest

from geokd.data.skeleton import HAND_BONES, HAND_LANDMARKS, UTD_MHAD_BONES, UTD_MHAD_JOINTS
from geokd.data.store import StoreInfo, load_sequences, read_info
from geokd.data.synthetic import SyntheticConfig, generate, write_synthetic

SMALL = {"n_classes": 3, "n_subjects": 3, "n_trials": 2, "min_frames": 10, "max_frames": 25}
COLUMNS = ["sequence_id", "label", "label_name", "subject", "trial", "source", "sha256"]


@pytest.fixture(scope="module")
def default():
    return generate(SyntheticConfig())


def bone_lengths(seq, bones):
    """(T, B) distances between the joints of each bone."""
    bones = np.asarray(bones)
    return np.linalg.norm(seq[:, bones[:, 1]] - seq[:, bones[:, 0]], axis=-1)


def features(seq, length=16):
    """Frames centred on their mean, unit RMS scale, resampled to ``length`` frames, flat."""
    x = seq - seq.mean(axis=1, keepdims=True)
    x = x / np.sqrt((x**2).mean())
    t = np.linspace(0, len(x) - 1, length)
    i = np.minimum(t.astype(int), len(x) - 2)
    w = (t - i)[:, None, None]
    return (x[i] * (1 - w) + x[i + 1] * w).ravel()


def accuracy(cfg):
    """1-nearest-neighbour accuracy: train on odd subjects, test on even ones."""
    seqs, meta, _ = generate(cfg)
    f = np.stack([features(s) for s in seqs])
    y, subject = meta["label"].to_numpy(), meta["subject"].to_numpy()
    train, test = subject % 2 == 1, subject % 2 == 0
    d = ((f[test][:, None] - f[train][None]) ** 2).sum(-1)
    return float((y[train][d.argmin(axis=1)] == y[test]).mean())


def test_default_dataset_follows_the_store_contract(default):
    seqs, meta, info = default
    cfg = SyntheticConfig()
    assert len(seqs) == len(meta) == 8 * 6 * 3
    assert list(meta.columns) == COLUMNS
    assert meta["sequence_id"].is_unique and meta["sequence_id"].iloc[0] == "c00_s01_t1"
    assert all(re.fullmatch(r"c\d{2}_s\d{2}_t\d", s) for s in meta["sequence_id"])
    assert sorted(meta["label"].unique()) == list(range(8))
    assert sorted(meta["subject"].unique()) == list(range(1, 7))
    assert sorted(meta["trial"].unique()) == [1, 2, 3]
    assert (meta.groupby(["label", "subject", "trial"]).size() == 1).all()
    names = meta.groupby("label")["label_name"].unique()
    assert all(len(n) == 1 and n[0].startswith(f"c{label:02d}_") for label, n in names.items())
    assert meta.loc[meta["label"] == 3, "label_name"].iloc[0] == "c03_squat"
    assert set(meta["source"]) == {"synthetic:seed=0"}
    lengths = set()
    for seq, sha in zip(seqs, meta["sha256"], strict=True):
        assert seq.dtype == np.float64 and seq.shape[1:] == (20, 3)
        assert 30 <= len(seq) <= 60 and np.isfinite(seq).all()
        assert sha == hashlib.sha256(seq.astype("<f8").tobytes()).hexdigest()
        lengths.add(len(seq))
    assert len(lengths) > 5
    assert info.dataset == "synthetic" and info.units == "m"
    assert info.landmark_names == list(UTD_MHAD_JOINTS)
    assert info.bones == list(UTD_MHAD_BONES)
    assert info.coordinate_system and info.source_info == dataclasses.asdict(cfg)


def test_store_round_trip_is_exact(tmp_path):
    cfg = SyntheticConfig(**SMALL, dataset="toy")
    path = tmp_path / "toy.parquet"
    assert write_synthetic(path, cfg) == 18
    seqs, meta, info = generate(cfg)
    back, back_meta = load_sequences(path)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, back, strict=True))
    assert back_meta[COLUMNS].astype(str).equals(meta.astype(str))
    assert set(back_meta["dataset"]) == {"toy"}
    assert read_info(path) == StoreInfo.from_json(info.to_json()) == info


def test_same_seed_gives_identical_bytes_and_another_seed_other_data():
    a, meta_a, _ = generate(SyntheticConfig(**SMALL))
    b, meta_b, _ = generate(SyntheticConfig(**SMALL))
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))
    assert meta_a.equals(meta_b)
    c, meta_c, _ = generate(SyntheticConfig(**SMALL, seed=1))
    assert not any(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a, c, strict=True))
    assert set(meta_c["source"]) == {"synthetic:seed=1"}


def test_a_sequence_does_not_change_when_the_dataset_grows():
    small, meta, _ = generate(SyntheticConfig(**SMALL))
    big_cfg = {**SMALL, "n_classes": 5, "n_subjects": 5, "n_trials": 3}
    big, big_meta, _ = generate(SyntheticConfig(**big_cfg))
    where = {sid: i for i, sid in enumerate(big_meta["sequence_id"])}
    for seq, row in zip(small, meta.itertuples(), strict=True):
        j = where[row.sequence_id]
        assert big[j].tobytes() == seq.tobytes()
        assert big_meta.loc[j, "label_name"] == row.label_name


def test_the_skeleton_is_articulated_with_per_subject_bone_lengths():
    seqs, meta, _ = generate(SyntheticConfig(noise=0.0, n_subjects=4, n_trials=2))
    ratios = {}
    for seq, subject in zip(seqs, meta["subject"], strict=True):
        bl = bone_lengths(seq, UTD_MHAD_BONES)  # (T, B)
        assert (bl.std(axis=0) / bl.mean(axis=0)).max() < 1e-9  # rigid bones over time
        assert 0.03 < bl.min() and bl.max() < 0.6
        assert np.ptp(seq, axis=0).max() > 0.2  # something moves by more than 20 cm
        ratios.setdefault(subject, []).append(bl[0] / bl[0].sum())  # global scale cancels
    for r in ratios.values():  # one body per subject ...
        assert np.ptp(np.array(r), axis=0).max() < 1e-9
    first = np.array([r[0] for r in ratios.values()])
    pairs = [np.abs(a - b).max() for i, a in enumerate(first) for b in first[i + 1 :]]
    assert min(pairs) > 1e-3  # ... and different bodies for different subjects


def test_sensor_noise_has_the_configured_scale():
    clean, _, _ = generate(SyntheticConfig(**SMALL, noise=0.0))
    noisy, _, _ = generate(SyntheticConfig(**SMALL, noise=0.02))
    residual = np.concatenate([(a - b).ravel() for a, b in zip(noisy, clean, strict=True)])
    assert residual.std() == pytest.approx(0.02, rel=0.05)


def test_default_problem_is_fair_and_difficulty_makes_it_harder():
    chance = 1 / 8
    acc = accuracy(SyntheticConfig())
    assert 3 * chance < acc < 1.0
    for seed in (1, 2):
        assert 3 * chance < accuracy(SyntheticConfig(seed=seed)) < 1.0
    easy = np.mean([accuracy(SyntheticConfig(difficulty=0.1, seed=s)) for s in range(3)])
    hard = np.mean([accuracy(SyntheticConfig(difficulty=0.9, seed=s)) for s in range(3)])
    assert hard < easy - 0.2


@pytest.mark.parametrize(("topology", "k"), [("hand", 21), ("two_hands", 42)])
def test_hand_topologies(topology, k):
    cfg = SyntheticConfig(**SMALL, topology=topology, noise=0.0)
    seqs, _, info = generate(cfg)
    hands = k // 21
    assert len(info.landmark_names) == k and all(s.shape[1:] == (k, 3) for s in seqs)
    if hands == 1:
        assert info.landmark_names == list(HAND_LANDMARKS)
    else:
        assert info.landmark_names[0] == "left_wrist" and info.landmark_names[21] == "right_wrist"
    bones = [(p + 21 * h, c + 21 * h) for h in range(hands) for p, c in HAND_BONES]
    assert info.bones == bones
    moving = np.zeros(hands)
    for seq in seqs:
        bl = bone_lengths(seq, bones)
        assert (bl.std(axis=0) / bl.mean(axis=0)).max() < 1e-9
        assert 0.005 < bl.min() and bl.max() < 0.12
        for h in range(hands):  # hand shape (landmarks relative to the wrist) changes
            local = seq[:, 21 * h : 21 * (h + 1)] - seq[:, 21 * h : 21 * h + 1]
            moving[h] += np.ptp(local, axis=0).max() > 0.01
    assert (moving >= len(seqs) / 2).all()  # every hand moves in most sequences


@pytest.mark.slow  # 11,250 sequences: ~25 s; its speed is measured in bench/bench_signum_scale.py
def test_signum_scale_generation():
    cfg = SyntheticConfig(
        n_classes=450,
        n_subjects=25,
        n_trials=1,
        min_frames=80,
        max_frames=80,
        topology="two_hands",
        noise=0.002,
    )
    seqs, meta, _ = generate(cfg)
    assert len(seqs) == 11250 and {s.shape for s in seqs} == {(80, 42, 3)}
    assert (
        meta["label"].nunique() == 450 and meta.groupby("label")["label_name"].nunique().max() == 1
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_classes": 1}, "n_classes must be an integer >= 2"),
        ({"n_subjects": 0}, "n_subjects must be an integer >= 1"),
        ({"n_trials": 0}, "n_trials must be an integer >= 1"),
        ({"min_frames": 1, "max_frames": 5}, "min_frames must be an integer >= 2"),
        ({"min_frames": 40, "max_frames": 30}, r"max_frames must be an integer >= 40"),
        ({"noise": -0.1}, "noise must be a finite number >= 0"),
        ({"noise": float("nan")}, "noise must be a finite number"),
        ({"difficulty": 1.5}, r"difficulty must be a finite number in \[0.0, 1.0\]"),
        ({"difficulty": -0.1}, "difficulty must be a finite number"),
        ({"topology": "tail"}, "topology must be one of"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"n_classes": 8.0}, "n_classes must be an integer"),
        ({"n_trials": True}, "n_trials must be an integer"),
        ({"dataset": ""}, "dataset must be a non-empty name"),
    ],
)
def test_bad_configs_are_refused(change, message):
    with pytest.raises(ValueError, match=f"synthetic config: {message}"):
        SyntheticConfig(**change)
    cfg = SyntheticConfig()
    for key, value in change.items():  # a config changed after construction is checked too
        setattr(cfg, key, value)
    with pytest.raises(ValueError, match=message):
        generate(cfg)


def test_every_setting_has_a_typed_default_and_numbers_become_plain_python_ones():
    for f in dataclasses.fields(SyntheticConfig):  # the CLI parses options with these types
        assert type(f.default) in (int, float, str), f.name
    cfg = SyntheticConfig(n_classes=np.int64(3), noise=0, difficulty=np.float32(0.25))
    assert (type(cfg.n_classes), type(cfg.noise), type(cfg.difficulty)) == (int, float, float)
    assert json.loads(json.dumps(dataclasses.asdict(cfg)))["difficulty"] == 0.25
    assert isinstance(SyntheticConfig().noise, float) and isinstance(
        SyntheticConfig().difficulty, float
    )
