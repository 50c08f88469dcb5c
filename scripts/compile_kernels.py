"""Compile geokd's distance kernels into numba's on-disk cache, once, ahead of use.

    python scripts/compile_kernels.py      # make install runs it

The numba kernels (geokd/distances/_kernels.py) are compiled lazily, per type signature, on
their first call, and cached on disk (``cache=True``: ``__pycache__`` beside the module). In a
fresh install every first caller pays for the compilation, and workflow jobs or test processes
that start at the same time each compile the same kernels at once (a fresh clone's tiny test
run spent 35-40 s in each of its two 1-NN latency jobs doing so). This calls every public entry
point once per metric and precision on a few tiny random sequences, so that later processes
load the compiled code instead. It is not part of the package (whose code is hashed into every
stage's provenance): it only calls the public API.
"""

from __future__ import annotations

import time

import numpy as np


def _sequences(rng: np.random.Generator, n: int, k: int) -> list[np.ndarray]:
    return [rng.normal(size=(int(t), k, 3)) for t in rng.integers(4, 7, size=n)]


def compile_kernels() -> dict[str, float]:
    """Run every kernel once per metric and precision (matrices, blocks with and without a
    window, single pairs, frame costs, pruned and full 1-NN queries); the seconds each
    (metric, precision) took. A second call in a warm cache takes a few seconds at most."""
    from geokd.distances import (
        HAND_SIZE,
        METRICS,
        cdist,
        frame_cost_matrix,
        knn_query,
        pair_distance,
    )

    rng = np.random.default_rng(0)
    seconds: dict[str, float] = {}
    for metric in METRICS:
        # 20 joints take the unrolled covariance of UTD-MHAD skeletons, 25 the general one
        sizes = (2 * HAND_SIZE,) if metric == "hand" else (20, 25)
        for dtype in ("float64", "float32"):
            t0 = time.perf_counter()
            for k in sizes:
                a, b = _sequences(rng, 3, k), _sequences(rng, 2, k)
                for window in (None, 2):
                    cdist(a, metric=metric, window=window, dtype=dtype, n_jobs=1)
                    cdist(b, a, metric=metric, window=window, dtype=dtype, n_jobs=1)
                    # one query (the latency job) and several (a block of queries)
                    for prune in (True, False):
                        for query, n_neighbours in ((b[0], 1), (b, 2)):
                            knn_query(query, a, n_neighbours, metric=metric, window=window,
                                      prune=prune, dtype=dtype, n_jobs=1)  # fmt: skip
                if dtype == "float64":
                    pair_distance(a[0], b[0], metric=metric)
                    frame_cost_matrix(a[0], b[0], metric=metric)
            seconds[f"{metric} {dtype}"] = time.perf_counter() - t0
    return seconds


def main() -> None:
    seconds = compile_kernels()
    for what, s in seconds.items():
        print(f"  {what}: {s:.1f} s")
    print(f"compiled the distance kernels in {sum(seconds.values()):.0f} s (numba's cache)")


if __name__ == "__main__":
    main()
