"""Apply a trained student to new recordings: :func:`load_student` and ``geokd predict``.

A :class:`Student` is a checkpoint (:mod:`.checkpoint`) together with its own preparation:
the frame count, normalisation or body frame, resampling and the landmark layout it was
trained on. Inputs are read with the dataset readers of :mod:`geokd.data`:

* a sequence store (``.parquet``, :func:`geokd.data.store.load_sequences`);
* a folder of UTD-MHAD ``.mat`` files (``aA_sS_tT_skeleton.mat`` names give the true label;
  other names are kept as the sequence id);
* a SIGNUM manifest (``.csv``/``.parquet``, or the folder holding it) with its ``.npy``
  samples; the landmark subset is the checkpoint's.

A landmark layout other than the checkpoint's (count or names) is an :class:`InputError`
naming the input. Predictions go through the same code as the workflow's evaluation
(:func:`.train.predict_proba`, the checkpoint's evaluation batch size and thread count), so
predicting a run's test sequences reproduces its recorded test accuracy.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_text
from ..errors import InputError, read_json
from .checkpoint import load_checkpoint
from .config import StudentConfig
from .student import SkeletonTransformer, prepare
from .train import predict_proba, torch_threads

__all__ = ["Inputs", "Student", "load_student", "read_inputs", "write_predictions"]

TOP_K = 5


@dataclass
class Inputs:
    """Sequences to predict: one (T, K, 3) array per sequence, with where each came from."""

    sequences: list[np.ndarray]
    sequence_ids: list[str]
    sources: list[str]
    landmark_names: list[str] | None  # None: the reader does not know them
    labels: list[int | None]  # the true class where the input says it (store, UTD names)


class Student:
    """A trained student with its preparation; see the module docstring.

    Attributes
    ----------
    model : SkeletonTransformer
        In eval mode, on the CPU.
    class_names : list of str
        ``class_names[c]`` names class ``c`` (``str(c)`` where the checkpoint has no names).
    landmark_names : list of str or None
        The layout the student was trained on (None for checkpoints that do not record it).
    """

    def __init__(self, model: SkeletonTransformer, payload: dict, path: str | os.PathLike):
        self.model, self.path = model, str(path)
        self.student_config = StudentConfig(**payload["student_config"])
        self.train_config = dict(payload.get("train_config") or {})
        data = (payload.get("extra") or {}).get("data") or {}
        names = data.get("class_names") or _names_beside(path, model.n_classes)
        self.class_names = [str(n) for n in names]
        self.landmark_names = data.get("landmark_names")
        self.dataset = data.get("dataset")
        self.n_landmarks = model.in_features // 3

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    def check_layout(self, inputs: Inputs, where: object) -> None:
        """:class:`InputError` naming ``where`` unless the inputs have this student's layout."""
        for seq, sid in zip(inputs.sequences, inputs.sequence_ids, strict=True):
            k = np.asarray(seq).shape[1] if np.ndim(seq) == 3 else None
            if k != self.n_landmarks:
                raise InputError(
                    where,
                    f"sequence {sid!r} has {k} landmarks; the checkpoint {self.path} was "
                    f"trained on {self.n_landmarks} ({self.dataset or 'unknown dataset'})",
                )
        if self.landmark_names and inputs.landmark_names is not None:
            if list(inputs.landmark_names) != list(self.landmark_names):
                diff = next(
                    i
                    for i, (a, b) in enumerate(
                        zip(inputs.landmark_names, self.landmark_names, strict=True)
                    )
                    if a != b
                )
                raise InputError(
                    where,
                    f"landmark {diff} is {inputs.landmark_names[diff]!r}, the checkpoint "
                    f"{self.path} expects {self.landmark_names[diff]!r}: another skeleton "
                    "topology",
                )

    def prepare(self, sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The model input of ``sequences`` with the checkpoint's own preparation."""
        c = self.student_config
        return prepare(sequences, c.max_frames, c.normalise, c.frame, c.resampling)

    def predict(self, sequences, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, n_classes), float64, of (T, K, 3) sequences."""
        sequences = [np.asarray(s, dtype=np.float64) for s in sequences]
        if not sequences:
            return np.zeros((0, self.n_classes))
        inputs = Inputs(sequences, [str(i) for i in range(len(sequences))], [], None, [])
        self.check_layout(inputs, "sequences")
        X, L = self.prepare(sequences)
        bs = batch_size or int(self.train_config.get("eval_batch_size") or 256)
        with torch_threads(self.train_config.get("num_threads")):
            return predict_proba(self.model, X, L, bs)


def _names_beside(path: str | os.PathLike, n_classes: int) -> list[str]:
    """Class names from the run's ``metrics.json`` beside the checkpoint, else numbers."""
    metrics = Path(path).with_name("metrics.json")
    if metrics.is_file():
        names = read_json(metrics, "metrics file").get("class_names")
        if isinstance(names, list) and len(names) == n_classes:
            return names
    return [str(c) for c in range(n_classes)]


def load_student(path: str | os.PathLike) -> Student:
    """Load a checkpoint written by the workflow (``models/<name>/seed<N>/model.pt``)."""
    model, payload = load_checkpoint(path)
    return Student(model, payload, path)


# ------------------------------------------------------------------------------ inputs
def _read_store(path: Path) -> Inputs:
    from ..data.store import load_sequences, read_info

    sequences, meta = load_sequences(path)
    return Inputs(
        sequences,
        meta["sequence_id"].astype(str).tolist(),
        [str(path)] * len(sequences),
        list(read_info(path).landmark_names),
        [int(v) for v in meta["label"]],
    )


def _read_mat_folder(folder: Path) -> Inputs:
    from ..data.skeleton import UTD_MHAD_JOINTS
    from ..data.utd_mhad import parse_name, read_file

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mat")
    if not files:
        raise InputError(folder, "no .mat files in the folder")
    out = Inputs([], [], [], list(UTD_MHAD_JOINTS), [])
    for path in files:
        if not path.is_file():
            raise InputError(path, "not a readable file (a dangling or looping link?)")
        out.sequences.append(read_file(path))
        out.sources.append(str(path))
        try:
            action, subject, trial = parse_name(path)
        except InputError:  # a new recording under its own name
            out.sequence_ids.append(path.stem)
            out.labels.append(None)
        else:
            out.sequence_ids.append(f"a{action:02d}_s{subject}_t{trial}")
            out.labels.append(action - 1)
    return out


def _read_signum(manifest: Path, landmark_names: list[str] | None, where: Path) -> Inputs:
    from ..data.signum import SUBSETS, landmark_subset, read_signum

    subset = "both_hands"
    if landmark_names:
        match = [s for s in SUBSETS if landmark_subset(s)[1] == list(landmark_names)]
        if not match:
            raise InputError(
                where,
                f"the checkpoint's {len(landmark_names)} landmarks are no SIGNUM landmark "
                f"subset ({sorted(SUBSETS)}): another skeleton topology",
            )
        subset = match[0]
    sequences, meta, _, _ = read_signum(manifest, landmarks=subset)
    return Inputs(
        sequences,
        meta["sequence_id"].astype(str).tolist(),
        meta["source"].astype(str).tolist(),
        landmark_subset(subset)[1],
        [int(v) for v in meta["label"]],
    )


def read_inputs(path: str | os.PathLike, landmark_names: list[str] | None = None) -> Inputs:
    """Read one INPUT of ``geokd predict`` (store, ``.mat`` folder or SIGNUM manifest)."""
    from ..data.signum import MANIFEST_NAMES

    p = Path(path)
    if not p.exists():
        raise InputError(p, "input does not exist")
    if p.is_dir():
        if any((p / n).is_file() for n in MANIFEST_NAMES):
            return _read_signum(p, landmark_names, p)
        return _read_mat_folder(p)
    if p.suffix.lower() == ".csv":
        return _read_signum(p, landmark_names, p)
    if p.suffix.lower() == ".parquet":
        from ..data.store import read_info

        try:
            read_info(p)
        except InputError:  # not a sequence store: a SIGNUM manifest in Parquet
            return _read_signum(p, landmark_names, p)
        return _read_store(p)
    raise InputError(p, "expected a sequence store (.parquet), a .mat folder or a manifest")


# ------------------------------------------------------------------------------ output
def predictions_table(student: Student, inputs: Inputs, proba: np.ndarray) -> list[dict]:
    """One row per sequence: the CSV columns of ``geokd predict``."""
    k = min(TOP_K, student.n_classes)
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    rows = []
    for i, sid in enumerate(inputs.sequence_ids):
        best = int(order[i, 0])
        row = {
            "source": inputs.sources[i],
            "sequence_id": sid,
            "predicted_label": best,
            "predicted_name": student.class_names[best],
            "probability": f"{proba[i, best]:.6f}",
        }
        for r in range(k):
            c = int(order[i, r])
            row[f"top{r + 1}_label"] = c
            row[f"top{r + 1}_name"] = student.class_names[c]
            row[f"top{r + 1}_probability"] = f"{proba[i, c]:.6f}"
        rows.append(row)
    return rows


def write_predictions(out: str | os.PathLike, rows: list[dict]) -> None:
    """Write the rows as CSV, atomically (header only when there are no rows)."""
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["source", "sequence_id", "predicted_label"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out, buf.getvalue())


def run_predict(
    checkpoint: str | os.PathLike,
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    batch_size: int | None = None,
) -> dict:
    """``geokd predict``: read every input, check its layout, predict, write the CSV.

    Returns ``n_sequences`` and, over the sequences whose true label the input gives,
    ``n_labelled`` and ``accuracy``.
    """
    student = load_student(checkpoint)
    rows, hits, n_labelled = [], 0, 0
    for path in inputs:
        data = read_inputs(path, student.landmark_names)
        student.check_layout(data, path)
        proba = student.predict(data.sequences, batch_size)
        rows += predictions_table(student, data, proba)
        for y, p in zip(data.labels, proba.argmax(axis=1), strict=True):
            if y is not None:
                n_labelled += 1
                hits += int(y == p)
    write_predictions(out, rows)
    result = {"n_sequences": len(rows), "n_labelled": n_labelled}
    if n_labelled:
        result["accuracy"] = hits / n_labelled
    return result
