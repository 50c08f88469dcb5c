"""The student families of issue 13: losses against hand computations, the NNGK head against a
brute-force reference, body frames and streams against their invariances, and each family
trained end to end (deterministic, checkpoints that predict the same)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from geokd.data.resample import resample
from geokd.models.checkpoint import load_checkpoint, save_checkpoint
from geokd.models.config import MODES, StudentConfig, TrainConfig
from geokd.models.losses import kd_loss, neighbourhood_loss, rkd_distance_loss
from geokd.models.nngk import nngk_log_proba, nngk_reference
from geokd.models.streams import body_frame, bones_for, n_stream_features, stream_features
from geokd.models.student import augment, prepare
from geokd.models.train import param_groups, predict_proba, train

REST = np.array(  # a 20-joint Kinect-like rest pose (metres): x right, y up, z away
    [
        [0, 0.65, 0], [0, 0.45, 0], [0, 0.2, 0], [0, 0, 0],
        [-0.2, 0.45, 0], [-0.25, 0.2, 0], [-0.27, 0, 0], [-0.28, -0.08, 0],
        [0.2, 0.45, 0], [0.25, 0.2, 0], [0.27, 0, 0], [0.28, -0.08, 0],
        [-0.1, -0.05, 0], [-0.1, -0.45, 0], [-0.1, -0.85, 0], [-0.1, -0.9, 0.1],
        [0.1, -0.05, 0], [0.1, -0.45, 0], [0.1, -0.85, 0], [0.1, -0.9, 0.1],
    ]
)  # fmt: skip


def body_sequence(rng, T=30):
    """A moving body: arms swing, small noise; in camera space (rotated, shifted)."""
    t = np.linspace(0, 2 * np.pi, T)[:, None]
    seq = np.repeat(REST[None], T, axis=0)
    seq[:, 5:8, 1] += 0.2 * np.sin(t)
    seq[:, 9:12, 2] += 0.2 * np.cos(t)
    seq = seq + 0.003 * rng.normal(size=seq.shape)
    R = Rotation.from_euler("y", rng.uniform(-60, 60), degrees=True).as_matrix()
    return seq @ R.T * rng.uniform(0.8, 1.2) + np.array([0.3, 0.1, 2.5])


# ---------------------------------------------------------------- losses
def test_kd_loss_matches_hand_computation():
    z = torch.tensor([[2.0, 0.0, -1.0]])
    y = torch.tensor([0])
    P = torch.tensor([[0.7, 0.2, 0.1]])
    q = np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum()
    ce = -math.log(q[0])
    kl = sum(p * (math.log(p) - math.log(qi)) for p, qi in zip([0.7, 0.2, 0.1], q, strict=True))
    total, ce_t, kl_t = kd_loss(z, y, P, 0.25)
    assert ce_t.item() == pytest.approx(ce) and kl_t.item() == pytest.approx(kl)
    assert total.item() == pytest.approx(0.75 * ce + 0.25 * kl)
    # its gradient is that of CE against the mixed target (1 - w) onehot + w P
    z1 = z.clone().requires_grad_(True)
    kd_loss(z1, y, P, 0.25)[0].backward()
    target = 0.75 * np.eye(3)[0] + 0.25 * P.numpy()[0]
    np.testing.assert_allclose(z1.grad.numpy()[0], q - target, atol=1e-6)


def test_label_smoothing_is_the_uniform_teacher():
    z, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    uniform = torch.full((5, 4), 0.25)
    smoothed = F.cross_entropy(z, y, label_smoothing=0.2)
    # CE against (1 - eps) onehot + eps / C = KD with the uniform teacher, up to H(uniform)
    total = kd_loss(z, y, uniform, 0.2)[0] + 0.2 * math.log(4)
    assert smoothed.item() == pytest.approx(total.item(), rel=1e-6)


def test_rkd_distance_loss_matches_hand_computation():
    emb = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    D = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]])
    de = np.array([3, 4, 3, 5, 4, 5], dtype=float)  # off-diagonal, row-major
    dt = np.array([1, 2, 1, 2, 2, 2], dtype=float)
    diff = np.abs(de / de.mean() - dt / dt.mean())
    expected = np.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    assert rkd_distance_loss(emb, D).item() == pytest.approx(expected, rel=1e-5)
    assert rkd_distance_loss(emb * 7, D * 3).item() == pytest.approx(expected, rel=1e-5)


def test_neighbourhood_loss_is_zero_for_matching_geometry_and_positive_otherwise():
    emb = torch.randn(6, 3)
    D = torch.cdist(emb, emb)
    assert neighbourhood_loss(emb, 5 * D).item() == pytest.approx(0.0, abs=1e-5)
    assert neighbourhood_loss(emb, D.flip(0).flip(1)).item() > 1e-3


# ---------------------------------------------------------------- NNGK head
def test_nngk_head_matches_the_brute_force_reference():
    g = torch.Generator().manual_seed(0)
    q, mem = torch.randn(7, 5, generator=g), torch.randn(30, 5, generator=g)
    y = torch.randint(0, 4, (30,), generator=g)
    for k, sigma in ((1, 0.5), (5, 1.0), (30, 2.0)):
        got = nngk_log_proba(q, mem, y, 4, k, torch.tensor(sigma), 1e-3).exp().numpy()
        ref = nngk_reference(q.numpy(), mem.numpy(), y.numpy(), 4, k, sigma, 1e-3)
        np.testing.assert_allclose(got, ref, atol=1e-6)
    # a query left out of its own neighbourhood = the reference on the memory without it
    got = nngk_log_proba(mem[:3], mem, y, 4, 5, torch.tensor(1.0), exclude=torch.arange(3))
    for i in range(3):
        keep = np.arange(30) != i
        ref = nngk_reference(mem[i : i + 1].numpy(), mem[keep].numpy(), y[keep].numpy(), 4, 5, 1.0)
        np.testing.assert_allclose(got[i].exp().numpy(), ref[0], atol=1e-6)


# ---------------------------------------------------------------- input
def test_body_frame_is_invariant_to_rigid_motion_and_scale():
    rng = np.random.default_rng(1)
    seq = body_sequence(rng)
    R = Rotation.random(random_state=3).as_matrix()
    moved = (seq @ R.T) * 1.7 + np.array([5.0, -2.0, 1.0])
    for per_frame in (False, True):
        a, b = body_frame(seq, per_frame), body_frame(moved, per_frame)
        np.testing.assert_allclose(a, b, atol=1e-9)
    canon = body_frame(seq)
    hips = canon[:, 16] - canon[:, 12]  # left -> right hip along +x
    assert (hips[:, 0] > 0.9 * np.linalg.norm(hips, axis=1)).all()
    spine = canon[:, 1] - canon[:, 3]  # hip centre -> shoulder centre along +y, length ~1
    assert np.allclose(np.median(np.linalg.norm(spine, axis=1)), 1.0)


def test_body_frame_of_an_ntu_skeleton_is_the_kinect_v1_bodys():
    """Kinect v2 (NTU RGB+D, 25 joints) is framed by the joints it shares with Kinect v1
    (spine base, spine shoulder, hips, shoulders): the v1 body made into v2 joints gets the
    same frame, joint for joint, also per frame and after a rigid motion; two bodies (50)
    are both moved by the first one's frame; any other skeleton is refused."""
    from geokd.data.ntu_synthetic import _SAME, kinect_v2
    from geokd.data.skeleton import NTU_JOINTS, UTD_MHAD_JOINTS

    rng = np.random.default_rng(4)
    seq = body_sequence(rng)
    ntu = kinect_v2(seq)
    v2 = [NTU_JOINTS.index(n) for n in _SAME]
    v1 = [UTD_MHAD_JOINTS.index(n) for n in _SAME.values()]
    R = Rotation.random(random_state=5).as_matrix()
    for per_frame in (False, True):
        want = body_frame(seq, per_frame)[:, v1]
        np.testing.assert_allclose(body_frame(ntu, per_frame)[:, v2], want, atol=1e-12)
        moved = (ntu @ R.T) * 0.8 + np.array([1.0, 2.0, -3.0])
        np.testing.assert_allclose(body_frame(moved, per_frame)[:, v2], want, atol=1e-9)
    other = kinect_v2(body_sequence(rng)) + np.array([1.5, 0.0, 0.2])  # a second person
    two = body_frame(np.concatenate([ntu, other], axis=1))
    np.testing.assert_allclose(two[:, :25], body_frame(ntu), atol=1e-12)
    first = body_frame(np.concatenate([ntu, ntu], axis=1))  # the frame is the first body's
    np.testing.assert_allclose(first[:, 25:], first[:, :25], atol=1e-12)
    assert not np.allclose(two[:, 25:], body_frame(other))
    with pytest.raises(ValueError, match="body frames need Kinect"):
        body_frame(np.zeros((5, 42, 3)))


def test_body_frame_survives_glitch_frames():
    rng = np.random.default_rng(2)
    seq = body_sequence(rng)
    clean = body_frame(seq)
    glitched = seq.copy()
    glitched[10, 12] = glitched[10, 16] = glitched[10, 3]  # hip width 0 (a Kinect glitch)
    glitched[20, 1] = glitched[20, 3] + (glitched[20, 16] - glitched[20, 12])  # spine || hips
    out = body_frame(glitched)
    keep = np.setdiff1d(np.arange(len(seq)), [10, 20])
    # the glitches take no part: the other frames barely move (mean axes over 28 frames, not 30)
    np.testing.assert_allclose(out[keep], clean[keep], atol=5e-3)
    per = body_frame(glitched, per_frame=True)
    assert np.isfinite(per).all()
    # the glitch frame keeps its predecessor's rotation (fitted on its intact arm joints)
    R9 = np.linalg.lstsq(per[9] - per[9].mean(0), (seq[9] - seq[9].mean(0)), rcond=None)[0]
    R10 = np.linalg.lstsq(per[10, 4:12] - per[10, 4:12].mean(0),
                          seq[10, 4:12] - seq[10, 4:12].mean(0), rcond=None)[0]  # fmt: skip
    np.testing.assert_allclose(R9, R10, atol=0.05)


def test_linear_resampling_keeps_endpoints_and_interpolates():
    seq = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    out = resample(seq, 9, "linear")
    assert out.shape == (9, 2, 3)
    np.testing.assert_allclose(out[0], seq[0])
    np.testing.assert_allclose(out[-1], seq[-1])
    np.testing.assert_allclose(out[1], (seq[0] + seq[1]) / 2)
    assert resample(seq, 9, "nearest").shape == (5, 2, 3)  # shorter: kept, then padded


def test_streams_rotate_with_the_joints_about_the_origin():
    rng = np.random.default_rng(4)
    X, L = prepare([body_sequence(rng, T) for T in (30, 22)], 24, frame="body_sequence")
    bones = bones_for(20)
    streams = ["joints", "bones", "velocity"]
    feats = stream_features(X, L, streams, bones)
    assert feats.shape == (2, 24, n_stream_features(streams, 20)) == (2, 24, 3 * 59)
    assert torch.all(feats[1, 22:] == 0)  # padding
    assert torch.all(feats[1, 21, -60:] == 0)  # no velocity after the last valid frame
    R = torch.tensor(Rotation.random(random_state=5).as_matrix(), dtype=torch.float32)
    rotated = (X.reshape(2, 24, 20, 3) @ R.T).reshape(2, 24, 60)
    expected = (feats.reshape(2, 24, -1, 3) @ R.T).reshape(2, 24, -1)  # every 3-vector
    np.testing.assert_allclose(stream_features(rotated, L, streams, bones), expected, atol=1e-5)
    # augmentation rotates about the sequence centre: velocities and bones are rotated only
    cfg = StudentConfig(augment_rotate=30, streams=streams)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    aug, L2 = augment(X, L, cfg, g1)
    a = math.radians(30) * (2 * torch.rand(2, generator=g2) - 1)
    f_aug = stream_features(aug, L2, streams, bones).reshape(2, 24, -1, 3)
    for b in range(2):
        c, s = math.cos(a[b]), math.sin(a[b])
        Ry = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)
        vel = feats.reshape(2, 24, -1, 3)[b, :, 39:]  # the velocity stream
        np.testing.assert_allclose(f_aug[b, :, 39:], vel @ Ry.T, atol=1e-5)


def test_no_weight_decay_on_norms_and_biases():
    from geokd.models.student import SkeletonTransformer

    model = SkeletonTransformer(60, 5, StudentConfig(d_model=16, n_heads=2, n_layers=1))
    groups = param_groups(model, TrainConfig(weight_decay=0.05))
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2), name
    assert len(param_groups(model, TrainConfig(decay_norms_biases=True))) == 1


# ---------------------------------------------------------------- training
@pytest.fixture(scope="module")
def bodies():
    rng = np.random.default_rng(7)
    seqs, y = [], []
    for i in range(36):
        seq = body_sequence(rng, int(rng.integers(18, 30)))
        c = i % 3
        seq[:, [7, 11][c % 2], c] += 0.3 * np.sin(np.linspace(0, 3, len(seq)))
        seqs.append(seq)
        y.append(c)
    return seqs, np.array(y)


STUDENT = dict(
    d_model=16, n_heads=2, n_layers=1, ff_dim=32, max_frames=16, frame="body_sequence",
    resampling="linear", streams=["joints", "bones", "velocity"], nngk_k=5,
)  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_every_family_trains_deterministically_and_its_checkpoint_predicts_the_same(
    mode, bodies, tmp_path
):
    seqs, y = bodies
    scfg = StudentConfig(**STUDENT)
    X, L = prepare(seqs, 16, frame=scfg.frame, resampling=scfg.resampling)
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), size=len(y))
    D = np.abs(rng.normal(size=(len(y), len(y))))
    D = D + D.T
    np.fill_diagonal(D, 0)
    cfg = TrainConfig(epochs=2, batch_size=8, mode=mode, progress=False, num_threads=1)
    m1, h1 = train(X, L, y, P, cfg, scfg, teacher_D=D)
    m2, _ = train(X, L, y, P, cfg, scfg, teacher_D=D)
    p1, p2 = predict_proba(m1, X, L), predict_proba(m2, X, L)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1.sum(1), 1, atol=1e-5)
    assert all(np.isfinite(h1["loss"]))
    assert (h1["kl"][0] is None) == (mode not in ("distilled", "metric"))
    assert (m1.nngk is not None) == (mode == "nngk")
    save_checkpoint(tmp_path / "m.pt", m1, m1.cfg, cfg)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    np.testing.assert_allclose(predict_proba(loaded, X, L), p1, atol=1e-6)


def test_a_family_without_its_teacher_is_refused(bodies):
    seqs, y = bodies
    X, L = prepare(seqs, 16)
    cfg = dict(epochs=1, progress=False)
    scfg = StudentConfig(d_model=16, n_heads=2, n_layers=1, max_frames=16)
    with pytest.raises(ValueError, match="teacher_P"):
        train(X, L, y, None, TrainConfig(mode="distilled", **cfg), scfg)
    with pytest.raises(ValueError, match="teacher_D"):
        train(X, L, y, None, TrainConfig(mode="metric", **cfg), scfg)


def test_a_seed_ensemble_averages_its_members_probabilities(bodies):
    from geokd.models.checkpoint import latency_ms_per_sample
    from geokd.models.ensemble import Ensemble

    seqs, y = bodies
    scfg = StudentConfig(**STUDENT)
    X, L = prepare(seqs, 16, frame=scfg.frame, resampling=scfg.resampling)
    cfg = dict(epochs=1, batch_size=8, progress=False, num_threads=1)
    members = [train(X, L, y, None, TrainConfig(seed=s, **cfg), scfg)[0] for s in (0, 1)]
    expected = (predict_proba(members[0], X, L) + predict_proba(members[1], X, L)) / 2
    ensemble = Ensemble(members).eval()
    np.testing.assert_allclose(predict_proba(ensemble, X, L), expected, atol=1e-6)
    assert latency_ms_per_sample(ensemble, X, L, 4, warmup=1, repeats=2) > 0
