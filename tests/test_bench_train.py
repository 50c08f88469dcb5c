"""The training benchmark's ceiling: the profiler's matrix-product time (bench/bench_train.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench/bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_products_time_counts_matrix_products_only():
    bench = _bench()
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
