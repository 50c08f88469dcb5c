"""GPU (PyTorch/CUDA) backend of geokd.distances.cdist at SIGNUM scale: throughput, projection.

    python bench/bench_gpu.py [--device cuda|cpu] [--pairs N] [--check N] [--budget 2^26]
                              [--metric procrustes|hand] [--dtype float64,float32]
                              [--threads T] [--repeat R] [--quick] [--json PATH]

Times ``cdist(..., backend="cuda")`` (``--device cpu``: ``backend="torch"``, the same PyTorch
code on the CPU) in each ``--dtype`` (default both float64 and float32) on a queries x
references block of about ``--pairs`` sequence pairs of synthetic SIGNUM-shaped sequences
(seeded numpy random walks, 80 frames x 21 landmarks), after a warm-up, best of ``--repeat``
runs interleaved with the CPU numba kernel (``backend="cpu"``) on the same pairs. Prints pairs/s
and frame pairs/s of each, the ratio backend time / CPU-kernel time, and the projected wall time
of the whole SIGNUM signer protocol (train 6,300 x train upper triangle + val 1,800 x train +
test 1,901 x train = 43.2 M pairs) against the 10-minute target, per pair at the measured rate.
``--threads``: torch's and numba's threads (default: 1 on ``--device cpu``, a per-core
comparison; all numba threads on cuda).
Correctness: the maximum relative difference to the CPU kernel on a symmetric matrix of at
least ``--check`` pairs (and on the timed pairs), against 1e-9 (float64) and the tested float32
tolerance (``tests/test_torch_backend.py``: 1e-4).
``--budget`` overrides ``geokd.distances._torch.BUDGET`` / ``BUDGET_CUDA`` (elements of the
largest intermediate: a tile holds budget / 9 frame pairs, a DTW chunk budget / (m n) pairs)
for the run: larger tiles are the main GPU tuning knob.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
# Before numba and torch load OpenMP: numba's workers spin-wait after each parallel region and
# take the cores torch then runs on (measured here: the torch backend on the CPU ~5x slower
# right after a numba call); passive waiting avoids it and leaves numba's own speed unchanged.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench_signum_scale import signum_pairs  # noqa: E402  (the same split sizes)

from geokd.distances import _cdist as D  # noqa: E402
from geokd.distances import _torch as _torch_backend  # noqa: E402

TARGET_S = 600.0  # the whole set of matrices on one H100
RTOL = {"float64": 1e-9, "float32": 1e-4}  # agreement with the CPU kernel (tested tolerances)


def parse_budget(text: str) -> int:
    """An int, or 2^N / 2**N / 1<<N."""
    t = text.replace(" ", "").replace("**", "^")
    if "^" in t:
        base, exp = t.split("^")
        return int(base) ** int(exp)
    if "<<" in t:
        base, shift = t.split("<<")
        return int(base) << int(shift)
    return int(t)


def pow2(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else f"{n:.3g}"


def sequences(n: int, frames: int, landmarks: int, seed: int) -> list[np.ndarray]:
    """Seeded random walks (frames, landmarks, 3) around a random skeleton."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.normal(size=(landmarks, 3))
        steps = rng.normal(scale=0.05, size=(frames, landmarks, 3))
        out.append(base + np.cumsum(steps, axis=0))
    return out


def block_shape(pairs: int) -> tuple[int, int]:
    """(queries, references) of a near-square block of at least ``pairs`` pairs."""
    nr = max(1, math.ceil(math.sqrt(pairs)))
    return max(1, math.ceil(pairs / nr)), nr


def max_rel_diff(got: np.ndarray, ref: np.ndarray) -> float:
    scale = np.where(ref != 0, np.abs(ref), 1.0)
    return float((np.abs(got - ref) / scale).max()) if ref.size else 0.0


def fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda: backend='cuda'; cpu: backend='torch' on the CPU",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="sequence pairs to time (default 20000 on cuda, 200 on cpu)",
    )
    ap.add_argument(
        "--check",
        type=int,
        default=None,
        help="pairs compared against the CPU kernel (default 200)",
    )
    ap.add_argument(
        "--budget",
        type=parse_budget,
        default=None,
        help="override _torch_backend.BUDGET / BUDGET_CUDA (now "
        f"{pow2(_torch_backend.BUDGET)} / {pow2(_torch_backend.BUDGET_CUDA)}); int or 2^N",
    )
    ap.add_argument("--metric", choices=("procrustes", "hand"), default="procrustes")
    ap.add_argument(
        "--dtype",
        default="float64,float32",
        help="comma-separated torch-backend dtypes to time (default: float64,float32)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and numba threads (default: 1 on --device cpu; all numba threads on cuda)",
    )
    ap.add_argument("--repeat", type=int, default=None, help="best of R (default 3, quick 1)")
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--landmarks", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (well under a minute on CPU)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    cuda = args.device == "cuda"
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    if not dtypes or any(d not in RTOL for d in dtypes):
        ap.error(f"--dtype: a comma-separated list of {sorted(RTOL)}")
    if args.pairs is None:
        args.pairs = (2000 if cuda else 24) if args.quick else (20000 if cuda else 200)
    if args.check is None:
        args.check = (50 if cuda else 15) if args.quick else 200
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.metric == "hand" and args.landmarks % D.HAND_SIZE:
        ap.error("--metric hand needs --landmarks = 21 * H")
    if args.budget is not None:
        _torch_backend.BUDGET = _torch_backend.BUDGET_CUDA = args.budget
    budget = _torch_backend.BUDGET_CUDA if args.device == "cuda" else _torch_backend.BUDGET

    import torch

    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False (use --device cpu)")
    backend = "cuda" if cuda else "torch"
    if args.threads is None and not cuda:
        args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    T, K = args.frames, args.landmarks
    frame_pairs = T * T
    tile = max(1, budget // (_torch_backend.WIDTH * frame_pairs))  # pairs per tile
    chunk = max(1, budget // frame_pairs)  # pairs per DTW chunk
    threads = D._threads(args.threads)
    if cuda:
        dev_name = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        dev_name = f"CPU {platform.processor() or platform.machine()}, torch threads " + str(
            torch.get_num_threads()
        )
    print(f"# geokd GPU-backend benchmark, {date.today()}, {platform.node()}: {dev_name}")
    print(
        f"# torch {torch.__version__}, backend={backend!r}, metric={args.metric!r}, dtypes "
        f"{','.join(dtypes)}, budget {pow2(budget)} = {budget} elements (tiles of ~{tile} "
        f"pairs of {T}x{T} frames, DTW chunks of ~{chunk} pairs); CPU kernel: numba, {threads} "
        f"threads, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}"
    )
    full = signum_pairs()
    print(
        f"# SIGNUM signer protocol: {full:.4g} sequence pairs ({full * frame_pairs:.3g} frame "
        f"pairs) of {T} x {K} landmark sequences; target <= {TARGET_S / 60:.0f} min"
    )

    params = {} if args.metric == "procrustes" else dict(D.HAND_DEFAULTS)

    def run(q, r=None, be=backend, dtype="float64"):
        if be == "cpu":
            return D.cdist(q, r, metric=args.metric, n_jobs=threads, **params)
        return D.cdist(q, r, metric=args.metric, backend=be, dtype=dtype, **params)

    nq, nr = block_shape(args.pairs)
    queries = sequences(nq, T, K, seed=1)
    refs = sequences(nr, T, K, seed=2)
    n_pairs = nq * nr
    # warm-up: CUDA context, numba cache; at least two full tiles of the backend per dtype
    run(queries[:2], refs[:2], "cpu")
    wq = max(1, min(nq, math.ceil(2 * tile / nr)))
    print(f"warm-up ({wq} x {nr} pairs per dtype) ...", flush=True)
    for dt in dtypes:
        sync()
        run(queries[:wq], refs, dtype=dt)
        sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    print(f"timing {nq} x {nr} = {n_pairs} pairs, best of {args.repeat} ...", flush=True)
    t_be = dict.fromkeys(dtypes, math.inf)
    d_be: dict[str, np.ndarray] = {}
    t_cpu, d_cpu = math.inf, None
    for _ in range(args.repeat):  # interleaved: all see the same machine load
        for dt in dtypes:
            sync()
            t0 = time.perf_counter()
            d_be[dt] = run(queries, refs, dtype=dt)
            sync()
            t_be[dt] = min(t_be[dt], time.perf_counter() - t0)
        t0 = time.perf_counter()
        d_cpu = run(queries, refs, "cpu")
        t_cpu = min(t_cpu, time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else None

    s = max(2, math.ceil((1 + math.sqrt(1 + 8 * args.check)) / 2))
    print(f"checking a symmetric {s} x {s} matrix ({s * (s - 1) // 2} pairs) ...", flush=True)
    chk = sequences(s, T, K, seed=3)
    iu = np.triu_indices(s, k=1)
    c_cpu = run(chk, be="cpu")[iu]
    err_check = {dt: max_rel_diff(run(chk, dtype=dt)[iu], c_cpu) for dt in dtypes}
    err_timed = {dt: max_rel_diff(d_be[dt], d_cpu) for dt in dtypes}

    rate_cpu = n_pairs / t_cpu
    proj_cpu = full / rate_cpu
    rows = []
    per_dtype = {}
    for dt in dtypes:
        rate = n_pairs / t_be[dt]
        proj = full / rate
        verdict = "met" if proj <= TARGET_S else f"NOT met ({proj / TARGET_S:.1f}x over)"
        tol = RTOL[dt]
        rows += [
            (
                f"{backend} backend {dt} throughput",
                f"{rate:,.0f} pairs/s",
                f"{rate * frame_pairs / 1e6:.2f} M frame pairs/s; {n_pairs} pairs, "
                f"{t_be[dt]:.3f} s, best of {args.repeat}",
            ),
            (
                f"ratio {dt} backend time / CPU-kernel time",
                f"{t_be[dt] / t_cpu:.3g}",
                "same pairs, same run (< 1: the backend is faster)",
            ),
            (
                f"projected SIGNUM set, {backend} {dt}",
                fmt_s(proj),
                f"{full:.4g} pairs at {rate:,.0f} pairs/s; target <= {TARGET_S / 60:.0f} min: "
                f"{verdict}",
            ),
            (
                f"max relative difference to the CPU kernel, {dt}",
                f"{err_check[dt]:.2e}",
                f"{s * (s - 1) // 2} pairs (symmetric {s} x {s}); within {tol:g}: "
                f"{'yes' if err_check[dt] <= tol else 'NO'}",
            ),
            (
                "... on the timed pairs",
                f"{err_timed[dt]:.2e}",
                f"{n_pairs} pairs; within {tol:g}: {'yes' if err_timed[dt] <= tol else 'NO'}",
            ),
        ]
        per_dtype[dt] = {
            "backend_s": t_be[dt],
            "backend_pairs_per_s": rate,
            "backend_frame_pairs_per_s": rate * frame_pairs,
            "ratio_backend_over_cpu": t_be[dt] / t_cpu,
            "projected_s": proj,
            "target_met": proj <= TARGET_S,
            "max_rel_diff": err_check[dt],
            "max_rel_diff_timed": err_timed[dt],
            "rtol": tol,
            "within_rtol": max(err_check[dt], err_timed[dt]) <= tol,
        }
    rows[1:1] = [
        (
            "CPU kernel (numba), same pairs",
            f"{rate_cpu:,.0f} pairs/s",
            f"{rate_cpu * frame_pairs / 1e6:.2f} M frame pairs/s; {threads} threads, {t_cpu:.3f} s",
        ),
        (
            "projected SIGNUM set, CPU kernel here",
            fmt_s(proj_cpu),
            f"{threads} threads at {rate_cpu:,.0f} pairs/s",
        ),
    ]
    if peak is not None:
        rows.append(
            (
                "peak GPU memory (timed runs)",
                f"{peak / 2**30:.2f} GiB",
                f"budget {pow2(budget)} elements",
            )
        )
    print("\n| measure | value | details |\n|---|---|---|")
    for name, value, detail in rows:
        print(f"| {name} | {value} | {detail} |")

    if args.json is not None:
        first = per_dtype[dtypes[0]]
        result = {
            "date": str(date.today()),
            "host": platform.node(),
            "device": dev_name,
            "torch": torch.__version__,
            "backend": backend,
            "metric": args.metric,
            "budget": budget,
            "tile_pairs": tile,
            "chunk_pairs": chunk,
            "frames": T,
            "landmarks": K,
            "pairs": n_pairs,
            "block": [nq, nr],
            "repeat": args.repeat,
            "cpu_s": t_cpu,
            "cpu_threads": threads,
            "cpu_pairs_per_s": rate_cpu,
            "signum_pairs": full,
            "projected_cpu_s": proj_cpu,
            "target_s": TARGET_S,
            "check_pairs": s * (s - 1) // 2,
            "peak_gpu_bytes": peak,
            "dtypes": per_dtype,
            **{k: first[k] for k in first},  # the first dtype's figures, flat (as before)
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
