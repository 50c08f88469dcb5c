"""Student: data preparation, normalisation, augmentation, masking, the paper preset."""

import numpy as np
import pytest
import torch
from torch import nn

from geokd.models.student import (
    POOLINGS,
    POSITIONALS,
    SkeletonTransformer,
    StudentConfig,
    augment,
    normalise_sequence,
    padding_mask,
    prepare,
    resample_indices,
)
from tests.helpers.toy import TINY, K, make_sequences


def test_prepare_shapes_zero_padding_and_lengths():
    seqs, _ = make_sequences(5)
    X, L = prepare(seqs, 24)
    assert X.shape == (5, 24, K * 3) and X.dtype == torch.float32
    assert L.dtype == torch.int64 and L.tolist() == [s.shape[0] for s in seqs]
    assert (X[padding_mask(L, 24)] == 0).all()
    raw, _ = prepare(seqs, 24, normalise=False)
    assert np.allclose(raw[0, : L[0]].numpy(), seqs[0].reshape(L[0], K * 3), atol=1e-6)


def test_longer_sequences_are_resampled_uniformly():
    seq = np.arange(50 * K * 3, dtype=float).reshape(50, K, 3)
    idx = resample_indices(50, 10)
    assert idx[0] == 0 and idx[-1] == 49 and len(idx) == 10 and np.all(np.diff(idx) > 0)
    X, L = prepare([seq], 10, normalise=False)
    assert L.tolist() == [10]
    assert np.array_equal(X[0].numpy(), seq[idx].reshape(10, K * 3).astype(np.float32))
    assert np.array_equal(resample_indices(7, 10), np.arange(7))


def test_prepare_rejects_mixed_landmark_counts():
    with pytest.raises(ValueError, match="sequence 1"):
        prepare([np.zeros((3, 4, 3)), np.zeros((3, 5, 3))], 8)


def test_normalisation_is_translation_and_scale_invariant():
    seqs, _ = make_sequences(3, seed=1)
    moved = [2.5 * s + np.array([1.0, -3.0, 7.0]) for s in seqs]
    X, _ = prepare(seqs, 24)
    Xm, _ = prepare(moved, 24)
    assert torch.allclose(X, Xm, atol=1e-5)
    z = normalise_sequence(seqs[0])
    assert np.allclose(z.reshape(-1, 3).mean(axis=0), 0, atol=1e-12)
    assert np.isclose(np.sqrt((z**2).sum(axis=-1).mean()), 1.0)
    assert np.array_equal(normalise_sequence(np.ones((4, K, 3))), np.zeros((4, K, 3)))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("positional", POSITIONALS)
def test_forward_shape_and_padding_is_masked(pooling, positional):
    torch.manual_seed(0)
    cfg = StudentConfig(**TINY, pooling=pooling, positional=positional, dropout=0.0)
    model = SkeletonTransformer(K * 3, 3, cfg)
    seqs, _ = make_sequences(4, seed=2)
    X, L = prepare(seqs, 24)
    out = model.eval()(X, L)
    assert out.shape == (4, 3)
    pad = padding_mask(L, 24)  # (B, T)
    assert pad.any()
    noisy = X.clone()
    noisy[pad] = 100.0 * torch.randn(int(pad.sum()), K * 3)
    for mode in (False, True):  # fast inference path and the training path (dropout 0)
        model.train(mode)
        assert torch.allclose(model(noisy, L), out, atol=1e-5)
    alone = model.eval()(X[1:2, : L[1]], L[1:2])  # same sequence, batch of one, no padding
    assert torch.allclose(alone, out[1:2], atol=1e-5)


def test_without_padding_mask_the_padding_counts():
    torch.manual_seed(0)
    model = SkeletonTransformer(K * 3, 3, StudentConfig(**TINY, padding_mask=False)).eval()
    X, L = prepare(make_sequences(2, max_frames=10)[0], 24)
    noisy = X.clone()
    noisy[padding_mask(L, 24)] = 1.0
    assert not torch.allclose(model(noisy, L), model(X, L))


def test_paper_preset_utd_mhad_architecture():
    cfg = StudentConfig.paper("utd_mhad")
    model = SkeletonTransformer(60, 27, cfg)
    assert isinstance(model.proj, nn.Identity) and isinstance(model.dropout, nn.Identity)
    assert model.pos is None and model.cls is None
    layers = model.encoder.layers
    assert len(layers) == 6
    assert all(
        layer.self_attn.num_heads == 12 and layer.self_attn.embed_dim == 60 for layer in layers
    )
    assert layers[0].linear1.out_features == 512 and layers[0].dropout.p == 0.2
    assert not layers[0].norm_first
    assert (cfg.pooling, cfg.padding_mask, cfg.normalise, cfg.max_frames) == (
        "mean",
        False,
        False,
        125,
    )
    assert isinstance(model.head[0], nn.LayerNorm) and model.head[1].in_features == 60
    X = torch.randn(2, 125, 60)
    assert model.eval()(X).shape == (2, 27)
    with pytest.raises(ValueError, match="d_model == K\\*3"):
        SkeletonTransformer(63, 27, cfg)


def test_paper_preset_signum():
    cfg = StudentConfig.paper("signum")
    model = SkeletonTransformer(126, 450, cfg)
    assert len(model.encoder.layers) == 4 and model.encoder.layers[0].self_attn.num_heads == 9
    assert model.encoder.layers[0].linear1.out_features == 256
    assert (cfg.d_model, cfg.pooling, cfg.dropout, cfg.max_frames) == (126, "last", 0.1, 80)
    with pytest.raises(ValueError, match="no paper preset"):
        StudentConfig.paper("ntu")


@pytest.mark.parametrize(
    "bad",
    [
        dict(pooling="max"),
        dict(positional="rope"),
        dict(d_model=10, n_heads=4),
        dict(dropout=1.0),
        dict(augment_time_warp=0.5),
        dict(augment_frame_drop=1.0),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        StudentConfig(**bad)


def test_augment_off_is_identity_and_on_is_seeded():
    X, L = prepare(make_sequences(6, seed=3)[0], 24)
    g = torch.Generator().manual_seed(0)
    Xa, La = augment(X, L, StudentConfig(), g)
    assert torch.equal(Xa, X) and torch.equal(La, L)
    cfg = StudentConfig(
        augment_rotate=30, augment_scale=0.2, augment_time_warp=0.2, augment_frame_drop=0.3
    )
    a = augment(X, L, cfg, torch.Generator().manual_seed(1))
    b = augment(X, L, cfg, torch.Generator().manual_seed(1))
    c = augment(X, L, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert (a[1] >= 1).all() and (a[1] <= L).all()
    assert (a[0][padding_mask(a[1], 24)] == 0).all()


def test_rotation_is_rigid_about_the_vertical_axis():
    X, L = prepare(make_sequences(4, seed=4)[0], 24)
    Xr, Lr = augment(X, L, StudentConfig(augment_rotate=90), torch.Generator().manual_seed(0))
    assert torch.equal(Lr, L)
    p, q = X.view(4, 24, K, 3), Xr.view(4, 24, K, 3)
    assert torch.allclose(p[..., 1], q[..., 1], atol=1e-5)  # y unchanged
    assert torch.allclose(torch.cdist(p, p), torch.cdist(q, q), atol=1e-4)  # distances kept
    assert not torch.allclose(p, q, atol=1e-3)


def test_time_warp_keeps_length_and_end_frames():
    X, L = prepare(make_sequences(4, seed=5)[0], 24)
    Xw, Lw = augment(X, L, StudentConfig(augment_time_warp=0.3), torch.Generator().manual_seed(0))
    assert torch.equal(Lw, L)
    rows = torch.arange(4)
    assert torch.allclose(Xw[:, 0], X[:, 0]) and torch.allclose(Xw[rows, L - 1], X[rows, L - 1])
    assert not torch.allclose(Xw, X)


def test_frame_drop_keeps_order_of_remaining_frames():
    X = torch.arange(1, 11, dtype=torch.float32)[None, :, None].repeat(1, 1, 3)  # (1, 10, 3)
    X = torch.cat([X, torch.zeros(1, 2, 3)], dim=1)  # (1, 12, 3), length 10
    Xd, Ld = augment(
        X,
        torch.tensor([10]),
        StudentConfig(augment_frame_drop=0.5),
        torch.Generator().manual_seed(0),
    )
    kept = Xd[0, : Ld[0], 0]
    assert 1 <= Ld[0] < 10 and torch.all(kept[1:] > kept[:-1]) and (Xd[0, Ld[0] :] == 0).all()
