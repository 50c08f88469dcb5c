"""The label-budget study (issue 24, item 3): the plan, exact 1-NN rows, unlabelled data that
stays unlabelled, and the hierarchical bootstrap."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from geokd.data.splits import read_split, write_split
from geokd.data.store import load_sequences
from geokd.data.synthetic import SyntheticConfig, write_synthetic
from geokd.distances import cdist
from geokd.distances.shards import write_npy_with_sidecar
from geokd.models.budgets import budget_plan, parse_subset, run_subset, subset_name
from geokd.models.config import SoftmaxSettings, StudentConfig, TrainConfig
from geokd.report.budgets import hierarchical_bootstrap, summarise_budgets


def test_the_plan_takes_every_single_subject_and_at_most_k_subsets_after():
    plan = budget_plan([5, 1, 3, 2, 4], max_subsets=3, seed=0)
    by_m = {}
    for m, subset in plan:
        by_m.setdefault(m, []).append(subset)
    assert by_m[1] == [(1,), (2,), (3,), (4,), (5,)] and sorted(by_m) == [1, 2, 3, 4]
    for m in (2, 3, 4):
        assert len(by_m[m]) == min(3, len(list(combinations(range(5), m))))
        assert by_m[m] == sorted(by_m[m]) and len(set(by_m[m])) == len(by_m[m])
        assert all(len(s) == m and set(s) <= {1, 2, 3, 4, 5} for s in by_m[m])
    assert budget_plan([1, 2, 3, 4, 5], 3, 0) == plan  # deterministic
    assert budget_plan([1, 2, 3, 4, 5], 3, 1) != plan  # the sample seed matters
    small = budget_plan([1, 2, 3], max_subsets=5)
    assert small == [(1, (1,)), (1, (2,)), (1, (3,)), (2, (1, 2)), (2, (1, 3)), (2, (2, 3))]
    assert parse_subset(subset_name((3, 1))) == (1, 3) and subset_name([2]) == "s2"
    with pytest.raises(ValueError, match="subset name"):
        parse_subset("1-3")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic dataset (3 classes, 4 subjects: 1-3 train, 4 test) and its matrices."""
    root = tmp_path_factory.mktemp("budgets")
    store = root / "s.parquet"
    write_synthetic(store, SyntheticConfig(n_classes=3, n_subjects=4, n_trials=3,
                                           min_frames=8, max_frames=12, seed=3))  # fmt: skip
    split = root / "split.tsv"
    write_split(store, split, {"train": [1, 2, 3], "test": [4]})
    table = read_split(split)
    seqs, meta = load_sequences(store)
    row = {s: i for i, s in enumerate(meta["sequence_id"].astype(str))}
    ids = {k: table.loc[table["split"] == k, "sequence_id"].astype(str).tolist()
           for k in ("train", "test")}  # fmt: skip
    get = lambda k: [seqs[row[s]] for s in ids[k]]  # noqa: E731
    tt, et = root / "tt.npy", root / "et.npy"
    write_npy_with_sidecar(
        tt, cdist(get("train")), {"row_ids": ids["train"], "col_ids": ids["train"], "metric": "p"}
    )
    write_npy_with_sidecar(
        et,
        cdist(get("test"), get("train")),
        {"row_ids": ids["test"], "col_ids": ids["train"], "metric": "p"},
    )
    return {"root": root, "store": store, "split": split, "tt": tt, "et": et, "table": table}


def _run(study, out, split=None, subset=(1,)):
    student = StudentConfig(d_model=8, n_heads=2, n_layers=1, ff_dim=16, max_frames=12,
                            resampling="linear", augment_rotate=10.0)  # fmt: skip
    train = TrainConfig(epochs=3, batch_size=4, lr=1e-2, warmup_epochs=1, num_threads=1)
    return run_subset(
        study["store"], split or study["split"], study["tt"], study["et"], out, subset,
        seeds=[0, 1], labels_cfg=(replace_mode(train, "label_smoothing"), student),
        distilled_cfg=(replace_mode(train, "distilled"), student),
        teacher=SoftmaxSettings(temperature_grid=[0.05, 0.5]), exclude="subject",
        normalise="path_length", threads=1,
    )  # fmt: skip


def replace_mode(cfg, mode):
    from dataclasses import replace

    return replace(cfg, mode=mode)


def test_knn_rows_are_exact_1nn_from_the_labelled_subjects(study):
    result = _run(study, study["root"] / "a.json", subset=(1, 3))
    assert json.loads((study["root"] / "a.json").read_text()) == json.loads(json.dumps(result))
    D = np.load(study["et"])
    t = study["table"]
    train, test = t[t["split"] == "train"], t[t["split"] == "test"]
    lab = np.flatnonzero(train["subject"].isin([1, 3]).to_numpy())
    n = (  # path-length normalised: D / (n + m)
        pd.read_parquet(study["store"], columns=["sequence_id", "n_frames"]).set_index(
            "sequence_id"
        )["n_frames"]
    )
    n_test = n.loc[test["sequence_id"]].to_numpy()
    n_train = n.loc[train["sequence_id"]].to_numpy()
    Dn = D / np.add.outer(n_test, n_train)
    pred = train["label"].to_numpy()[lab[np.argmin(Dn[:, lab], axis=1)]]
    expected = float((pred == test["label"].to_numpy()).mean())
    (knn,) = [r for r in result["rows"] if r["arm"] == "knn"]
    assert knn["accuracy"] == expected and knn["seed"] is None and knn["budget"] == 2
    arms = {(r["arm"], r["seed"]) for r in result["rows"]}
    assert arms == {("knn", None)} | {(a, s) for a in ("labels", "distilled", "geometry_ssl",
                                                        "self_ssl") for s in (0, 1)}  # fmt: skip
    assert result["teacher"]["exclude"] == "subject" and result["n_labelled"] == 2 * 9


def test_the_unlabelled_labels_are_never_read(study):
    """Scramble the unlabelled subjects' labels in the split table: every arm trains and
    scores exactly as before; only the fields that report against them change."""
    honest = _run(study, study["root"] / "h.json", subset=(2,))
    t = study["table"].copy()
    unl = (t["split"] == "train") & (t["subject"] != 2)
    t.loc[unl, "label"] = (t.loc[unl, "label"] + 1) % 3
    scrambled = study["root"] / "scrambled.tsv"
    t.to_csv(scrambled, sep="\t", index=False)
    other = _run(study, study["root"] / "o.json", split=scrambled, subset=(2,))
    strip = lambda rows: [{k: v for k, v in r.items() if "unlabelled" not in k} for r in rows]  # noqa: E731
    assert strip(other["rows"]) == strip(honest["rows"])
    assert other["teacher"]["labelled"] == honest["teacher"]["labelled"]
    assert other["teacher"]["temperature"] == honest["teacher"]["temperature"]
    reported = lambda r: r["teacher"]["unlabelled_reported_against"]["accuracy"]  # noqa: E731
    assert reported(other) != reported(honest)  # the labels were there to be read
    assert honest["teacher"]["exclude"] == "self"  # one labelled subject


def test_the_hierarchical_bootstrap_and_the_summary(tmp_path):
    assert hierarchical_bootstrap([[0.5, 0.5], [0.5]]) == (0.5, 0.5, 0.5)
    mean, lo, hi = hierarchical_bootstrap([[0.1, 0.2], [0.6, 0.7], [0.3]])
    assert mean == pytest.approx((0.15 + 0.65 + 0.3) / 3) and lo < mean < hi
    assert hierarchical_bootstrap([[0.1, 0.2], [0.6, 0.7], [0.3]]) == (mean, lo, hi)
    rows = []
    for subset, (g, s, lab, k) in {(1,): (0.8, 0.6, 0.5, 0.55), (2,): (0.7, 0.6, 0.6, 0.6),
                                   (3,): (0.9, 0.7, 0.6, 0.65)}.items():  # fmt: skip
        for seed in (0, 1, 2):
            eps = 0.01 * seed
            for arm, acc in (("geometry_ssl", g + eps), ("self_ssl", s + eps),
                             ("labels", lab + eps), ("distilled", lab)):  # fmt: skip
                rows.append({"budget": 1, "labelled_subjects": list(subset), "arm": arm,
                             "seed": seed, "accuracy": acc})  # fmt: skip
        rows.append({"budget": 1, "labelled_subjects": list(subset), "arm": "knn", "seed": None,
                     "accuracy": k})  # fmt: skip
    f = tmp_path / "s1.json"
    f.write_text(json.dumps({"labelled_subjects": [1], "rows": rows, "teacher": {}}))
    out = tmp_path / "summary.json"
    result = summarise_budgets([f], out, dataset="d", protocol="p", train_subjects=[1, 2, 3])
    (b,) = result["by_budget"]
    d = b["differences"]["geometry_ssl - self_ssl"]
    assert d["mean"] == pytest.approx(np.mean([0.2, 0.1, 0.2])) and d["ci95"][0] > 0
    assert d["n_subsets"] == 3 and d["n_runs"] == 9
    assert b["goal"]["at_least_knn"] and b["goal"]["ahead_of_self_ssl_interval_above_0"]
    assert b["goal"]["geometry_ssl - knn"]["mean"] == pytest.approx(
        np.mean([0.8 - 0.55, 0.7 - 0.6, 0.9 - 0.65]) + 0.01
    )
    assert "ahead of self_ssl by +16.7 points" in b["verdict"]
    assert json.loads(out.read_text())["declared_comparisons"] == [
        "geometry_ssl - self_ssl",
        "geometry_ssl - labels",
    ]
