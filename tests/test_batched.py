"""Batched training (issue 23): several seeds as one model.

The batched student computes each member's forward pass as ``SkeletonTransformer`` does (every
architecture option, the streams folded into the projection, padding, a shared input); its
optimiser is ``torch.optim.Adam(W)`` bit for bit; a seed trained in a group ends with the bytes
it has when trained alone; and the batched trainer learns what the per-seed loop it replaced
learns (same losses to rounding without dropout).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from geokd.models.batched import BatchedStudent, Noise, dropout_generator
from geokd.models.config import StudentConfig, TrainConfig
from geokd.models.optim import FlatAdam, clip_rows_
from geokd.models.student import SkeletonTransformer, prepare
from geokd.models.train import train, train_many
from geokd.models.train_reference import train_reference

#: the UTD-MHAD recipe's architecture, smaller
BODY = dict(d_model=16, n_heads=2, n_layers=1, ff_dim=24, max_frames=12)
STREAMS = ["joints", "bones", "velocity"]
FAST = dict(epochs=3, batch_size=8, lr=1e-2, warmup_epochs=1, progress=False, num_threads=1)


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def bodies():
    """Smooth random motions of 20 landmarks (the Kinect skeleton's count, for the bones
    stream), 4-20 frames, 3 classes (how fast they move)."""
    rng = np.random.default_rng(3)
    seqs, y = [], []
    for i in range(36):
        T = int(rng.integers(4, 21))
        steps = (1 + i % 3) * 0.05 * rng.normal(size=(T, 20, 3))
        seqs.append(rng.normal(size=(1, 20, 3)) + np.cumsum(steps, axis=0))
        y.append(i % 3)
    return seqs, np.array(y)


def _members(cfg: StudentConfig, G: int, n_memory: int = 0) -> list[SkeletonTransformer]:
    out = []
    for s in range(G):
        torch.manual_seed(s)
        m = SkeletonTransformer(60, 3, cfg, n_memory)
        with torch.no_grad():  # non-trivial norms and biases
            for p in m.parameters():
                if p.ndim < 2:
                    p.add_(0.1 * torch.randn_like(p))
        out.append(m)
    return out


VARIANTS = {
    "recipe": dict(streams=STREAMS),
    "velocity scaled": dict(streams=STREAMS, velocity_scale=2.5),
    "bones only": dict(streams=["bones"]),
    "velocity, joints": dict(streams=["velocity", "joints"]),
    "post-LN relu": dict(norm_first=False, activation="relu", streams=STREAMS),
    "cls, learned": dict(pooling="cls", positional="learned", streams=["joints", "bones"]),
    "last, input LN": dict(pooling="last", input_layernorm=True, streams=STREAMS),
    "no projection": dict(
        input_projection=False, d_model=60, n_heads=4, positional="none", padding_mask=False
    ),
    "two layers": dict(n_layers=2, streams=STREAMS),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("resampling", ["nearest", "linear"])
def test_forward_is_each_members_skeleton_transformer(bodies, variant, resampling):
    cfg = StudentConfig(**{**BODY, **VARIANTS[variant]}, resampling=resampling)
    seqs, _ = bodies
    X, L = prepare(seqs, cfg.max_frames, resampling=resampling)
    members = _members(cfg, 3)
    model = BatchedStudent(members).eval()
    assert model.folded == (cfg.input_projection and not cfg.input_layernorm)
    with torch.no_grad():
        z, e = model(X.expand(3, *X.shape), L.expand(3, len(L)))  # (G, N, C), (G, N, d)
        z_shared, e_shared = model(X, L)  # one input for every member
        for g, m in enumerate(members):
            zg, eg = m.eval()(X, L, return_embedding=True)
            torch.testing.assert_close(z[g], zg, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(e[g], eg, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(z_shared, z, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(e_shared, e, rtol=1e-6, atol=1e-6)
    if resampling == "nearest" and cfg.padding_mask:
        assert (L < cfg.max_frames).any(), "the padded path is not exercised"


@pytest.mark.parametrize("variant", ["recipe", "cls, learned", "no projection"])
def test_training_pass_and_gradients_are_the_members(bodies, variant):
    """Train mode without dropout: the same function and the same gradients as each member."""
    cfg = StudentConfig(**{**BODY, **VARIANTS[variant]}, dropout=0.0)
    X, L = prepare(bodies[0], cfg.max_frames)
    members = _members(cfg, 2)
    model = BatchedStudent(members).train()
    Xg = torch.stack([X[:20], X[16:]])  # each member its own batch
    Lg = torch.stack([L[:20], L[16:]])
    z, _ = model(Xg, Lg)
    (z**2).sum().backward()
    for g, m in enumerate(members):
        m.train()
        (m(Xg[g], Lg[g]) ** 2).sum().backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(model.p(name).grad[g], p.grad, rtol=1e-4, atol=1e-5)


def test_members_come_back_whole():
    cfg = StudentConfig(**BODY, streams=STREAMS, head="nngk", nngk_k=3)
    members = _members(cfg, 3, n_memory=10)
    for m in members:
        m.nngk.memory.normal_()
        m.nngk.memory_y.random_(0, 3)
    model = BatchedStudent(members)
    for g, m in enumerate(members):
        assert states_equal(model.member(g), m)
    with torch.no_grad():
        model.flat[1].add_(1.0)
    assert states_equal(model.member(0), members[0])
    assert not states_equal(model.member(1), members[1])
    with pytest.raises(ValueError, match="one architecture"):
        BatchedStudent([members[0], SkeletonTransformer(60, 3, StudentConfig(**BODY))])


@pytest.mark.parametrize("decoupled", [True, False])
def test_flat_adam_is_torch_adam_bit_for_bit(decoupled):
    """Adam(W) over the flat (G, P) weights = torch.optim.Adam(W) per member, same bits."""
    cfg = StudentConfig(**BODY, streams=STREAMS)
    members = _members(cfg, 3)
    model = BatchedStudent(members)
    opt = FlatAdam(model.flat, model.n_matrix_columns, 0.05, decoupled)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    refs = []
    for m in members:
        params = [p for p in m.parameters()]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.05},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        refs.append(cls(groups, lr=1e-3))
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        lr = 1e-3 * (step + 1)
        for g, m in enumerate(members):
            for name, p in m.named_parameters():
                p.grad = torch.randn(p.shape, generator=gen)
                model.p(name).grad = None if g == 0 else model.p(name).grad
        grad = torch.stack(  # the same gradients in the flat layout
            [
                torch.cat([dict(m.named_parameters())[n].grad.reshape(-1) for n in model.names])
                for m in members
            ]
        )
        opt.step(grad, lr)
        for ref in refs:
            for group in ref.param_groups:
                group["lr"] = lr
            ref.step()
    for g, m in enumerate(members):
        assert states_equal(model.member(g), m), f"member {g} differs from torch's optimiser"


def test_clip_rows_is_clip_grad_norm_per_member():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, 7, generator=gen) * s for s in (0.01, 1.0, 30.0)]
    flat = torch.stack([g.reshape(-1) for g in grads])
    norms = clip_rows_(flat, 2.0)
    for g, row, norm in zip(grads, flat, norms, strict=True):
        p = torch.nn.Parameter(torch.zeros(5, 7))
        p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_([p], 2.0)
        torch.testing.assert_close(norm, total)
        torch.testing.assert_close(row, p.grad.reshape(-1))


def test_dropout_noise_is_per_member_and_has_its_rate():
    gens = [dropout_generator(w) for w in (11, 22, 33)]
    noise = Noise(gens, 0.25)
    noise.draw(40000, torch.device("cpu"))
    masks = noise.take((200, 200))  # (G, 200, 200)
    assert torch.unique(masks).tolist() == [0.0, pytest.approx(1 / 0.75)]
    kept = (masks > 0).float().mean(dim=(1, 2))
    assert torch.all((kept - 0.75).abs() < 0.01), kept
    alone = Noise([dropout_generator(22)], 0.25)  # member 1 drawn without the others
    alone.draw(40000, torch.device("cpu"))
    assert torch.equal(alone.take((200, 200))[0], masks[1])
    assert not torch.equal(masks[0], masks[1])


@pytest.fixture(scope="module")
def linear_data(bodies):
    """Fixed-length inputs (linear resampling): what the bit-for-bit promise covers."""
    seqs, y = bodies
    X, L = prepare(seqs, 12, resampling="linear")
    P = np.full((len(y), 3), 0.1)
    P[np.arange(len(y)), y] = 0.8
    D = np.abs(np.subtract.outer(np.arange(len(y)), np.arange(len(y)))).astype(float)
    return X, L, y, P, D


AUGMENTED = StudentConfig(**BODY, streams=STREAMS, augment_rotate=15, augment_scale=0.1,
                          resampling="linear")  # fmt: skip


@pytest.mark.parametrize("mode", ["transformer", "label_smoothing", "distilled", "metric", "nngk"])
def test_a_seed_trained_in_a_group_is_the_seed_trained_alone(linear_data, mode):
    X, L, y, P, D = linear_data
    scfg = replace(AUGMENTED, nngk_k=3) if mode == "nngk" else AUGMENTED
    cfgs = [TrainConfig(**FAST, mode=mode, seed=s, val_fraction=0.25) for s in (7, 8, 9)]
    group = train_many(X, L, y, P, cfgs, scfg, {"other": (X[:9], L[:9], y[:9])}, teacher_D=D)
    alone = train(X, L, y, P, cfgs[1], scfg, {"other": (X[:9], L[:9], y[:9])}, teacher_D=D)
    again = train(X, L, y, P, cfgs[1], scfg, {"other": (X[:9], L[:9], y[:9])}, teacher_D=D)
    same = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731 (timings)
    assert states_equal(group[1][0], alone[0]) and same(group[1][1]) == same(alone[1])
    assert states_equal(alone[0], again[0]) and same(alone[1]) == same(again[1])
    assert not states_equal(group[0][0], group[1][0])
    assert group[0][1]["n_train"] == 27 and alone[1]["selection"] == "best val accuracy"


def test_members_stop_early_on_their_own(linear_data):
    X, L, y, _, _ = linear_data
    base = TrainConfig(**{**FAST, "epochs": 12}, val_fraction=0.25, patience=2)
    lr0 = [replace(base, seed=s, lr=0.0) for s in (1, 2)]  # lr 0: val never improves
    runs = train_many(X, L, y, None, lr0, StudentConfig(**BODY))
    for _, h in runs:
        assert h["best_epoch"] == 1 and h["stopped_epoch"] == 3 and len(h["loss"]) == 3
    with pytest.raises(ValueError, match="differ in their seed only"):
        train_many(X, L, y, None, [base, replace(base, seed=1, lr=0.1)], StudentConfig(**BODY))
    with pytest.raises(ValueError, match="duplicate seeds"):
        train_many(X, L, y, None, [base, base], StudentConfig(**BODY))


@pytest.mark.parametrize("mode", ["transformer", "distilled", "metric", "nngk"])
def test_the_batched_trainer_learns_what_the_per_seed_loop_learns(linear_data, mode):
    """Without dropout both paths see the same initialisation, batches and augmentations:
    the same losses and validation curves, to rounding (dropout only draws from another
    stream)."""
    X, L, y, P, D = linear_data
    scfg = replace(AUGMENTED, dropout=0.0, augment_frame_drop=0.1, resampling="nearest")
    scfg = replace(scfg, nngk_k=3) if mode == "nngk" else scfg
    cfg = TrainConfig(**FAST, mode=mode, seed=5, val_fraction=0.25)
    _, new = train(X, L, y, P, cfg, scfg, teacher_D=D)
    _, old = train_reference(X, L, y, P, cfg, scfg, teacher_D=D)
    np.testing.assert_allclose(new["loss"], old["loss"], rtol=1e-4)
    np.testing.assert_allclose(new["eval"]["val"]["cross_entropy"],
                               old["eval"]["val"]["cross_entropy"], rtol=1e-3)  # fmt: skip
    assert new["best_epoch"] == old["best_epoch"]
