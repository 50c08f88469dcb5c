"""Student inference speed against exact 1-NN Procrustes-DTW, on real UTD-MHAD, one thread each.

    python bench/bench_student.py [--checkpoint model.pt] [--data DIR] [--queries N]

Without ``--checkpoint`` a student of ``config/utd_mhad.yaml``'s size (24 frames, width 48,
one layer, joints + bones + velocity) is trained for 2 epochs on the paper protocol's
training subjects (speed does not depend on the weights). Then, in the same process and on
the same test sequences, one thread each:

(a) exact 1-NN Procrustes-DTW against the 539 training sequences (``geokd.distances.
    knn_query``, pruning on, the training set prepared once), median ms per query;
(b) the student in PyTorch eager mode, batch 1 and batch 256, median ms per sample
    (:func:`geokd.models.latency_ms_per_sample`, the workflow's own measurement);
(c) the student exported to TorchScript and to ONNX (ONNX Runtime, CPU, one thread), the same
    inputs and batch sizes; (d) the input preparation itself (body frame, resampling) per
    sequence, which every path pays once.

Every speed-up is (a) divided by the student's time in the same run. Needs the real data
(default ../shared/datasets/utd-mhad/Skeleton next to the repository).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from geokd.data.splits import write_split  # noqa: E402
from geokd.data.store import load_sequences  # noqa: E402
from geokd.data.utd_mhad import ingest  # noqa: E402
from geokd.distances import knn_query, prepare  # noqa: E402
from geokd.models.checkpoint import latency_ms_per_sample  # noqa: E402
from geokd.models.config import StudentConfig, TrainConfig  # noqa: E402
from geokd.models.export import export_student  # noqa: E402
from geokd.models.predict import load_student  # noqa: E402
from geokd.models.runs import run_training  # noqa: E402

DATA = ROOT.parent / "shared/datasets/utd-mhad/Skeleton"
STUDENT = dict(
    max_frames=24,
    d_model=48,
    n_heads=4,
    n_layers=1,
    ff_dim=96,
    frame="body_sequence",
    resampling="linear",
    streams=("joints", "bones", "velocity"),
)


def _median_ms(fn, n: int, per: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn(0)
    times = []
    for r in range(n):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0 / per


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--queries", type=int, default=10, help="KNN queries timed (default 10)")
    args = ap.parse_args(argv)
    if not any(args.data.glob("*.mat")):
        sys.exit(f"real UTD-MHAD data not found at {args.data}")
    torch.set_num_threads(1)
    print(
        f"== geokd student benchmark, {date.today()}, {platform.processor() or platform.machine()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store, split = work / "sequences.parquet", work / "split.tsv"
        ingest(args.data, store)
        table = write_split(store, split, {"train": [1, 2, 3, 4, 5], "test": [6, 7, 8]})
        ckpt = args.checkpoint
        if ckpt is None:
            ckpt = work / "student/model.pt"
            cfg = TrainConfig(epochs=2, batch_size=32, progress=False, num_threads=1)
            run_training(
                store, split, None, ckpt.parent, "transformer", 0, cfg, StudentConfig(**STUDENT)
            )
        sequences, meta = load_sequences(store)
        row = {s: i for i, s in enumerate(meta["sequence_id"])}
        train = [sequences[row[s]] for s in table.loc[table.split == "train", "sequence_id"]]
        test = [sequences[row[s]] for s in table.loc[table.split == "test", "sequence_id"]]
        print(f"{len(train)} training, {len(test)} test sequences; checkpoint {ckpt}")

        # (a) exact 1-NN
        refs = prepare(train, "procrustes")
        queries = test[: args.queries]
        knn_ms = _median_ms(
            lambda r: knn_query(queries[r % len(queries)], refs, 1, n_jobs=1), len(queries), 1, 1
        )
        print(f"(a) exact 1-NN Procrustes-DTW:        {knn_ms:10.3f} ms/query")

        # (d) preparation
        student = load_student(ckpt)
        prep_ms = _median_ms(lambda r: student.prepare([test[r % len(test)]]), 50, 1)
        X, L = student.prepare(test)
        print(f"(d) preparation (body frame, resample): {prep_ms:8.3f} ms/sequence")

        rows = []
        for b in (1, 256):
            ms = latency_ms_per_sample(student.model, X, L, b, warmup=5, repeats=50)
            rows.append(("eager", b, ms))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_student(ckpt, "torchscript", work / "s.torchscript")
            ts = torch.jit.load(str(work / "s.torchscript"))
        export_student(ckpt, "onnx", work / "s.onnx")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(work / "s.onnx"), opts, providers=["CPUExecutionProvider"])
        n = len(X)
        for b in (1, 256):
            b = min(b, n)
            idx = [torch.arange(r * b, (r + 1) * b) % n for r in range(60)]
            with torch.inference_mode():
                ms = _median_ms(lambda r, i=idx: ts(X[i[r % 60]], L[i[r % 60]]), 50, b)
            rows.append(("torchscript", b, ms))
            xs = [(X[i].numpy(), L[i].numpy()) for i in idx]
            ms = _median_ms(
                lambda r, xs=xs: sess.run(None, {"x": xs[r % 60][0], "lengths": xs[r % 60][1]}),
                50,
                b,
            )
            rows.append(("onnxruntime", b, ms))
        print("(b, c) student, one thread:")
        print(f"    {'runtime':<12} {'batch':>5} {'ms/sample':>10} {'speed-up vs (a)':>16}")
        for name, b, ms in rows:
            print(f"    {name:<12} {b:>5} {ms:10.4f} {knn_ms / ms:15.0f}x")
        best1 = min(ms for _, b, ms in rows if b == 1)
        print(
            f"best batch 1: {knn_ms / best1:.0f}x; with preparation: "
            f"{knn_ms / (best1 + prep_ms):.0f}x"
        )


if __name__ == "__main__":
    main()
