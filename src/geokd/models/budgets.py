"""The label-budget study: what each way of teaching gets when only some training subjects are
labelled.

For a protocol with ``n`` training subjects and a budget of ``m = 1 .. n - 1`` labelled
subjects (:func:`budget_plan`: every single subject at ``m = 1``, a deterministic sample of at
most ``max_subsets`` subsets for larger ``m``), the other training subjects' sequences are
**unlabelled**: no training, teacher or choice reads their labels (they are read once, after
training, to report how accurate the soft labels given to them were, in fields named
``*_unlabelled_*``). The test subjects stay untouched. Arms (:func:`run_subset`), each with the
recipe of the full-label run (same architecture, optimiser and epochs, chosen in advance:
``docs/experiments.md``):

* ``knn``: exact 1-NN from the labelled sequences (the test x train matrix, labelled columns).
* ``labels``: the labels-only family (``budgets.labels``, e.g. ``label_smoothing``) on the
  labelled sequences.
* ``distilled``: KD on the labelled sequences, the Procrustes-DTW teacher's soft labels from
  other labelled subjects (from other labelled sequences where ``m = 1``).
* ``geometry_ssl``: every training sequence; a labelled one's target is its label, an
  unlabelled one's the teacher's soft labels from its distances to the labelled sequences
  (soft-target cross-entropy, one loss for all rows: ``kd_loss`` with weight 1).
* ``self_ssl``: the control: the same loss and data, the unlabelled targets being the
  ``labels`` student's own probabilities (same subset and seed).

One JSON per subset (rows: ``budget``, ``labelled_subjects``, ``arm``, ``seed`` (None for
``knn``), ``accuracy``); :mod:`geokd.report.budgets` aggregates them.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..data.splits import read_split
from ..data.store import load_sequences
from ..distances.normalise import load_used
from ..jsonfile import write_json
from .config import SoftmaxSettings, StudentConfig, TrainConfig
from .student import prepare
from .teacher import (
    diagnostics,
    exclusion_mask,
    normalisation_bounds,
    select_temperature,
    softmax_teacher,
)
from .train import predict_proba, torch_threads, train_many

ARMS = ("knn", "labels", "distilled", "geometry_ssl", "self_ssl")
#: the label of an unlabelled row as the trainer sees it: never a class (and ignored by CE)
UNLABELLED = -100


def budget_plan(
    train_subjects: Sequence[int], max_subsets: int = 5, seed: int = 0
) -> list[tuple[int, tuple[int, ...]]]:
    """``(m, labelled subjects)`` for every budget ``m = 1 .. n - 1``: all single subjects at
    ``m = 1``; for larger ``m`` all subsets when there are at most ``max_subsets``, else that
    many drawn without replacement by a generator seeded with ``(seed, m)`` (deterministic,
    in sorted order)."""
    subjects = sorted(int(s) for s in train_subjects)
    plan = []
    for m in range(1, len(subjects)):
        combos = list(itertools.combinations(subjects, m))
        if m > 1 and len(combos) > max_subsets:
            rng = np.random.default_rng([seed, m])
            pick = sorted(rng.choice(len(combos), size=max_subsets, replace=False))
            combos = [combos[i] for i in pick]
        plan += [(m, c) for c in combos]
    return plan


def subset_name(subjects: Sequence[int]) -> str:
    """A labelled subset as a file name: ``s1-3-5``."""
    return "s" + "-".join(str(int(s)) for s in sorted(subjects))


def parse_subset(name: str) -> tuple[int, ...]:
    """The inverse of :func:`subset_name`."""
    if not name.startswith("s") or not all(p.isdigit() for p in name[1:].split("-")):
        raise ValueError(f"not a subset name: {name!r} (want e.g. s1-3-5)")
    return tuple(sorted(int(p) for p in name[1:].split("-")))


def soft_teacher(
    D_ll: np.ndarray,
    y_l: np.ndarray,
    subjects_l: np.ndarray,
    n_classes: int,
    settings: SoftmaxSettings,
    exclude: str,
    D_ul: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The softmax teacher of a labelled set: held-out soft labels of the labelled rows (other
    labelled subjects, or other sequences with one subject) and, given ``D_ul`` (unlabelled x
    labelled), the unlabelled rows' soft labels from all labelled sequences, on the labelled
    block's scale; the temperature as the config says or chosen by the held-out NLL on the
    labelled rows. Returns ``(P_labelled, P_unlabelled, info)``."""
    how = exclude if exclude == "self" or len(np.unique(subjects_l)) > 1 else "self"
    mask = exclusion_mask(subjects_l, len(y_l), settings.exclude_self, how)
    info = {"exclude": how if mask is not None else "none"}
    T = settings.temperature
    if T is None:
        sel = select_temperature(D_ll, y_l, n_classes, settings.temperature_grid, exclude=mask,
                                 exclude_self=settings.exclude_self,
                                 normalise=settings.normalise)  # fmt: skip
        T, info["temperature_selection"] = sel["temperature"], sel
    info["temperature"] = T
    kw = dict(exclude_self=settings.exclude_self, normalise=settings.normalise)
    P_l = softmax_teacher(D_ll, y_l, n_classes, temperature=T, exclude=mask, **kw)
    P_u = None
    if D_ul is not None and len(D_ul):
        bounds = normalisation_bounds(D_ll, settings.normalise, mask)
        P_u = softmax_teacher(D_ul, y_l, n_classes, temperature=T, exclude_self=False,
                              bounds=bounds)  # fmt: skip
    return P_l, P_u, info


def _onehot(y: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out


def run_subset(
    store: str | os.PathLike,
    split_table: str | os.PathLike,
    train_matrix: str | os.PathLike,
    test_matrix: str | os.PathLike,
    out_json: str | os.PathLike,
    subset: Sequence[int],
    *,
    seeds: Sequence[int],
    labels_cfg: tuple[TrainConfig, StudentConfig],
    distilled_cfg: tuple[TrainConfig, StudentConfig],
    teacher: SoftmaxSettings,
    exclude: str = "subject",
    normalise: str = "none",
    threads: int | None = None,
) -> dict:
    """Train and evaluate every arm of one labelled subset (module docstring) and write its
    rows as JSON, atomically. ``labels_cfg`` and ``distilled_cfg`` are the two families'
    ``(TrainConfig, StudentConfig)`` (modes and seeds are set here); ``teacher`` and
    ``exclude`` the softmax teacher's settings; ``normalise`` how the matrices are read."""
    t0 = time.perf_counter()
    table = read_split(split_table)
    n_classes = int(table["label"].max()) + 1
    D_tt, _, train, _ = load_used(train_matrix, split_table, "train", "train", normalise, store)
    D_et, _, test, _ = load_used(test_matrix, split_table, "test", "train", normalise, store)
    subjects = train["subject"].to_numpy()
    subset = tuple(sorted(int(s) for s in subset))
    if not set(subset) < set(subjects.tolist()):
        raise ValueError(f"subset {subset} is not a proper subset of the training subjects")
    lab = np.isin(subjects, subset)
    unl = ~lab
    y_train = train["label"].to_numpy()
    y_l = y_train[lab]  # the only training labels any arm reads
    y_test = test["label"].to_numpy()
    sequences, meta = load_sequences(store)
    row = {s: i for i, s in enumerate(meta["sequence_id"].astype(str))}
    scfg = labels_cfg[1]
    if distilled_cfg[1] != scfg:
        raise ValueError("the labels and distilled families must share one student recipe")
    prep = lambda ids: prepare([sequences[row[s]] for s in ids], scfg.max_frames,  # noqa: E731
                               scfg.normalise, scfg.frame, scfg.resampling)  # fmt: skip
    X, L = prep(train["sequence_id"].astype(str).tolist())
    Xt, Lt = prep(test["sequence_id"].astype(str).tolist())
    evals = {"test": (Xt, Lt, y_test)}
    base = {"budget": len(subset), "labelled_subjects": list(subset)}
    rows = []

    def record(arm, trained, extra=None):
        for cfg_seed, (_, h) in zip(seeds, trained, strict=True):
            acc = h["eval"]["test"]["accuracy"][-1]
            rows.append({**base, "arm": arm, "seed": int(cfg_seed), "accuracy": acc,
                         **(extra or {})})  # fmt: skip

    def group(cfg, mode, **over):
        cfg = replace(cfg, mode=mode, eval_every=cfg.epochs, resume_every=0, progress=False,
                      num_threads=threads, val_fraction=0.0, patience=0, **over)  # fmt: skip
        return [replace(cfg, seed=int(s)) for s in seeds]

    # knn: exact 1-NN among the labelled columns (ties: the lower training index)
    nn = np.flatnonzero(lab)[np.argmin(D_et[:, lab], axis=1)]
    rows.append({**base, "arm": "knn", "seed": None,
                 "accuracy": float((y_train[nn] == y_test).mean())})  # fmt: skip

    # the teacher of the labelled set, and its soft labels for the unlabelled sequences
    P_l, P_u, tinfo = soft_teacher(D_tt[np.ix_(lab, lab)], y_l, subjects[lab], n_classes,
                                   teacher, exclude, D_tt[np.ix_(unl, lab)])  # fmt: skip
    tinfo["labelled"] = diagnostics(P_l, y_l)
    # reported against only: the unlabelled sequences' labels never reach a training
    tinfo["unlabelled_reported_against"] = diagnostics(P_u, y_train[unl])

    tcfg, _ = labels_cfg
    lab_runs = train_many(X[lab], L[lab], y_l, None, group(tcfg, tcfg.mode), scfg, evals,
                          n_classes=n_classes)  # fmt: skip
    record("labels", lab_runs)
    dcfg, _ = distilled_cfg
    record("distilled", train_many(X[lab], L[lab], y_l, P_l, group(dcfg, "distilled"), scfg,
                                   evals, n_classes=n_classes))  # fmt: skip

    # the semi-supervised arms: every training row, labels only where labelled
    y_ssl = np.where(lab, y_train, UNLABELLED)
    ssl = group(dcfg, "distilled", kd_weight=1.0, distillation="kl")
    targets = np.zeros((len(y_train), n_classes))
    targets[lab] = _onehot(y_l, n_classes)
    targets[unl] = P_u
    record("geometry_ssl", train_many(X, L, y_ssl, targets, ssl, scfg, evals,
                                      n_classes=n_classes))  # fmt: skip
    own = []
    for model, _ in lab_runs:  # the labels student's probabilities, same subset and seed
        with torch_threads(threads):
            own.append(predict_proba(model, X[unl], L[unl]))
    per_seed = np.stack([targets] * len(seeds))  # (G, N, C)
    per_seed[:, unl] = np.stack(own)
    self_acc = [float((p.argmax(1) == y_train[unl]).mean()) for p in own]
    record("self_ssl", train_many(X, L, y_ssl, per_seed, ssl, scfg, evals, n_classes=n_classes))
    for r in rows:
        if r["arm"] == "self_ssl":
            r["pseudo_label_unlabelled_accuracy"] = self_acc[list(seeds).index(r["seed"])]
        if r["arm"] == "geometry_ssl":
            r["pseudo_label_unlabelled_accuracy"] = tinfo["unlabelled_reported_against"]["accuracy"]
    result = {
        **base,
        "subset": subset_name(subset),
        "n_labelled": int(lab.sum()),
        "n_unlabelled": int(unl.sum()),
        "n_test": len(y_test),
        "seeds": [int(s) for s in seeds],
        "rows": rows,
        "teacher": tinfo,
        "normalise": normalise,
        "recipes": {"labels": asdict(tcfg), "distilled": asdict(dcfg), "student": asdict(scfg)},
        "inputs": {
            k: Path(p).name
            for k, p in (
                ("store", store),
                ("split", split_table),
                ("train_matrix", train_matrix),
                ("test_matrix", test_matrix),
            )
        },
        "seconds": time.perf_counter() - t0,
    }
    write_json(out_json, result)
    return result
