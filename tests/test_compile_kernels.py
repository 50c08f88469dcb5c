"""scripts/compile_kernels.py (run by make install): every entry kernel compiled for both
precisions and written to numba's on-disk cache, so that a new process loads it instead of
compiling it again. Each check runs in a process of its own (a test process may have compiled
kernels already)."""

import json
import subprocess
import sys
from pathlib import Path

from geokd.distances import _kernels

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compile_kernels.py"
#: entry kernels and the frame precisions the public API compiles them for (the frame costs of
#: a single pair, frame_cost_matrix, are float64 only)
ENTRIES = {
    "dtw_pairs": ["float32", "float64"],
    "knn_many": ["float32", "float64"],
    "cost_matrix": ["float64"],
}

COMPILE = f"""
import json, runpy
from geokd.distances import _kernels
seconds = runpy.run_path({str(SCRIPT)!r})["compile_kernels"]()
print(json.dumps({{"seconds": sorted(seconds), "frames": {{
    name: sorted({{str(sig[2].dtype) for sig in getattr(_kernels, name).signatures}})
    for name in {sorted(ENTRIES)!r}}}}}))
"""

USE = """
import json, numpy as np
from geokd.distances import _kernels, cdist, knn_query
rng = np.random.default_rng(1)
a = [rng.normal(size=(5, 20, 3)) for _ in range(3)]
for dtype in ("float64", "float32"):
    cdist(a, dtype=dtype, n_jobs=1)
    knn_query(a[0], a[1:], 1, dtype=dtype, n_jobs=1)
print(json.dumps({name: [len(getattr(_kernels, name).stats.cache_hits),
                         len(getattr(_kernels, name).stats.cache_misses)]
                  for name in ("dtw_pairs", "knn_many")}))
"""


def python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_entry_kernel_is_compiled_for_both_precisions_and_cached():
    out = python(COMPILE)
    metrics = ("euclidean", "hand", "paper", "procrustes")
    assert out["seconds"] == sorted(f"{m} {d}" for m in metrics for d in ("float32", "float64"))
    assert out["frames"] == ENTRIES
    cache = Path(_kernels.__file__).parent / "__pycache__"
    for name in ENTRIES:
        assert list(cache.glob(f"_kernels.{name}-*.nbi")), name


def test_a_new_process_loads_the_kernels_from_the_cache():
    python(COMPILE)
    for name, (hits, misses) in python(USE).items():
        assert hits >= 2 and misses == 0, (name, hits, misses)
