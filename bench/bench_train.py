"""Training throughput of the UTD-MHAD recipe: the batched trainer against the per-seed loop.

    python bench/bench_train.py [--data DIR] [--seeds 5] [--epochs 4] [--repeats 2]

On real UTD-MHAD, paper protocol (subjects 1-5 train: 539 sequences, 6-8 test: 322), with the
recipe of ``config/utd_mhad.yaml`` (its resolved ``training`` settings for ``--mode``, default
``label_smoothing``: 24 frames, width 48, one layer, joints + bones + velocity, rotation and
scale augmentation, dropout 0.1, batch 32, the test split evaluated after every epoch as in the
workflow), in the same process, each timed ``--repeats`` times in alternation (A B A B) and
the median taken:

(a) the old per-seed loop (``geokd.models.train_reference.train_reference``), ``--seeds``
    seeds one after the other;
(b) the batched trainer (``geokd.models.train.train_many``), all ``--seeds`` seeds at once;
(c) the batched trainer with one seed (``train``: what a single-seed job runs).

on one thread and on all threads. Throughput is training samples (sequences x epochs x seeds)
per second, and per second per core; every ratio is of two numbers measured in the same run.

The ceiling (one thread): (b) once more under ``torch.profiler``, the time of its matrix
products alone (``aten::bmm``, ``baddbmm``, ``mm``, ``addmm``, ``matmul`` self time: the grouped
linear layers and the attention's products, forward, backward and evaluation; they already
run at MKL's sgemm rate), and the speed-up over (a) that the batched trainer would reach if
everything else (softmax, LayerNorm, GELU, dropout, optimiser, augmentation, Python) cost
nothing: ``(a) / products``. A target above it needs fewer or cheaper products (another
recipe or precision), not a faster loop.
It also checks, on one thread, that a seed trained in the group of (b) ends with the weights it
has when trained alone in (c) (bit for bit), and prints the per-seed final test accuracy of
(a) and (b) side by side (a few epochs: they show the two paths learn alike, not the final
numbers of the workflow). Needs the real data (default ../shared/datasets/utd-mhad/Skeleton).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from geokd.data.store import load_sequences  # noqa: E402
from geokd.data.utd_mhad import ingest  # noqa: E402
from geokd.models.student import prepare  # noqa: E402
from geokd.models.train import train, train_many  # noqa: E402
from geokd.models.train_reference import train_reference  # noqa: E402
from geokd.settings import resolve  # noqa: E402

DATA = ROOT.parent / "shared/datasets/utd-mhad/Skeleton"


def _data(raw: Path, scfg, tmp: Path):
    """Prepared train (subjects 1-5) and test (6-8) inputs of the paper protocol."""
    store = tmp / "utd_mhad.parquet"
    ingest(raw, store)
    seqs, meta = load_sequences(store)
    subject = meta["subject"].to_numpy()
    y = meta["label"].to_numpy(np.int64)
    out = {}
    for name, keep in (("train", subject <= 5), ("test", subject >= 6)):
        idx = np.flatnonzero(keep)
        X, L = prepare([seqs[i] for i in idx], scfg.max_frames, scfg.normalise, scfg.frame,
                       scfg.resampling)  # fmt: skip
        out[name] = (X, L, y[idx])
    return out


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


#: the profiler's names of the matrix products (self time: the GEMM kernels themselves)
PRODUCTS = {"aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm", "aten::matmul"}


def _products_seconds(fn) -> tuple[float, float]:
    """(wall seconds of ``fn()`` under the profiler, self seconds of its matrix products)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds, _ = _timed(fn)
    events = prof.key_averages()
    return seconds, sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS) / 1e6


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--config", type=Path, default=ROOT / "config/utd_mhad.yaml")
    ap.add_argument("--mode", default="label_smoothing", help="model family (not distilled)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per training (default 4)")
    ap.add_argument("--repeats", type=int, default=2, help="timings per path (median)")
    ap.add_argument("--threads", type=int, nargs="+", help="default: 1 and all cores")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    if not any(args.data.glob("*.mat")):
        sys.exit(f"real UTD-MHAD data not found at {args.data}")
    if args.mode in ("distilled", "metric"):
        sys.exit("--mode: a family that needs no teacher (the loss barely changes the speed)")
    settings = resolve(yaml.safe_load(args.config.read_text()), "utd_mhad")
    tcfg, scfg = settings.training.for_model(args.mode)
    tcfg = replace(tcfg, mode=args.mode, epochs=args.epochs, progress=False, resume_every=0)
    with tempfile.TemporaryDirectory() as tmp:
        data = _data(args.data, scfg, Path(tmp))
    X, L, y = data["train"]
    evals = {"test": data["test"]}
    seeds = list(range(args.seeds))
    all_threads = os.cpu_count() or 1
    threads = args.threads or sorted({1, all_threads})
    n_samples = len(y) * args.epochs * len(seeds)
    print(f"== bench_train {date.today()}: {platform.processor() or platform.machine()}, "
          f"{all_threads} cores, torch {torch.__version__}; {len(y)} training sequences, "
          f"{args.epochs} epochs, {len(seeds)} seeds, mode {args.mode}")  # fmt: skip
    results = {"date": str(date.today()), "cores": all_threads, "torch": str(torch.__version__),
               "n_train": len(y), "epochs": args.epochs, "seeds": seeds, "rows": []}  # fmt: skip
    for n_threads in threads:
        cfgs = [replace(tcfg, seed=s, num_threads=n_threads) for s in seeds]
        paths = {
            "old per-seed loop": lambda cfgs=cfgs: [
                train_reference(X, L, y, None, c, scfg, evals) for c in cfgs
            ],
            "batched, all seeds": lambda cfgs=cfgs: train_many(X, L, y, None, cfgs, scfg, evals),
            "batched, one seed": lambda cfgs=cfgs: [train(X, L, y, None, cfgs[0], scfg, evals)],
        }
        times: dict[str, list[float]] = {k: [] for k in paths}
        last = {}
        for _ in range(args.repeats):
            for name, fn in paths.items():
                seconds, last[name] = _timed(fn)
                times[name].append(seconds)
        base = float(np.median(times["old per-seed loop"])) / len(seeds)  # per seed
        print(f"\n-- {n_threads} thread(s)")
        print(f"{'path':<22} {'s per seed':>10} {'samples/s':>10} {'per core':>9} {'speed-up':>8}")
        for name, ts in times.items():
            per_seed = float(np.median(ts)) / len(last[name])
            rate = n_samples / len(seeds) / per_seed
            row = {"threads": n_threads, "path": name, "seconds_per_seed": per_seed,
                   "samples_per_s": rate, "samples_per_s_per_core": rate / n_threads,
                   "speedup_vs_old": base / per_seed, "all_seconds": ts}  # fmt: skip
            results["rows"].append(row)
            print(f"{name:<22} {per_seed:>10.2f} {rate:>10.0f} {rate / n_threads:>9.0f} "
                  f"{base / per_seed:>7.2f}x")  # fmt: skip
        if n_threads == 1:
            same = _same_weights(last["batched, all seeds"][0][0], last["batched, one seed"][0][0])
            results["seed_in_group_equals_alone"] = same
            print(f"seed {seeds[0]} trained in the group == trained alone, bit for bit: {same}")
            old = [h["eval"]["test"]["accuracy"][-1] for _, h in last["old per-seed loop"]]
            new = [h["eval"]["test"]["accuracy"][-1] for _, h in last["batched, all seeds"]]
            results["test_accuracy_after_epochs"] = {"old": old, "batched": new}
            print(f"test accuracy after {args.epochs} epochs, per seed: old "
                  f"{' '.join(f'{a:.3f}' for a in old)} | batched "
                  f"{' '.join(f'{a:.3f}' for a in new)}")  # fmt: skip
            old_s = float(np.median(times["old per-seed loop"]))
            new_s = float(np.median(times["batched, all seeds"]))
            profiled, products = _products_seconds(paths["batched, all seeds"])
            results["ceiling"] = {
                "old_seconds": old_s, "batched_seconds": new_s, "profiled_seconds": profiled,
                "products_seconds": products, "ceiling_vs_old": old_s / products,
                "rest_seconds": new_s - products, "rest_budget_for_4x": old_s / 4 - products,
            }  # fmt: skip
            print(f"matrix products of (b) (profiled, {profiled:.2f} s): {products:.2f} s of "
                  f"{new_s:.2f} s; ceiling if all else were free: {old_s / products:.2f}x; for 4x "
                  f"the rest ({new_s - products:.2f} s now) must fit in "
                  f"{old_s / 4 - products:.2f} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
