"""Training: losses, determinism, selection, checkpoints, latency, the end-to-end run."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from geokd.data.splits import write_split
from geokd.data.store import StoreInfo, write_store
from geokd.errors import InputError
from geokd.models.checkpoint import latency_ms_per_sample, load_checkpoint, save_checkpoint
from geokd.models.losses import distillation_loss
from geokd.models.runs import run_training
from geokd.models.student import SkeletonTransformer, StudentConfig, prepare
from geokd.models.teacher import write_soft_labels
from geokd.models.train import TrainConfig, evaluate, predict_proba, train
from geokd.provenance import git_revision
from tests.helpers.toy import TINY, K, make_sequences

FAST = dict(epochs=4, batch_size=16, lr=1e-2, warmup_epochs=1, progress=False, num_threads=1)


@pytest.fixture(scope="module")
def data():
    seqs, y = make_sequences(48, seed=10)
    X, L = prepare(seqs, 24)
    test_seqs, y_test = make_sequences(24, seed=11)
    Xt, Lt = prepare(test_seqs, 24)
    P = np.full((48, 3), 0.1)
    P[np.arange(48), y] = 0.8
    return X, L, y, P, (Xt, Lt, y_test)


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_distillation_loss_matches_hand_computation():
    z = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = torch.tensor([0, 2])
    P = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.4, 0.6]])  # a zero: 0 log 0 = 0
    a, b, T = 0.3, 0.7, 2.0
    ce = kl = 0.0
    for i in range(2):
        zi = z[i].tolist()
        lse = math.log(sum(math.exp(v) for v in zi))
        ce += (lse - zi[y[i]]) / 2
        q = [math.exp(v / T) / sum(math.exp(u / T) for u in zi) for v in zi]
        kl += sum(p * math.log(p / qc) for p, qc in zip(P[i].tolist(), q, strict=True) if p > 0) / 2
    total, ce_t, kl_t = distillation_loss(z, y, P, a, b, T)
    assert math.isclose(ce_t.item(), ce, rel_tol=1e-6)
    assert math.isclose(kl_t.item(), kl, rel_tol=1e-6)
    assert math.isclose(total.item(), a * ce + b * T**2 * kl, rel_tol=1e-6)
    # direction: KL(teacher || student), not KL(student || teacher)
    q = torch.softmax(z / T, dim=1)
    reverse = (q * (q.log() - P.clamp_min(1e-30).log())).sum(dim=1).mean()
    assert not math.isclose(kl_t.item(), reverse.item(), rel_tol=1e-3)
    plain, ce_only, none = distillation_loss(z, y, None)
    assert none is None and torch.equal(plain, ce_only)
    assert math.isclose(plain.item(), ce, rel_tol=1e-6)


def test_one_step_reduces_the_loss_on_a_fixed_batch(data):
    X, L, y, P, _ = data
    torch.manual_seed(0)
    model = SkeletonTransformer(K * 3, 3, StudentConfig(**TINY, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    yb, Pb = torch.as_tensor(y), torch.as_tensor(P, dtype=torch.float32)
    before, _, _ = distillation_loss(model(X, L), yb, Pb)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _, _ = distillation_loss(model(X, L), yb, Pb)
    assert after.item() < before.item()


@pytest.mark.parametrize("mode", ["transformer", "distilled"])
def test_same_seed_same_run_other_seed_differs(data, mode):
    X, L, y, P, test = data
    scfg = StudentConfig(**TINY, augment_rotate=20, augment_time_warp=0.1, augment_frame_drop=0.1)
    runs = [
        train(X, L, y, P, TrainConfig(**FAST, mode=mode, seed=s), scfg, {"test": test})
        for s in (3, 3, 4)
    ]
    (m1, h1), (m2, h2), (m3, h3) = runs
    assert h1["loss"] == h2["loss"] and h1["eval"] == h2["eval"] and states_equal(m1, m2)
    assert h1["loss"] != h3["loss"] and not states_equal(m1, m3)
    assert len(h1["loss"]) == 4 and h1["stopped_epoch"] == 4 and h1["best_epoch"] is None
    assert (h1["kl"][0] is None) == (mode == "transformer")
    assert h1["selection"] == "last epoch"


def test_eval_sets_do_not_change_training(data):
    X, L, y, _, test = data
    scfg = StudentConfig(**TINY)
    m1, h1 = train(X, L, y, None, TrainConfig(**FAST), scfg, {"test": test})
    m2, h2 = train(X, L, y, None, TrainConfig(**FAST), scfg)
    assert states_equal(m1, m2) and h1["loss"] == h2["loss"]
    assert h1["eval"]["test"]["epoch"] == [1, 2, 3, 4] and h2["eval"] == {}


def test_training_restores_global_torch_state(data):
    X, L, y, _, _ = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    train(
        X, L, y, None, TrainConfig(**{**FAST, "epochs": 1, "num_threads": 1}), StudentConfig(**TINY)
    )
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()


def test_val_fraction_and_early_stopping(data):
    X, L, y, _, _ = data
    cfg = TrainConfig(**{**FAST, "epochs": 30, "lr": 0.0}, val_fraction=0.25, patience=2)
    _, h = train(X, L, y, None, cfg, StudentConfig(**TINY))  # lr 0: val never improves
    assert h["n_train"] == 36 and h["selection"] == "best val accuracy"
    assert h["best_epoch"] == 1 and h["stopped_epoch"] == 3 and len(h["loss"]) == 3
    assert h["eval"]["val"]["epoch"] == [1, 2, 3]


def test_val_set_selects_the_best_epoch(data):
    X, L, y, _, val = data
    cfg = TrainConfig(**{**FAST, "epochs": 8})
    model, h = train(X, L, y, None, cfg, StudentConfig(**TINY), {"other": val}, val=val)
    log, best = h["eval"]["val"], h["best_epoch"]
    assert log["accuracy"][best - 1] == max(log["accuracy"]) and h["stopped_epoch"] == 8
    result = evaluate(model, *val)
    assert result["accuracy"] == log["accuracy"][best - 1]
    assert math.isclose(result["cross_entropy"], log["cross_entropy"][best - 1], rel_tol=1e-6)
    with pytest.raises(ValueError, match="'val'"):
        train(X, L, y, None, cfg, StudentConfig(**TINY), {"val": val}, val=val)


def test_input_checks(data):
    X, L, y, P, _ = data
    with pytest.raises(ValueError, match="needs teacher_P"):
        train(X, L, y, None, TrainConfig(**FAST, mode="distilled"), StudentConfig(**TINY))
    with pytest.raises(ValueError, match="rows"):
        train(X, L, y, P[:5], TrainConfig(**FAST, mode="distilled"), StudentConfig(**TINY))
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="kd")
    paper = TrainConfig.paper("utd_mhad")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.shuffle) == (2000, 16, 1e-4, False)
    assert TrainConfig.paper("signum", epochs=3).epochs == 3


def test_checkpoint_round_trip(tmp_path, data):
    X, L, y, _, test = data
    scfg, cfg = StudentConfig(**TINY, pooling="cls"), TrainConfig(**FAST, seed=7)
    model, _ = train(X, L, y, None, cfg, scfg)
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint(path, model, scfg, cfg, {"data_sha256": "abc"}, epoch=4)
    # the checkpoint and its checksum sidecar, no temporary left
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt", "model.pt.json"]
    loaded, meta = load_checkpoint(path)
    assert not loaded.training and states_equal(model, loaded)
    assert np.array_equal(predict_proba(model, *test[:2]), predict_proba(loaded, *test[:2]))
    assert meta["student_config"]["pooling"] == "cls" and meta["train_config"]["lr"] == cfg.lr
    assert meta["seed"] == 7 and meta["epoch"] == 4 and meta["extra"] == {"data_sha256": "abc"}
    rev = meta["git_revision"]
    assert rev == git_revision() and (rev == "unknown" or len(rev) == 40)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_evaluate_predict_and_latency(data):
    X, L, y, _, (Xt, Lt, yt) = data
    model, _ = train(X, L, y, None, TrainConfig(**FAST), StudentConfig(**TINY))
    proba = predict_proba(model, Xt, Lt, batch_size=5)
    assert proba.shape == (24, 3) and np.allclose(proba.sum(axis=1), 1)
    result = evaluate(model, Xt, Lt, yt)
    assert result["n"] == 24 and np.isclose(result["accuracy"], np.mean(proba.argmax(1) == yt))
    assert result["cross_entropy"] > 0 and len(result["confusion"]) == 3
    for b in (1, 8):
        assert latency_ms_per_sample(model, Xt, Lt, b, warmup=1, repeats=3) > 0


def write_toy_dataset(root, n_per_cell=2):
    """A store of 3 classes x 4 subjects, a split table (1-2 train, 3 val, 4 test) and a
    teacher (smoothed one-hot) for the training ids."""
    seqs, y = make_sequences(3 * 4 * n_per_cell, seed=20)
    subject = np.repeat(np.arange(1, 5), 3 * n_per_cell)
    meta = pd.DataFrame(
        {
            "sequence_id": [f"s{i:03d}" for i in range(len(y))],
            "label": y,
            "label_name": [f"class{c}" for c in y],
            "subject": subject,
            "trial": np.tile(np.repeat(np.arange(1, n_per_cell + 1), 3), 4),
            "source": "synthetic",
            "sha256": "0" * 64,
        }
    )
    info = StoreInfo(dataset="toy", landmark_names=[f"j{k}" for k in range(K)], units="m")
    store = root / "sequences.parquet"
    write_store(store, seqs, meta, info)
    split = root / "split.tsv"
    table = write_split(store, split, {"train": [1, 2], "val": [3], "test": [4]})
    train_rows = table[table["split"] == "train"]
    P = np.full((len(train_rows), 3), 0.05)
    P[np.arange(len(train_rows)), train_rows["label"]] = 0.9
    soft = root / "soft.parquet"
    write_soft_labels(soft, train_rows["sequence_id"].tolist()[::-1], P[::-1])  # other order
    return store, split, soft


def test_run_training_end_to_end(tmp_path):
    store, split, soft = write_toy_dataset(tmp_path, n_per_cell=6)
    out = tmp_path / "out"
    cfg = TrainConfig(**{**FAST, "epochs": 25})
    summary = run_training(store, split, soft, out, "distilled", 5, cfg, StudentConfig(**TINY))
    assert summary["test"]["accuracy"] > 0.6 and summary["test"]["n"] == 18  # chance 1/3
    assert summary["mode"] == "distilled" and summary["seed"] == 5
    assert summary["selection"] == "best val accuracy" and summary["val"]["n"] == 18
    assert summary["class_names"] == ["class0", "class1", "class2"]
    assert set(summary["inputs"]) == {"store", "split_table", "soft_labels"}
    timings = json.loads((out / "timings.json").read_text())
    assert timings["latency_ms_per_sample"]["batch_1"] > 0 and timings["train_seconds"] > 0
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(summary))
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == history["stopped_epoch"] and "test" in history["eval"]
    _, meta = load_checkpoint(out / "model.pt")
    assert meta["seed"] == 5 and meta["epoch"] == summary["epoch"]
    assert meta["extra"]["inputs"]["store"]["sha256"] == summary["inputs"]["store"]["sha256"]


def test_run_training_checks_teacher_ids(tmp_path):
    store, split, soft = write_toy_dataset(tmp_path)
    write_soft_labels(soft, ["s000", "nope"], np.full((2, 3), 1 / 3))
    with pytest.raises(InputError, match="soft.parquet"):
        run_training(
            store,
            split,
            soft,
            tmp_path / "o",
            "distilled",
            0,
            TrainConfig(**FAST),
            StudentConfig(**TINY),
        )
    with pytest.raises(ValueError, match="soft_labels_path"):
        run_training(store, split, None, tmp_path / "o", "distilled", 0, TrainConfig(**FAST))
    summary = run_training(
        store,
        split,
        None,
        tmp_path / "o",
        "transformer",
        0,
        TrainConfig(**{**FAST, "epochs": 1}),
        StudentConfig(**TINY),
    )
    assert "soft_labels" not in summary["inputs"] and summary["epochs_run"] == 1
