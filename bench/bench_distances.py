"""Benchmark of geokd.distances._cdist on the real UTD-MHAD paper protocol.

    python bench/bench_distances.py [--quick] [--data DIR]

(a) full matrices train x train (symmetric) + test x train, wall time (--quick: a subset,
    extrapolated per DTW cell and labelled so); (b) DTW cells/s of ``procrustes`` against
    dtaidistance's C ``dtw_ndim.distance_matrix_fast`` on plain Euclidean 60-D frames;
    (c) against the pure-Python port of the original algorithm; (d) a flop-based lower bound;
    (e) KNN latency per test query against the 539 training sequences, with and without pruning.
Needs the real data (default ../shared/datasets/utd-mhad/Skeleton next to the repository).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import scipy.io
from numba import njit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from geokd.distances import _cdist as D  # noqa: E402
from geokd.distances import reference as _reference  # noqa: E402

DATA = ROOT.parent / "shared/datasets/utd-mhad/Skeleton"
NAME = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_skeleton\.mat$")


def load(folder: Path):
    """Paper protocol: subjects 1-5 train, 6-8 test; sequences (T, 20, 3)."""
    train, test = [], []
    for path in sorted(folder.glob("*.mat")):
        m = NAME.match(path.name)
        if not m:
            continue
        seq = np.ascontiguousarray(scipy.io.loadmat(path)["d_skel"].transpose(2, 0, 1))
        (train if int(m.group(2)) <= 5 else test).append(seq)
    return train, test


def cells(a, b=None) -> float:
    """DTW cells (frame pairs) of the matrix a x b, or of the upper triangle of a x a."""
    la = np.array([len(s) for s in a], dtype=float)
    if b is None:
        return float((la.sum() ** 2 - (la**2).sum()) / 2)
    return float(la.sum() * sum(len(s) for s in b))


def timed(fn, repeat: int = 1):
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


@njit(cache=False)
def _chain(n):
    x = 1.0
    for _ in range(n):
        x = x * 1.0000001 + 1e-9  # dependent fmul (3 cycles) + fadd (2 cycles) on Zen 4/5
    return x


def clock_ghz() -> float:
    """Core clock estimate from a dependent mul+add chain (5 cycles per iteration on Zen 5)."""
    _chain(10)
    n = 50_000_000
    t = time.perf_counter()
    _chain(n)
    return 5 * n / (time.perf_counter() - t) / 1e9


def flops_per_cell(K: int) -> dict:
    """Floating-point operations per DTW cell of the procrustes kernel (a fused multiply-add
    counts as 2, as in the peak figure)."""
    return {
        "cross-covariance (9 mul + 9 add per landmark)": 18 * K,
        "residual norms (R y, difference, square, sqrt, sum per landmark)": 25 * K,
        "quartic coefficients + upper bound": 100,
        "4 Laguerre steps (1 sqrt + 1 div each, ~25 flop) + 1 Newton step": 115,
        "adjugate + column choice": 111,
        "quaternion -> rotation": 62,
        "DTW recursion": 4,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="subset, extrapolated (a few seconds)")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"UTD-MHAD skeleton folder not found: {args.data}")
    train, test = load(args.data)
    threads = D._threads(None)
    print(
        f"# geokd distance benchmark, {date.today()}, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs, numba threads {threads}, load avg "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(f"# UTD-MHAD paper protocol: {len(train)} train, {len(test)} test sequences")
    D.cdist(train[:3])  # compile (or load the numba cache)
    D.knn_query(test[0], train[:3], 1)

    rows = []
    # (a) full matrices
    tr = train[::4] if args.quick else train
    te = test[::4] if args.quick else test
    c_sym, c_rect = cells(tr), cells(te, tr)
    t_sym, _ = timed(lambda: D.cdist(tr))
    t_rect, _ = timed(lambda: D.cdist(te, tr))
    full = cells(train) + cells(test, train)
    rate = (c_sym + c_rect) / (t_sym + t_rect)
    label = "extrapolated from a 1/16 subset" if args.quick else "measured"
    rows.append(
        (
            "(a) train x train (sym) + test x train, wall",
            f"{full / rate:.1f} s",
            f"{full:.3g} cells, {rate / 1e6:.1f} Mcells/s, {label}; target <= 60 s",
        )
    )

    # (b) dtaidistance C, Euclidean frames, same sequences
    sub = train[:: 8 if args.quick else 3]
    c_sub = cells(sub)
    flat = [np.ascontiguousarray(s.reshape(len(s), -1)) for s in sub]
    runs = {
        "us2": lambda: D.cdist(sub),
        "us1": lambda: D.cdist(sub, n_jobs=1),
    }
    try:
        from dtaidistance import dtw_ndim

        dtw_ndim.distance_matrix_fast(flat[:3])
        runs["dt2"] = lambda: dtw_ndim.distance_matrix_fast(flat, parallel=True)
        runs["dt1"] = lambda: dtw_ndim.distance_matrix_fast(flat, parallel=False)
    except ImportError:
        pass
    best = {k: math.inf for k in runs}
    for _ in range(3):  # interleaved, best of 3: the two sides see the same machine load
        for key, fn in runs.items():
            best[key] = min(best[key], timed(fn)[0])
    t_us2, t_us1 = best["us2"], best["us1"]
    t_dt2, t_dt1 = best.get("dt2", math.nan), best.get("dt1", math.nan)
    rows.append(
        (
            "(b) procrustes DTW, all threads",
            f"{c_sub / t_us2 / 1e6:.1f} Mcells/s",
            f"dtaidistance C (squared-Euclidean 60-D frames, OpenMP): "
            f"{c_sub / t_dt2 / 1e6:.1f} Mcells/s; ratio {t_dt2 / t_us2:.2f}x (target >= 1)",
        )
    )
    rows.append(
        (
            "(b) procrustes DTW, 1 thread",
            f"{c_sub / t_us1 / 1e6:.1f} Mcells/s",
            f"dtaidistance C serial: {c_sub / t_dt1 / 1e6:.1f} Mcells/s; "
            f"ratio {t_dt1 / t_us1:.2f}x; {len(sub)} sequences, {c_sub:.3g} cells",
        )
    )

    # (c) the original algorithm, pure Python, a few pairs
    pairs = [(train[0][:30], train[200][:30]), (train[100][:30], test[50][:30])]
    if not args.quick:
        pairs.append((train[300], test[200]))
    t_orig = sum(timed(lambda a=a, b=b: _reference.original_distance(a, b))[0] for a, b in pairs)
    orig_rate = sum(len(a) * len(b) for a, b in pairs) / t_orig
    rows.append(
        (
            "(c) original (Python loops + SVD per cell)",
            f"{orig_rate / 1e3:.1f} kcells/s",
            f"speed-up: {c_sub / t_us2 / orig_rate:.0f}x all threads, "
            f"{c_sub / t_us1 / orig_rate:.0f}x 1 thread (target >= 2000x)",
        )
    )

    # (d) flop bound
    f = flops_per_cell(20)
    total = sum(f.values())
    ghz = clock_ghz()
    peak = 32 * ghz  # Gflop/s per core: AVX-512, 2 FMUL + 2 FADD pipes x 8 doubles, no FMA
    bound = full * total / (peak * 1e9 * threads)
    ns_cell = threads / rate * 1e9
    rows.append(
        (
            "(d) flop lower bound, full protocol",
            f"{bound:.1f} s",
            f"{total} flop/cell at {peak:.0f} Gflop/s/core (32 flop/cycle x {ghz:.2f} GHz"
            f" x {threads} cores); kernel {ns_cell:.1f} ns/cell/core = "
            f"{total / ns_cell:.0f} Gflop/s/core, {full / rate / bound:.1f}x the bound",
        )
    )

    # (e) KNN latency against the training set
    R = D.prepare(train)
    queries = test[:: 16 if args.quick else 4]
    for prune in (True, False):
        lat, frac = [], []
        for q in queries:
            t, (_, _, n) = timed(
                lambda q=q, p=prune: D.knn_query(q, R, 1, prune=p, return_stats=True)
            )
            lat.append(t)
            frac.append(n / (len(q) * len(train)))
        rows.append(
            (
                f"(e) 1-NN latency per query, prune={prune}",
                f"{1e3 * np.median(lat):.1f} ms (median)",
                f"mean {1e3 * np.mean(lat):.1f} ms over {len(queries)} test queries, "
                f"{100 * np.mean(frac):.0f}% of the DTW rows computed",
            )
        )

    print("\n| measure | value | details |\n|---|---|---|")
    for name, value, detail in rows:
        print(f"| {name} | {value} | {detail} |")
    print("\nflops per cell (K = 20):")
    for k, v in f.items():
        print(f"  {v:5d}  {k}")


if __name__ == "__main__":
    main()
