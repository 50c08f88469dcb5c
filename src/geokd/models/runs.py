"""One training run of the workflow: read the store, split and soft labels, train, write."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_many
from ..checksum import sha256_file, sidecar_bytes
from ..data.splits import read_split
from ..data.store import load_sequences, read_info
from ..distances.normalise import load_used
from ..errors import InputError
from ..jsonfile import json_text
from ..provenance import git_revision
from .checkpoint import CHECKPOINT_FORMAT, checkpoint_bytes, latency_ms_per_sample
from .resume import NOT_FINGERPRINTED, RESUME_NAME, ResumePoint, fingerprint
from .student import StudentConfig, prepare
from .teacher import read_soft_labels
from .train import TrainConfig, evaluate, torch_threads, train_many

_dump = json_text


def run_training(
    store_path: str | os.PathLike,
    split_table: str | os.PathLike,
    soft_labels_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    mode: str = "transformer",
    seed: int = 0,
    train_cfg: TrainConfig | None = None,
    student_cfg: StudentConfig | None = None,
    distances_path: str | os.PathLike | None = None,
) -> dict:
    """Train one student on a store and split table and write, in ``out_dir``, as one atomic
    unit: ``model.pt`` with its checksum sidecar ``model.pt.json``, ``history.json`` (per-epoch
    losses and evaluations), ``metrics.json`` (the returned metrics) and ``timings.json``
    (``train_seconds``, ``epoch_seconds``, ``latency_ms_per_sample``). Everything but
    ``timings.json`` is the same to the byte for the same inputs, seed and thread count on
    the CPU. Every ``train_cfg.resume_every`` epochs the training state is saved in
    ``out_dir/.resume.partial``; a rerun of the same settings, inputs and code resumes from it
    (same bytes as an uninterrupted run) and it is deleted once the outputs are written
    (:mod:`geokd.models.resume`).

    Parameters
    ----------
    store_path : path
        Sequence store (:func:`geokd.data.store.load_sequences`); classes are ``0 .. max label``.
    split_table : path
        Split table (:func:`geokd.data.splits.read_split`): train, test and optional val rows.
    soft_labels_path : path or None
        Teacher soft labels of exactly the training ids (:func:`.teacher.read_soft_labels`);
        required for ``mode="distilled"``, not read otherwise.
    mode, seed : override ``train_cfg.mode`` and ``train_cfg.seed``.
    distances_path : path or None
        The train x train distance matrix (:func:`geokd.distances.load_aligned`); required
        for ``mode="metric"``, not read otherwise (:func:`run_trainings`: also how it is
        normalised).

    Returns
    -------
    dict
        ``test`` (and ``val``) metrics of the selected model, ``train`` metrics,
        ``inputs`` (file names and SHA-256), configs, seed, epochs and git revision; the
        content of ``metrics.json`` (no timings: those are in ``timings.json``).
    """
    return run_trainings(
        store_path, split_table, soft_labels_path, [out_dir], mode, [seed], train_cfg,
        student_cfg, distances_path,
    )[0]  # fmt: skip


def _inputs(store_path, split_table, soft_labels_path, distances_path, mode, scfg, normalise):
    """Everything a training reads, checked: prepared splits, soft labels, distances."""
    sequences, meta = load_sequences(store_path)
    table = read_split(split_table)
    row = {sid: i for i, sid in enumerate(meta["sequence_id"].astype(str))}
    ids = table["sequence_id"].astype(str)
    if unknown := [s for s in ids if s not in row]:
        raise InputError(split_table, f"{len(unknown)} id(s) not in {store_path}: {unknown[:3]}")
    labels = meta["label"].to_numpy(np.int64)
    n_classes = int(labels.max()) + 1
    names = meta.drop_duplicates("label").set_index("label")["label_name"].astype(str)
    parts = {}
    for split in ("train", "val", "test"):
        sel = ids[table["split"] == split].tolist()
        if not sel:
            continue
        idx = np.array([row[s] for s in sel])
        if not np.array_equal(table.loc[table["split"] == split, "label"].to_numpy(), labels[idx]):
            raise InputError(split_table, f"labels of split '{split}' differ from {store_path}")
        X, L = prepare(
            [sequences[i] for i in idx],
            scfg.max_frames,
            scfg.normalise,
            scfg.frame,
            scfg.resampling,
        )
        parts[split] = (X, L, labels[idx], sel)
    if "train" not in parts or "test" not in parts:
        raise InputError(split_table, "needs 'train' and 'test' rows")
    inputs = {"store": store_path, "split_table": split_table}
    P = None
    if mode == "distilled":
        if soft_labels_path is None:
            raise InputError("soft_labels_path", "mode 'distilled' needs the teacher's soft labels")
        inputs["soft_labels"] = soft_labels_path
        t_ids, t_P = read_soft_labels(soft_labels_path)
        pos = {s: i for i, s in enumerate(t_ids)}
        train_ids = parts["train"][3]
        missing, extra = set(train_ids) - set(pos), set(pos) - set(train_ids)
        if missing or extra or len(pos) != len(t_ids):
            raise InputError(
                soft_labels_path,
                f"ids are not the training ids of {split_table}: {len(missing)} missing "
                f"(e.g. {sorted(missing)[:3]}), {len(extra)} extra (e.g. {sorted(extra)[:3]}), "
                f"{len(t_ids) - len(pos)} duplicated",
            )
        if t_P.shape[1] != n_classes:
            raise InputError(soft_labels_path, f"{t_P.shape[1]} classes, store has {n_classes}")
        P = t_P[[pos[s] for s in train_ids]]  # (N_train, C) in split-table order
    D = None
    if mode == "metric":
        if distances_path is None:
            raise InputError("distances_path", "mode 'metric' needs the train x train matrix")
        inputs["distances"] = distances_path
        # split-table order, in memory, as distances.normalise says
        D = load_used(distances_path, split_table, "train", "train", normalise, store_path)[0]
    checks = {k: {"file": Path(p).name, "sha256": sha256_file(p)} for k, p in inputs.items()}
    return {"parts": parts, "P": P, "D": D, "checks": checks, "n_classes": n_classes,
            "names": names}  # fmt: skip


def run_trainings(
    store_path: str | os.PathLike,
    split_table: str | os.PathLike,
    soft_labels_path: str | os.PathLike | None,
    out_dirs: Sequence[str | os.PathLike],
    mode: str,
    seeds: Sequence[int],
    train_cfg: TrainConfig | None = None,
    student_cfg: StudentConfig | None = None,
    distances_path: str | os.PathLike | None = None,
    distance_normalise: str = "none",
) -> list[dict]:
    """:func:`run_training` for several seeds at once (:func:`.train.train_many`): seed
    ``seeds[i]`` writes ``out_dirs[i]``, the same files with the same bytes as when it is
    trained alone (with one thread and fixed-length inputs; :mod:`.train`), except that
    ``timings.json`` also says which seeds trained together and how long the group took
    (``train_seconds`` is the group's time divided by its size). The resumable state of the
    group is ``out_dirs[0]/.resume.partial``. Returns each seed's ``metrics.json`` content.
    """
    if len(out_dirs) != len(seeds) or not seeds:
        raise ValueError(f"{len(out_dirs)} output folder(s) for {len(seeds)} seed(s)")
    base = replace(train_cfg or TrainConfig(), mode=mode)
    cfgs = [replace(base, seed=s) for s in seeds]
    scfg = student_cfg or StudentConfig()
    data = _inputs(
        store_path, split_table, soft_labels_path, distances_path, mode, scfg, distance_normalise
    )
    parts, checks, n_classes = data["parts"], data["checks"], data["n_classes"]
    X, L, y, _ = parts["train"]
    val = parts["val"][:3] if "val" in parts else None
    outs = [Path(o) for o in out_dirs]
    resume = None
    if base.resume_every > 0:
        train_fields = {k: v for k, v in asdict(cfgs[0]).items() if k not in NOT_FINGERPRINTED}
        run = {"train": train_fields, "student": asdict(scfg), "inputs": checks}
        if len(seeds) > 1:
            run["seeds"] = list(seeds)
        resume = ResumePoint(outs[0] / RESUME_NAME, fingerprint(run), base.resume_every)
    t0 = time.perf_counter()
    trained = train_many(
        X,
        L,
        y,
        data["P"],
        cfgs,
        scfg,
        eval_sets={"test": parts["test"][:3]},
        val=val,
        n_classes=n_classes,
        teacher_D=data["D"],
        resume=resume,
    )
    seconds = time.perf_counter() - t0
    info = read_info(store_path)
    results = []
    for cfg, out, (model, history) in zip(cfgs, outs, trained, strict=True):
        group = {"seeds": list(seeds), "train_seconds": seconds}
        results.append(_write_run(model, history, cfg, out, parts, data, info, seconds, group))
    if resume is not None:
        resume.discard()  # the runs are complete
    return results


def _write_run(model, history, cfg, out: Path, parts, data, info, seconds, group) -> dict:
    """Evaluate one trained student, measure its latency and write its folder atomically."""
    n_classes, checks, names = data["n_classes"], data["checks"], data["names"]
    scfg = model.cfg  # the nngk family trains the NNGK head
    with torch_threads(cfg.num_threads):
        result = {s: evaluate(model, *parts[s][:3], n_classes, cfg.eval_batch_size) for s in parts}
        Xt, Lt = parts["test"][:2]
        latency = {
            f"batch_{b}": latency_ms_per_sample(model, Xt, Lt, b)
            for b in sorted({1, cfg.latency_batch_size})
        }
        threads = torch.get_num_threads()
    epoch = history["best_epoch"] or history["stopped_epoch"]
    summary = {
        **result,
        "mode": cfg.mode,
        "seed": cfg.seed,
        "n_classes": n_classes,
        "class_names": [names.get(c, str(c)) for c in range(n_classes)],
        "epoch": epoch,
        "epochs_run": history["stopped_epoch"],
        "selection": history["selection"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "inputs": checks,
        "student_config": asdict(scfg),
        "train_config": asdict(cfg),
        "git_revision": git_revision(),
    }
    timings = {
        "mode": cfg.mode,
        "seed": cfg.seed,
        "train_seconds": seconds / len(group["seeds"]),
        "epoch_seconds": history["seconds"],
        "latency_ms_per_sample": {**latency, "device": "cpu", "threads": threads},
        "trained_with": group,
    }
    data_info = {  # what geokd predict and export need to prepare new recordings
        "dataset": info.dataset,
        "landmark_names": list(info.landmark_names),
        "class_names": summary["class_names"],
    }
    extra = {"inputs": checks, "data": data_info}
    model_pt = checkpoint_bytes(model, scfg, cfg, extra, epoch=epoch)
    side = sidecar_bytes(model_pt, {"format": CHECKPOINT_FORMAT})
    deterministic = {k: v for k, v in history.items() if k != "seconds"}
    write_many(
        {
            out / "model.pt": model_pt,
            out / "model.pt.json": side,
            out / "history.json": _dump(deterministic).encode(),
            out / "timings.json": _dump(timings).encode(),
            out / "metrics.json": _dump(summary).encode(),
        }
    )
    return summary
