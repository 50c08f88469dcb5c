"""Choose the student and the teacher temperature on subject-wise validation folds.

The test split is never read. Each fold holds out one training subject (``--val-subjects``);
the teacher's soft labels are recomputed from the train x train matrix restricted to the
remaining subjects, and every (student, teacher) pair is trained for each seed and scored on
the held-out subject. Prints one JSON line per pair (mean and std over folds x seeds) and a
table at the end. How config/utd_mhad.yaml's student and softmax temperature were chosen:

    python scripts/select_on_validation.py \
        --store data/interim/utd_mhad/sequences.parquet \
        --split results/utd_mhad/paper/split.tsv \
        --matrix results/utd_mhad/paper/distances/procrustes/train-train.npy \
        --val-subjects 4 5 --temperatures 0.02 0.05 0.1 0.2 0.3

A student is a JSON object of StudentConfig fields (``--student NAME=JSON``, any
number); the default set is the small students compared for the latency target.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch

from geokd.data.splits import read_split
from geokd.data.store import load_sequences
from geokd.distances.shards import load_matrix
from geokd.models.student import StudentConfig, prepare
from geokd.models.teacher import nngk_teacher, softmax_teacher
from geokd.models.train import TrainConfig, evaluate, train

STUDENTS = {
    "f24-d48-l1": {"max_frames": 24, "d_model": 48, "ff_dim": 96, "n_layers": 1},
    "f16-d48-l1": {"max_frames": 16, "d_model": 48, "ff_dim": 96, "n_layers": 1},
    "f32-d32-l1": {"max_frames": 32, "d_model": 32, "ff_dim": 64, "n_layers": 1},
    "f128-d64-l2": {"max_frames": 128, "d_model": 64, "ff_dim": 128, "n_layers": 2},
}
AUGMENT = {"dropout": 0.1, "augment_rotate": 15, "augment_scale": 0.1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--matrix", required=True, help="train x train .npy (with its sidecar)")
    ap.add_argument("--val-subjects", type=int, nargs="+", required=True)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--nngk-k", type=int, nargs="*", default=[], help="also NNGK teachers")
    ap.add_argument("--student", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    students = dict(s.split("=", 1) for s in args.student) if args.student else None
    students = {k: json.loads(v) for k, v in students.items()} if students else STUDENTS

    seqs, meta = load_sequences(args.store)
    row = {s: i for i, s in enumerate(meta["sequence_id"].astype(str))}
    table = read_split(args.split)
    train_rows = table[table["split"] == "train"]
    ids = train_rows["sequence_id"].astype(str).tolist()
    y = train_rows["label"].to_numpy()
    subject = train_rows["subject"].to_numpy()
    n_classes = int(table["label"].max()) + 1
    D, info = load_matrix(args.matrix)
    if list(info["row_ids"]) != ids:
        raise SystemExit(f"{args.matrix}: rows are not the training ids of {args.split}")

    folds = []
    for vs in args.val_subjects:
        val = subject == vs
        if not val.any() or val.all():
            raise SystemExit(f"subject {vs} is not a proper part of the training split")
        fit = ~val
        Dfit, yfit = D[np.ix_(fit, fit)], y[fit]
        teachers = {"ce": None}
        for t in args.temperatures:
            teachers[f"softmax T={t:g}"] = softmax_teacher(Dfit, yfit, n_classes, temperature=t)
        for k in args.nngk_k:
            teachers[f"nngk k={k}"] = nngk_teacher(Dfit, yfit, n_classes, k=k)
        folds.append((fit, val, teachers))

    results = []
    for name, fields in students.items():
        scfg = StudentConfig(**{**AUGMENT, **fields})
        X, L = prepare([seqs[row[s]] for s in ids], scfg.max_frames, scfg.normalise)
        for teacher in folds[0][2]:
            accs, t0 = [], time.perf_counter()
            for (fit, val, teachers), seed in itertools.product(folds, args.seeds):
                mode = "transformer" if teacher == "ce" else "distilled"
                cfg = TrainConfig(
                    epochs=args.epochs,
                    batch_size=args.batch_size,
                    seed=seed,
                    mode=mode,
                    progress=False,
                )
                P = teachers[teacher]
                model, _ = train(X[fit], L[fit], y[fit], P, cfg, scfg, n_classes=n_classes)
                accs.append(evaluate(model, X[val], L[val], y[val], n_classes)["accuracy"])
            res = {
                "student": name,
                "teacher": teacher,
                "val_mean": float(np.mean(accs)),
                "val_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "val_per_run": accs,
                "seconds": time.perf_counter() - t0,
            }
            results.append(res)
            print(json.dumps(res), flush=True)
    print(f"\n{'student':<14} {'teacher':<16} {'val acc (%)':>14}  gain over ce")
    base = {r["student"]: r["val_mean"] for r in results if r["teacher"] == "ce"}
    for r in results:
        gain = 100 * (r["val_mean"] - base[r["student"]])
        print(
            f"{r['student']:<14} {r['teacher']:<16} "
            f"{100 * r['val_mean']:6.2f} +- {100 * r['val_std']:4.2f}  {gain:+.2f}"
        )


if __name__ == "__main__":
    main()
