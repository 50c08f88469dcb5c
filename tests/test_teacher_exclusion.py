"""An informative teacher (issue 24, item 1): soft labels from other subjects only, the
temperature chosen by the teacher's own held-out likelihood, distances normalised by path
length; each against a literal computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from geokd.data.store import StoreInfo, write_store
from geokd.distances import normalise_distances
from geokd.distances.normalise import load_used
from geokd.distances.shards import write_npy_with_sidecar
from geokd.errors import InputError
from geokd.models.teacher import (
    exclusion_mask,
    make_soft_labels,
    nngk_teacher,
    select_temperature,
    softmax_teacher,
)


def problem(seed=0, n_subjects=3, per=4, n_classes=3):
    rng = np.random.default_rng(seed)
    n = n_subjects * per
    A = rng.uniform(0, 10, (n, n))
    D = (A + A.T) / 2
    np.fill_diagonal(D, 0.0)
    y = rng.integers(0, n_classes, n)
    subjects = np.repeat(np.arange(1, n_subjects + 1), per)
    return D, y, subjects


def test_subject_exclusion_is_a_literal_leave_one_subject_out():
    D, y, g = problem()
    mask = exclusion_mask(g, len(y), True, "subject")
    used = D[~mask]
    lo, hi = used.min(), used.max()
    T = 0.3
    P = softmax_teacher(D, y, 3, temperature=T, exclude=mask)
    for i in range(len(y)):
        w = {j: math.exp(-(D[i, j] - lo) / (hi - lo) / T) for j in range(len(y)) if g[j] != g[i]}
        sums = [sum(v for j, v in w.items() if y[j] == c) for c in range(3)]
        np.testing.assert_allclose(P[i], np.array(sums) / sum(sums), rtol=1e-10)
    # the own subject's samples carry no weight: moving them changes nothing
    D2 = D.copy()
    D2[mask & ~np.eye(len(y), dtype=bool)] = 1e-6
    np.testing.assert_allclose(softmax_teacher(D2, y, 3, temperature=T, exclude=mask), P)
    assert exclusion_mask(g, len(y), False, "subject") is None  # the original: nothing
    np.testing.assert_array_equal(exclusion_mask(g, len(y), True, "self"), np.eye(len(y)))


def test_nngk_with_subject_exclusion_counts_other_subjects_only():
    D, y, g = problem(1)
    mask = exclusion_mask(g, len(y), True, "subject")
    P = nngk_teacher(D, y, 3, k=2, sigma=3.0, floor=0.0, exclude=mask)
    for i in range(len(y)):
        others = sorted((D[i, j], j) for j in range(len(y)) if g[j] != g[i])[:2]
        w = np.zeros(3)
        for d, j in others:
            w[y[j]] += math.exp(-(d**2 - others[0][0] ** 2) / (2 * 9.0))
        np.testing.assert_allclose(P[i], w / w.sum(), rtol=1e-10)
    with pytest.raises(ValueError, match="no training sample left"):
        softmax_teacher(D, y, 3, temperature=1.0, exclude=np.ones_like(mask))


def test_the_temperature_is_the_held_out_likelihoods_argmin():
    D, y, g = problem(2, n_subjects=4)
    mask = exclusion_mask(g, len(y), True, "subject")
    grid = [0.01, 0.1, 0.3, 1.0, 10.0]
    chosen = select_temperature(D, y, 3, grid, exclude=mask)
    nll = [
        -np.mean(np.log(np.maximum(softmax_teacher(D, y, 3, temperature=t, exclude=mask)
                                   [np.arange(len(y)), y], 1e-12)))
        for t in grid
    ]  # fmt: skip
    assert chosen["nll"] == pytest.approx(nll) and chosen["temperature"] == grid[np.argmin(nll)]
    with pytest.raises(ValueError, match="positive"):
        select_temperature(D, y, 3, [0.0, 1.0], exclude=mask)


def test_path_length_divides_by_both_lengths():
    D = np.array([[0.0, 6.0], [6.0, 0.0], [3.0, 9.0]])
    out = normalise_distances(D, "path_length", [2, 4, 1], [2, 4])
    np.testing.assert_allclose(out, [[0, 1], [1, 0], [1, 9 / 5]])
    assert normalise_distances(D, "none", [1, 1, 1], [1, 1]) is D
    with pytest.raises(ValueError, match="normalise"):
        normalise_distances(D, "mean", [1, 1, 1], [1, 1])


def _workspace(tmp_path, n_subjects=3, per=4):
    """A store, split table and train x train matrix of random sequences of 3-10 frames."""
    rng = np.random.default_rng(5)
    n = n_subjects * per
    seqs = [rng.normal(size=(int(rng.integers(3, 11)), 2, 3)) for _ in range(n)]
    meta = pd.DataFrame(
        {
            "sequence_id": [f"s{i:02d}" for i in range(n)],
            "label": np.arange(n) % 3,
            "label_name": [f"c{i % 3}" for i in range(n)],
            "subject": np.repeat(np.arange(1, n_subjects + 1), per),
            "trial": np.tile(np.arange(1, per + 1), n_subjects),
            "source": "synthetic",
            "sha256": "0" * 64,
        }
    )
    store = tmp_path / "s.parquet"
    write_store(store, seqs, meta, StoreInfo(dataset="t", landmark_names=["a", "b"], units="m"))
    split = tmp_path / "split.tsv"
    table = meta[["sequence_id", "label", "subject", "trial"]].assign(split="train")
    table.to_csv(split, sep="\t", index=False)
    A = rng.uniform(1, 20, (n, n))
    D = (A + A.T) / 2
    np.fill_diagonal(D, 0.0)
    matrix = tmp_path / "train-train.npy"
    ids = meta["sequence_id"].tolist()
    write_npy_with_sidecar(matrix, D, {"row_ids": ids, "col_ids": ids, "metric": "procrustes"})
    return store, split, matrix, D, meta, np.array([len(s) for s in seqs])


def test_make_soft_labels_excludes_the_subject_normalises_and_chooses_t(tmp_path):
    store, split, matrix, D, meta, n = _workspace(tmp_path)
    out = tmp_path / "t.parquet"
    grid = [0.01, 0.1, 1.0]
    result = make_soft_labels(matrix, split, out, "softmax", store=store, temperature=None,
                              distance_normalise="path_length", temperature_grid=grid)  # fmt: skip
    assert json.loads(json.dumps(result)) == result
    assert result["exclude"] == {"pairs": "subject", "asked": "subject"}
    assert result["distances"] == "path_length"
    Dn = D / np.add.outer(n, n)
    mask = exclusion_mask(meta["subject"].to_numpy(), len(n), True, "subject")
    sel = select_temperature(Dn, meta["label"].to_numpy(), 3, grid, exclude=mask)
    assert result["temperature_selection"] == sel and result["params"]["temperature"] in grid
    from geokd.models.teacher import read_soft_labels

    P = softmax_teacher(Dn, meta["label"].to_numpy(), 3, temperature=sel["temperature"],
                        exclude=mask)  # fmt: skip
    np.testing.assert_allclose(read_soft_labels(out)[1], P)
    fixed = make_soft_labels(matrix, split, out, "softmax", temperature=0.5)
    assert "temperature_selection" not in fixed and fixed["params"]["temperature"] == 0.5
    with pytest.raises(InputError, match="needs the store"):
        load_used(matrix, split, "train", "train", "path_length", None)


def test_one_training_subject_falls_back_to_leaving_one_sample_out(tmp_path):
    _, split, matrix, _, _, _ = _workspace(tmp_path, n_subjects=1, per=6)
    result = make_soft_labels(matrix, split, tmp_path / "t.parquet", "nngk", k=2)
    assert result["exclude"] == {"pairs": "self", "asked": "subject"}
    original = make_soft_labels(
        matrix, split, tmp_path / "u.parquet", "softmax", temperature=3.0, exclude_self=False
    )
    assert original["exclude"]["pairs"] == "none"
