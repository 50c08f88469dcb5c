"""NTU RGB+D 60 scale: one distance block's throughput, the cluster projection, the teacher's
memory, and what a 32-frame budget does to cost and 1-NN accuracy on real UTD-MHAD.

    python bench/bench_ntu_scale.py block [--block 128] [--threads 1 2] [--repeat 3]
    python bench/bench_ntu_scale.py plan --rate MCELLS [--block-size 2048] [--overhead 16]
    python bench/bench_ntu_scale.py teacher [--sizes 2000 4000]
    python bench/bench_ntu_scale.py store [--n 2000]
    python bench/bench_ntu_scale.py ingest [--actions 10]
    python bench/bench_ntu_scale.py frames [--data DIR] [--frames 32]

``block`` times ``geokd.distances.cdist`` (the workflow's kernel, ``procrustes``) on one
``--block`` x ``--block`` block of NTU-sized synthetic sequences: the synthetic NTU generator's
bodies (``geokd.data.ntu_synthetic.kinect_v2`` of the ``body`` generator: 25 Kinect v2 joints,
60-80 frames, about 70 on average as NTU RGB+D's), after a warm-up, best of ``--repeat``, in
float64 and float32, with each ``--threads``; it prints Mcells/s (DTW cells = frame pairs) per
thread. ``plan`` projects the NTU-60 cross-subject matrices (40,320 training and 16,560 test
sequences: train x train upper triangle + test x train) at ``--rate`` Mcells/s per core for
70-frame sequences and for a 32-frame budget: block jobs, core-hours and wall time on 1, 8 and
64 nodes of 32 cores (4-thread block jobs, ``--overhead`` s per job, perfect packing: a lower
bound), and the matrices' sizes. ``teacher`` measures the peak memory of the softmax and NNGK
teachers (subject exclusion, as the ``teacher`` job runs them) on N x N matrices mapped from
``.npy`` files, in a child process each (peak RSS minus the RSS after imports), and the
multiple of the matrix size, to extrapolate to 40,320. ``store`` writes a store of ``--n``
NTU-sized sequences and measures its file size and the peak memory of loading it (what every
block job does first), per sequence, to extrapolate to NTU-60's 56,880. ``ingest`` writes
``--actions`` x 4 performers x 3 cameras x 2 replications synthetic ``.skeleton`` files of
60-80 frames and times ``geokd.data.ntu.ingest`` on them (1 and 2 bodies), per file.
``frames`` computes the real UTD-MHAD paper protocol (subjects 1-5 train, 6-8 test) test x
train matrix with all frames and with every sequence linearly resampled to ``--frames``
frames, and prints the wall time and the exact 1-NN test accuracy of each (raw DTW sums, and
divided by n + m).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from geokd.data.ntu_synthetic import kinect_v2  # noqa: E402
from geokd.data.synthetic import SyntheticConfig, generate  # noqa: E402
from geokd.distances import cdist  # noqa: E402
from geokd.distances.shards import plan_blocks  # noqa: E402

NTU60_XSUB = {"train": 40320, "test": 16560}
MEAN_FRAMES = 70
UTD = ROOT.parent / "shared" / "datasets" / "utd-mhad" / "Skeleton"


def ntu_sequences(n: int, seed: int) -> list[np.ndarray]:
    cfg = SyntheticConfig(n_classes=max(2, n // 2), n_subjects=2, n_trials=1, min_frames=60,
                          max_frames=80, noise=0.01, topology="body", seed=seed)  # fmt: skip
    return [kinect_v2(s) for s in generate(cfg)[0][:n]]


def block(args) -> None:
    q, r = ntu_sequences(args.block, 1), ntu_sequences(args.block, 2)
    cells = sum(len(a) for a in q) * sum(len(b) for b in r)
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; block "
          f"{args.block} x {args.block} NTU-sized sequences (25 joints, mean "
          f"{np.mean([len(a) for a in q + r]):.1f} frames), {cells:.3g} cells")  # fmt: skip
    cdist(q[:2], r[:2], n_jobs=1)  # compile / load the kernels
    cdist(q[:2], r[:2], n_jobs=1, dtype="float32")
    rows = []
    for dtype in ("float64", "float32"):
        for threads in args.threads:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                cdist(q, r, n_jobs=threads, dtype=dtype)
                times.append(time.perf_counter() - t0)
            best = min(times)
            rate = cells / best / 1e6
            rows.append({"dtype": dtype, "threads": threads, "best_s": best,
                         "median_s": float(np.median(times)), "mcells_per_s": rate,
                         "mcells_per_s_per_thread": rate / threads,
                         "ms_per_pair_per_core": best * threads / args.block**2 * 1e3})  # fmt: skip
            print(f"{dtype} {threads} thread(s): best {best:.2f} s (median "
                  f"{np.median(times):.2f}), {rate:.1f} Mcells/s = {rate / threads:.1f} per "
                  f"thread, {rows[-1]['ms_per_pair_per_core']:.3f} core-ms per pair")  # fmt: skip
    print(json.dumps(rows))


def _jobs(block_size: int) -> int:
    n, m = NTU60_XSUB["train"], NTU60_XSUB["test"]
    return len(plan_blocks(n, n, block_size, True)) + len(plan_blocks(m, n, block_size, False))


def plan(args) -> None:
    n, m = NTU60_XSUB["train"], NTU60_XSUB["test"]
    pairs = n * (n - 1) // 2 + m * n
    print(f"# NTU-60 cross-subject: {n} train, {m} test: {pairs:.3g} sequence pairs; "
          f"{args.rate} Mcells/s per core, {args.threads}-thread block jobs, {args.overhead} s "
          "overhead per job")  # fmt: skip
    print(f"matrices: train x train {n * n * 8 / 1e9:.1f} GB, test x train {m * n * 8 / 1e9:.1f} GB"
          f"; one block {args.block_size**2 * 8 / 1e6:.0f} MB")  # fmt: skip
    for frames in (MEAN_FRAMES, args.frames):
        core_s = pairs * frames**2 / (args.rate * 1e6)
        block_s = args.block_size**2 * frames**2 / (args.rate * 1e6 * args.threads)
        jobs = _jobs(args.block_size)
        each = f"{block_s / 60:.1f} min each on {args.threads} threads"
        print(f"{frames} frames: {core_s / 3600:.0f} core-hours; {jobs} blocks of "
              f"{args.block_size}, {each}")  # fmt: skip
        local = core_s / (os.cpu_count() or 1)
        print(f"  this machine ({os.cpu_count()} cores, no scheduler): {local / 3600:.1f} h")
        for nodes in (1, 8, 64):
            cores = nodes * 32
            slots = cores // args.threads
            wall = max((jobs * (block_s + args.overhead)) / slots, block_s + args.overhead)
            print(f"  {nodes} node(s) x 32 cores: {wall / 3600:.2f} h")


def _teacher_child(path: str, n: int, method: str) -> None:
    import resource  # noqa: F401  (child: measure this process only)

    from geokd.models.teacher import exclusion_mask, nngk_teacher, softmax_teacher

    def rss(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        return 0

    base = rss("VmRSS:")
    D = np.load(path, mmap_mode="r")
    subjects = np.arange(n) % 20 + 1
    y = np.arange(n) % 60
    mask = exclusion_mask(subjects, n, True, "subject")
    if method == "softmax":
        softmax_teacher(D, y, 60, temperature=0.1, exclude=mask)
    else:
        nngk_teacher(D, y, 60, exclude=mask)
    print(json.dumps({"peak": rss("VmHWM:") - base}))


def teacher(args) -> None:
    print(f"# teacher memory (peak RSS growth), {platform.node()}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "D.npy"
            g = np.random.default_rng(0)
            D = g.uniform(1, 100, size=(n, n))
            D = (D + D.T) / 2
            np.fill_diagonal(D, 0)
            np.save(path, D)
            del D
            size = n * n * 8
            for method in ("softmax", "nngk"):
                out = subprocess.run(
                    [sys.executable, __file__, "_teacher", str(path), str(n), method],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                peak = json.loads(out.stdout.strip().splitlines()[-1])["peak"]
                full = NTU60_XSUB["train"] ** 2 * 8
                print(f"N = {n}: {method} peak {peak / 1e6:.0f} MB = {peak / size:.2f} x the "
                      f"matrix ({size / 1e6:.0f} MB) -> at {NTU60_XSUB['train']}: "
                      f"{peak / size * full / 1e9:.0f} GB")  # fmt: skip


def _store_child(path: str) -> None:
    from geokd.data.store import load_sequences

    def rss(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        return 0

    base = rss("VmRSS:")
    load_sequences(path)
    print(json.dumps({"peak": rss("VmHWM:") - base}))


def store(args) -> None:
    import pandas as pd

    from geokd.data.ntu import landmarks
    from geokd.data.store import StoreInfo, write_store

    seqs = ntu_sequences(args.n, 3)
    frames = sum(len(s) for s in seqs)
    meta = pd.DataFrame({"sequence_id": [f"s{i}" for i in range(len(seqs))],
                         "label": np.arange(len(seqs)) % 60, "subject": 1, "trial": 1,
                         "source": "x", "sha256": "x", "camera": 1, "setup": 1})  # fmt: skip
    meta["label_name"] = [f"c{x}" for x in meta["label"]]
    names, bones = landmarks(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.parquet"
        write_store(path, seqs, meta, StoreInfo("ntu", names, "m", bones))
        size = path.stat().st_size
        out = subprocess.run([sys.executable, __file__, "_store", str(path)],
                             capture_output=True, text=True, check=True)  # fmt: skip
    peak = json.loads(out.stdout.strip().splitlines()[-1])["peak"]
    raw = frames * 25 * 3 * 8
    scale = 56880 / len(seqs)
    print(f"{len(seqs)} sequences, {frames / len(seqs):.1f} frames on average: frames "
          f"{raw / 1e6:.0f} MB as float64, file {size / 1e6:.0f} MB, load peak "
          f"{peak / 1e6:.0f} MB -> NTU-60 (56,880): file {size * scale / 1e9:.1f} GB, "
          f"load peak {peak * scale / 1e9:.1f} GB")  # fmt: skip


def ingest(args) -> None:
    from geokd.data import ntu
    from geokd.data.ntu_synthetic import NtuSyntheticConfig, write_synthetic_ntu

    cfg = NtuSyntheticConfig(n_actions=args.actions, n_performers=4, n_setups=2,
                             min_frames=60, max_frames=80, two_body_actions=1)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_synthetic_ntu(Path(tmp) / "raw", cfg)
        files = len(list(folder.iterdir()))
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"# {files} synthetic .skeleton files, {size / files / 1e3:.0f} kB each; "
              f"{platform.node()}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        for bodies in (1, 2):
            t0 = time.perf_counter()
            ntu.ingest(folder, Path(tmp) / f"s{bodies}.parquet", bodies=bodies)
            wall = time.perf_counter() - t0
            print(f"bodies {bodies}: {wall:.1f} s, {wall / files * 1e3:.1f} ms per file -> "
                  f"NTU-60's 56,880 files: {wall / files * 56880 / 60:.0f} min")  # fmt: skip


def frames(args) -> None:
    from geokd.data.resample import resample
    from geokd.data.utd_mhad import read_folder

    seqs, meta, _ = read_folder(args.data)
    train = [s for s, k in zip(seqs, meta["subject"], strict=True) if k <= 5]
    test = [s for s, k in zip(seqs, meta["subject"], strict=True) if k >= 6]
    ytr = meta.loc[meta["subject"] <= 5, "label"].to_numpy()
    yte = meta.loc[meta["subject"] >= 6, "label"].to_numpy()
    print(f"# UTD-MHAD paper protocol: {len(train)} train, {len(test)} test, mean "
          f"{np.mean([len(s) for s in seqs]):.1f} frames; {platform.node()}, load "
          f"{os.getloadavg()[0]:.1f}, {args.threads} thread(s)")  # fmt: skip
    cdist(test[:2], train[:2], n_jobs=args.threads)  # warm-up
    for name, (q, r) in {
        "all frames": (test, train),
        f"{args.frames} frames (linear)": (
            [resample(s, args.frames, "linear") for s in test],
            [resample(s, args.frames, "linear") for s in train],
        ),
    }.items():
        cells = sum(len(a) for a in q) * sum(len(b) for b in r)
        t0 = time.perf_counter()
        D = cdist(q, r, n_jobs=args.threads)
        wall = time.perf_counter() - t0
        lengths = D / (np.array([len(a) for a in q])[:, None] + np.array([len(b) for b in r]))
        acc = (ytr[D.argmin(axis=1)] == yte).mean()
        acc_n = (ytr[lengths.argmin(axis=1)] == yte).mean()
        print(f"{name}: {cells:.3g} cells in {wall:.1f} s ({cells / wall / 1e6:.1f} Mcells/s); "
              f"exact 1-NN test accuracy {100 * acc:.1f} % (raw sums), {100 * acc_n:.1f} % "
              "(divided by n + m)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_teacher":
        _teacher_child(argv[1], int(argv[2]), argv[3])
        return 0
    if argv and argv[0] == "_store":
        _store_child(argv[1])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("block")
    b.add_argument("--block", type=int, default=128)
    b.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    b.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("plan")
    p.add_argument("--rate", type=float, required=True, help="Mcells/s per core (float64)")
    p.add_argument("--block-size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--overhead", type=float, default=16.0)
    p.add_argument("--frames", type=int, default=32)
    t = sub.add_parser("teacher")
    t.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    s = sub.add_parser("store")
    s.add_argument("--n", type=int, default=2000)
    i = sub.add_parser("ingest")
    i.add_argument("--actions", type=int, default=10)
    f = sub.add_parser("frames")
    f.add_argument("--data", type=Path, default=UTD)
    f.add_argument("--frames", type=int, default=32)
    f.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    steps = {"block": block, "plan": plan, "teacher": teacher, "store": store,
             "ingest": ingest, "frames": frames}  # fmt: skip
    steps[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
