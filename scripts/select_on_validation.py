"""Choose settings on subject-wise validation folds inside the training subjects.

The test split is never read. Each fold holds out one training subject (``--val-subjects``);
teachers (soft labels, and the distances the ``metric`` family matches) come from the
train x train matrix restricted to the fold's remaining subjects, read as the dataset's
``distances.normalise`` says; the softmax teacher excludes as ``teacher.exclude`` says and
chooses its temperature by its held-out NLL when ``teacher.softmax.temperature`` is null
(``geokd.models.budgets.soft_teacher``). Every variant is trained for each fold, all seeds at
once (``geokd.models.train.train_many``), and scored on the held-out subject. Base settings are
a dataset's resolved settings (``--config``, ``--dataset``; ``per_model`` merged); a variant
changes some of them:

    python scripts/select_on_validation.py --config config/utd_mhad.yaml --dataset utd_mhad \\
        --store data/interim/utd_mhad/sequences.parquet \\
        --split results/utd_mhad/paper/split.tsv \\
        --matrix results/utd_mhad/paper/distances/procrustes/train-train.npy \\
        --val-subjects 4 5 --seeds 0 1 2 \\
        --variant 'ce={"model": "transformer"}' \\
        --variant 'kd T=0.2 w=0.8={"model": "distilled", "temperature": 0.2,
                   "train": {"kd_weight": 0.8}}' \\
        --out docs/validation/utd_mhad_paper.jsonl

A variant is ``NAME=JSON`` with ``model`` (a family), optional ``train`` and ``student``
(TrainConfig / StudentConfig fields) and, for ``distilled``, the teacher: ``teacher``
(``softmax`` or ``nngk``) with ``temperature`` or ``k``. One JSON line per variant (mean and
std over folds x seeds, every run's accuracy) goes to stdout and ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from geokd.data.store import load_sequences
from geokd.distances import load_used
from geokd.models.budgets import soft_teacher
from geokd.models.student import prepare
from geokd.models.teacher import exclusion_mask, nngk_teacher
from geokd.models.train import evaluate, train_many
from geokd.settings import build, resolve


def _variant(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition("=")
    value = json.loads(spec)
    if not name or not isinstance(value, dict) or "model" not in value:
        raise SystemExit(f"--variant {text!r}: expected NAME=JSON with a 'model'")
    return name, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="config file with the dataset")
    ap.add_argument("--dataset", required=True, help="dataset whose settings are the base")
    ap.add_argument("--store", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--matrix", required=True, help="train x train .npy (with its sidecar)")
    ap.add_argument("--val-subjects", type=int, nargs="+", required=True)
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=JSON")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="append one JSON line per variant here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = resolve(yaml.safe_load(Path(args.config).read_text()), args.dataset)

    seqs, meta = load_sequences(args.store)
    row = {s: i for i, s in enumerate(meta["sequence_id"].astype(str))}
    D, _, train_rows, _ = load_used(
        args.matrix, args.split, "train", "train", settings.distances.normalise, args.store
    )
    ids = train_rows["sequence_id"].astype(str).tolist()
    y = train_rows["label"].to_numpy()
    subject = train_rows["subject"].to_numpy()
    n_classes = int(max(y.max(), meta["label"].max())) + 1
    folds = []
    for vs in args.val_subjects:
        val = subject == vs
        if not val.any() or val.all():
            raise SystemExit(f"subject {vs} is not a proper part of the training split")
        folds.append((~val, val))

    prepared = {}
    for name, spec in map(_variant, args.variant):
        tcfg, scfg = settings.training.for_model(spec["model"])
        tcfg = build(type(tcfg), {**dataclasses.asdict(tcfg), **spec.get("train", {})}, "train")
        scfg = build(type(scfg), {**dataclasses.asdict(scfg), **spec.get("student", {})}, "student")
        key = (scfg.max_frames, scfg.normalise, scfg.frame, scfg.resampling)
        if key not in prepared:
            prepared[key] = prepare([seqs[row[s]] for s in ids], *key)
        X, L = prepared[key]
        accs, t0, teachers = [], time.perf_counter(), []
        for fit, val in folds:
            Dfit, yfit = D[np.ix_(fit, fit)], y[fit]
            P = None
            if spec["model"] == "distilled":
                t = settings.teacher
                if spec.get("teacher", t.distill_from) == "nngk":
                    mask = exclusion_mask(subject[fit], len(yfit), True, t.exclude)
                    P = nngk_teacher(Dfit, yfit, n_classes, k=spec.get("k", t.nngk.k), exclude=mask)
                else:
                    soft = t.softmax
                    if "temperature" in spec:
                        soft = dataclasses.replace(soft, temperature=spec["temperature"])
                    P, _, info = soft_teacher(Dfit, yfit, subject[fit], n_classes, soft, t.exclude)
                    teachers.append(info["temperature"])
            cfgs = [
                dataclasses.replace(
                    tcfg, mode=spec["model"], seed=s, progress=False, num_threads=args.threads
                )
                for s in args.seeds
            ]
            runs = train_many(
                X[fit], L[fit], yfit, P, cfgs, scfg, n_classes=n_classes, teacher_D=Dfit
            )
            for model, _ in runs:
                accs.append(evaluate(model, X[val], L[val], y[val], n_classes)["accuracy"])
        res = {
            "variant": name,
            "spec": spec,
            "val_subjects": args.val_subjects,
            "seeds": args.seeds,
            "val_mean": float(np.mean(accs)),
            "val_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "val_per_run": accs,
            "teacher_temperatures": teachers,
            "seconds": time.perf_counter() - t0,
        }
        print(json.dumps(res), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
