"""Peak memory of assembling (and loading) a full-scale distance matrix.

    python bench/bench_assemble.py                  # 10,001 x 10,001 (SIGNUM train x train)
    python bench/bench_assemble.py --quick          # 2,000 x 2,000, a few seconds
    python bench/bench_assemble.py --n N --block-size B --dir DIR

Writes the blocks of a synthetic symmetric ``n x n`` matrix (random non-negative values,
diagonal blocks exactly symmetric with a zero diagonal) with the workflow's own block writer
(:func:`geokd.distances.shards.write_block`) into a temporary folder (``--dir``, default: the
larger of /tmp and the repository's file system; the full size needs about 2.5 GB), then runs
each step in a fresh child process, one after the other:

- ``stream``: :func:`~geokd.distances.shards.assemble` (strips of rows written and hashed as
  they go);
- ``in_memory``: ``assemble(..., in_memory=True)``, the former way (the matrix in memory,
  then :func:`~geokd.distances.shards.write_npy_with_sidecar`), the baseline;
- ``load``: :func:`~geokd.distances.shards.load_matrix` (streamed SHA-256, then memory-mapped
  and checked: finite, non-negative, symmetric, zero diagonal);
- ``load_copy``: ``load_matrix(mmap=False)`` (a writable array in memory);
- ``load_old``: the former reader (every byte read into memory, then ``numpy.load`` from
  them, then the same checks), the baseline.

Each child reports its peak resident memory (``VmHWM`` of ``/proc/self/status``) minus its
resident memory right after its imports, its wall time, and how much of its resident memory
at the end is mapped file pages (``RssFile``: the page cache of a memory-mapped matrix, clean
and shared, which the kernel can drop and read again). Both
assembled files and sidecars are compared byte for byte. ``tests/test_assemble_memory.py``
uses :func:`write_blocks` and :func:`run_child`.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from geokd.distances.shards import MatrixSpec, plan_blocks, write_block  # noqa: E402

SPEC = MatrixSpec("train", "train")
STEPS = ("stream", "in_memory", "load", "load_copy", "load_old")


def write_blocks(folder: Path, n: int, block_size: int, seed: int = 0) -> tuple[Path, list[Path]]:
    """The split table of ``n`` training sequences and the blocks of their (synthetic,
    symmetric) train x train matrix in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    split = folder / "split.tsv"
    rows = [f"s{i:06d}\t{i % 450}\t1\ttrain" for i in range(n)]
    split.write_text("sequence_id\tlabel\tsubject\tsplit\n" + "\n".join(rows) + "\n")
    rng = np.random.default_rng(seed)
    paths = []
    for bi, bj in plan_blocks(n, n, block_size, symmetric=True):
        nq = min(block_size, n - bi * block_size)
        nr = min(block_size, n - bj * block_size)
        values = rng.random((nq, nr)) * 100.0  # (nq, nr)
        if bi == bj:
            values = values + values.T  # exactly symmetric: a + b == b + a
            np.fill_diagonal(values, 0.0)
        path = folder / f"block_{bi}_{bj}.npy"
        write_block(path, values, SPEC, (bi, bj), block_size)
        paths.append(path)
    return split, paths


_CHILD = """
import io, json, sys, time
sys.path.insert(0, {src!r})
import numpy as np
from geokd.checksum import check_distances, read_verified
from geokd.distances.shards import MatrixSpec, assemble, load_matrix

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

step, folder, block_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
blocks = sorted(p for p in __import__("glob").glob(folder + "/block_*.npy"))
spec = MatrixSpec("train", "train")
rss0, file0 = status("VmRSS"), status("RssFile")
t0 = time.perf_counter()
if step in ("stream", "in_memory"):
    out = folder + f"/{{step}}.npy"
    in_memory = step == "in_memory"
    m = assemble(folder + "/split.tsv", blocks, out, spec, block_size, in_memory=in_memory)
    shape = m.shape
else:
    path = folder + "/stream.npy"
    if step == "load_old":
        data, side = read_verified(path)
        D = np.load(io.BytesIO(data), allow_pickle=False)
        check_distances(path, D, side)
    else:
        D, side = load_matrix(path, mmap=step == "load")
    shape = D.shape
seconds = time.perf_counter() - t0
print(json.dumps({{"step": step, "rss0": rss0, "hwm": status("VmHWM"), "seconds": seconds,
                  "file": status("RssFile") - file0, "shape": list(shape)}}))
"""


def run_child(step: str, folder: Path, block_size: int) -> dict:
    """Run one step in a fresh Python process; its peak memory growth (bytes) and time."""
    code = _CHILD.format(src=str(ROOT / "src"))
    done = subprocess.run(
        [sys.executable, "-c", code, step, str(folder), str(block_size)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{step} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["growth"] = result["hwm"] - result["rss0"]
    return result


def _scratch(requested: str | None) -> Path:
    if requested:
        return Path(requested)
    roots = [Path(tempfile.gettempdir()), ROOT]
    return max(roots, key=lambda p: shutil.disk_usage(p).free)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10001, help="matrix rows and columns")
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--quick", action="store_true", help="n = 2000, block size 256")
    ap.add_argument("--dir", help="scratch folder (default: /tmp or the repository's disk)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    args = ap.parse_args(argv)
    n, bs = (2000, 256) if args.quick else (args.n, args.block_size)
    matrix_mb = n * n * 8 / 1e6
    scratch = _scratch(args.dir)
    print(f"# {date.today()}  {platform.machine()}, {platform.python_version()}, numpy "
          f"{np.__version__}; scratch {scratch} ({shutil.disk_usage(scratch).free / 1e9:.0f} GB"
          " free)")  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="bench_assemble.", dir=scratch))
    try:
        _, blocks = write_blocks(folder, n, bs)
        print(f"# {n} x {n} float64 matrix = {matrix_mb:.1f} MB; {len(blocks)} blocks of {bs}")
        print(f"{'step':<10} {'peak RSS growth MB':>19} {'x matrix':>9} {'wall s':>7}"
              f" {'mapped file MB at end':>22}")  # fmt: skip
        for step in STEPS:
            r = run_child(step, folder, bs)
            assert r["shape"] == [n, n], r
            mb = r["growth"] / 1e6
            print(f"{step:<10} {mb:>19.0f} {mb / matrix_mb:>9.2f} {r['seconds']:>7.1f}"
                  f" {r['file'] / 1e6:>22.0f}")  # fmt: skip
        same = all(
            filecmp.cmp(folder / f"stream{ext}", folder / f"in_memory{ext}", shallow=False)
            for ext in (".npy", ".npy.json")
        )
        print(f"stream and in_memory files byte-identical: {same}")
        return 0 if same else 1
    finally:
        if args.keep:
            print(f"# kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
