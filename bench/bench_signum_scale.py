"""SIGNUM-scale distance blocks: throughput per core here, and the projected cluster wall time.

    python bench/bench_signum_scale.py [--block 64] [--overhead 10] [--threads 1]

Times one block of ``--block`` x ``--block`` sequence pairs of SIGNUM shape (80 frames, both
hands = 42 MediaPipe landmarks; the synthetic ``two_hands`` generator, as written by
``geokd synthetic-signum``) for the ``hand`` and ``procrustes`` metrics with ``--threads``
threads, after a warm-up (numba compilation). From the measured seconds per pair and core it
prints blocks per hour per core for the workflow's block size (``--block-size``, default 256
as in config/signum.yaml) and projects the wall time of the SIGNUM matrices of the signer
protocol (train 6,300, val 1,800, test 1,901: train x train upper triangle, val x train, test x
train) on 1 machine of this kind and on 1, 8 and 64 nodes of 32 cores, with ``--overhead``
seconds of scheduling per job (measured on the local SLURM cluster: bench/bench_slurm.py).
Projection: wall = max((pairs x core-s/pair + jobs x overhead) / cores, one block + overhead),
i.e. perfect packing of single-core blocks: a lower bound when the last wave is partly empty.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from geokd.data.synthetic import SyntheticConfig, generate  # noqa: E402
from geokd.distances._cdist import cdist  # noqa: E402

SIGNUM = {"train": 6300, "val": 1800, "test": 1901}
METRIC_PARAMS = {"hand": {"s1": 0.5111, "s2": 1.6964, "s3": 0.1191, "delta": 0.2044}}


def signum_pairs() -> int:
    n = SIGNUM["train"]
    return n * (n - 1) // 2 + (SIGNUM["val"] + SIGNUM["test"]) * n


def signum_jobs(block_size: int) -> int:
    nb = math.ceil(SIGNUM["train"] / block_size)
    upper = nb * (nb + 1) // 2
    rest = sum(math.ceil(SIGNUM[s] / block_size) for s in ("val", "test")) * nb
    return upper + rest


def sequences(n: int, seed: int) -> list:
    cfg = SyntheticConfig(
        n_classes=max(2, n // 2),
        n_subjects=2,
        n_trials=1,
        min_frames=80,
        max_frames=80,
        topology="two_hands",
        noise=0.002,
        seed=seed,
    )
    seqs, _, _ = generate(cfg)
    return seqs[:n]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=64, help="timed block: B x B pairs")
    ap.add_argument("--block-size", type=int, default=256, help="workflow block size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--overhead", type=float, default=10.0, help="scheduling s per job")
    args = ap.parse_args(argv)
    q, r = sequences(args.block, 1), sequences(args.block, 2)
    print(
        f"# SIGNUM-scale blocks on {platform.node()}: {os.cpu_count()} cores, "
        f"{args.threads} thread(s); timed block {args.block}x{args.block} pairs of "
        f"80 x 42 landmark sequences"
    )
    pairs, jobs = signum_pairs(), signum_jobs(args.block_size)
    print(
        f"# SIGNUM signer protocol: {pairs:.3e} sequence pairs ({pairs * 6400:.2e} frame pairs),"
        f" {jobs} blocks of {args.block_size} at {args.overhead:.0f} s scheduling each"
    )
    for metric in ("hand", "procrustes"):
        params = METRIC_PARAMS.get(metric, {})
        cdist(q[:2], r[:2], metric=metric, n_jobs=args.threads, **params)  # compile
        t0 = time.perf_counter()
        cdist(q, r, metric=metric, n_jobs=args.threads, **params)
        dt = time.perf_counter() - t0
        per_pair = dt * args.threads / (args.block * args.block)  # core-seconds per pair
        block_s = per_pair * args.block_size**2
        print(
            f"\n{metric}: {1e3 * per_pair:.3f} core-ms per pair "
            f"({6400 / per_pair / 1e6:.1f} M frame pairs/s per core); a {args.block_size}x"
            f"{args.block_size} block = {block_s:.0f} core-s -> "
            f"{3600 / block_s:.1f} blocks per hour per core"
        )
        total = pairs * per_pair
        local = os.cpu_count() or 1
        print(f"  {'this machine':>14}: {hours(total / local)} (local run, no scheduler)")
        for label, cores in (("1 node x 32", 32), ("8 nodes x 32", 256), ("64 nodes x 32", 2048)):
            # perfect packing, but never less than one block (more cores than blocks)
            wall = max((total + jobs * args.overhead) / cores, block_s + args.overhead)
            print(f"  {label:>14}: {hours(wall)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
