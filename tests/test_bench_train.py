"""The training benchmark's ceiling: the profiler's matrix-product time (bench/bench_train.py)."""

from __future__ import annotations

import torch

from tests.helpers.bench import load_bench


def test_products_time_counts_matrix_products_only():
    bench = load_bench("bench_train")
    a, b = torch.randn(8, 64, 64), torch.randn(8, 64, 64)
    w = torch.randn(64, 64, requires_grad=True)

    def products():  # the kinds of product the trainer runs: bmm, baddbmm, addmm, backward
        torch.bmm(a, b)
        torch.baddbmm(a, a, b)
        torch.nn.functional.linear(a[0], w, torch.zeros(64)).sum().backward()

    wall, seconds = bench._products_seconds(products)
    assert 0 < seconds <= wall

    def elementwise():
        torch.softmax(a, dim=-1).exp().mul(2.0)

    wall, seconds = bench._products_seconds(elementwise)
    assert seconds == 0 and wall > 0
