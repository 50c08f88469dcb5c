"""pyskl reader: a pyskl annotation pickle -> the sequence store.

Input format
------------
The pickle pyskl (and mmaction2) use for skeleton datasets: a dict with ``annotations``, a list
of dicts each with ``frame_dir`` (the sample's unique name), ``label`` (0-based class index),
``keypoint`` (array (M, T, V, C): persons, frames, keypoints, coordinates; C = 3 for 3D
skeletons such as NTU RGB+D's Kinect joints, C = 2 for 2D pose estimates) and optionally
``keypoint_score`` (M, T, V) (read and not stored); and ``split``, a dict from a split name
(``xsub_train``, ``xsub_val``, ...) to the list of ``frame_dir`` in it.

Safety: the file is read with :class:`SafeUnpickler`, which builds only plain containers and
NumPy arrays (NumPy's array and scalar reconstruction functions and ``numpy.dtype``, and
``_codecs.encode``, which protocol-2 pickles use for bytes); any other class or function in the
pickle is refused with an :class:`~geokd.errors.InputError` naming it, before it is called.

Mapping to the store: label = ``label``; C = 3 values stored as they are (float32 widens exactly
to float64), C = 2 stored with z = 0 (``source_info.z`` says so). A ``frame_dir`` that is an NTU
RGB+D name (``S001C002P003R002A013``, as in pyskl's NTU pickles) gives subject = performer,
trial = replication and the optional ``camera`` and ``setup`` columns (when every
``frame_dir`` of the pickle is one), so the NTU protocols of :data:`geokd.data.ntu.PROTOCOLS`
apply; otherwise pyskl names no subject and **subject is 0** for every sequence (trial null):
protocols then come from the pickle's own split (``by: split``), and the teacher's subject
exclusion, with one subject in the training split, leaves out the sequence itself only. The
optional ``splits`` column holds the split names each sequence is listed in (comma-separated);
a config names a protocol from them, e.g. ``xsub: {by: split, train: [xsub_train], test:
[xsub_val]}``. Label names are NTU's action names for NTU pickles (label = action - 1), else
``class007``. Landmark names: NTU's 25 joints (V = 25), COCO's 17 keypoints (V = 17), else
``kp00`` ...; sequence id = ``frame_dir``; ``sha256`` = SHA-256 of the sample's ``keypoint``
array bytes.

Persons and frames as in :mod:`geokd.data.ntu` (``bodies``: the most active person, or the two
most active with the other repeated where one is missing; frames without a kept person
dropped and counted), a person being absent from a frame where all its keypoints are exactly 0
(pyskl's padding). A sample with no person in any frame is always rejected with that reason;
a bad annotation (missing key, wrong shape or type, non-finite values) raises one error naming
the file and the annotation, or becomes a row of ``<store>.rejected.tsv`` with ``skip_bad``.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..checksum import sha256_bytes
from ..errors import InputError
from .ntu import BODIES, FILE_RE, MissingSkeleton, parse_name, select_bodies
from .rejected import Rejected, check_duplicate_recordings, check_raw_file, write_rejected
from .skeleton import COCO_BONES, COCO_KEYPOINTS, NTU_ACTIONS, NTU_BONES, NTU_JOINTS, two_bodies
from .store import StoreInfo, write_store

__all__ = ["RefusedGlobal", "SafeUnpickler", "ingest", "load_annotations", "read_annotations"]

_NUMPY_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray"}
_NUMERIC_MODULES = {"numpy.core.numeric", "numpy._core.numeric"}
#: (module, name) of everything a pickle may name: plain containers and NumPy arrays
ALLOWED = {
    *((m, n) for m in _NUMPY_MODULES for n in ("_reconstruct", "scalar")),
    *((m, "_frombuffer") for m in _NUMERIC_MODULES),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    *((m, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset", "bytearray")),
}
_NTU_NAME = re.compile(FILE_RE.pattern.replace(r"\.skeleton", ""))


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a class or function outside :data:`ALLOWED`."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers and NumPy arrays only (:data:`ALLOWED`); any
    other global is refused with :class:`RefusedGlobal` naming it, before it is loaded."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(
                f"refused to load {module}.{name}: only plain containers and NumPy arrays "
                "are read from a pickle (anything else could run code)"
            )
        if module == "__builtin__":
            module = "builtins"
        if module.startswith("numpy.core."):  # NumPy 1.x pickles, read with NumPy 2
            module = "numpy._core." + module.rpartition(".")[2]
        return super().find_class(module, name)


def load_annotations(path: str | os.PathLike) -> dict:
    """The pickle at ``path``, read with :class:`SafeUnpickler`; InputError naming the file when
    it is missing, not a pickle, names anything but containers and arrays, or is not a dict with
    an ``annotations`` list (and, if present, a ``split`` dict of name -> list of names)."""
    path = Path(path)
    check_raw_file(path, "annotation file does not exist")
    try:
        with path.open("rb") as f:
            data = SafeUnpickler(f).load()
    except RefusedGlobal as exc:
        raise InputError(path, f"unsafe pickle: {exc}") from None
    except Exception as exc:  # a damaged pickle raises many types
        raise InputError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(path, "not a pyskl annotation file: expected a dict with an "
                         "'annotations' list (and a 'split' dict)")  # fmt: skip
    split = data.get("split", {})
    if not isinstance(split, dict) or not all(
        isinstance(k, str) and isinstance(v, list | tuple) for k, v in split.items()
    ):
        raise InputError(path, "'split' must map split names to lists of frame_dir")
    for name in split:
        if not name or "," in name:
            raise InputError(path, f"split name {name!r} is empty or holds a comma")
    return data


def _label(value, where: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise InputError(where, f"label {value!r} is not an integer")
    if value < 0:
        raise InputError(where, f"label {value} is negative (labels are 0-based)")
    return int(value)


def _keypoint(ann: dict, where: str) -> np.ndarray:
    """The annotation's keypoints as float64 (M, T, V, 3) (z = 0 for C = 2)."""
    kp = ann.get("keypoint")
    if not isinstance(kp, np.ndarray):
        raise InputError(where, f"'keypoint' is {type(kp).__name__}, expected a NumPy array")
    if not (np.issubdtype(kp.dtype, np.floating) or np.issubdtype(kp.dtype, np.integer)):
        raise InputError(where, f"'keypoint' has dtype {kp.dtype}, expected real numbers")
    if kp.ndim != 4 or kp.shape[3] not in (2, 3) or min(kp.shape) < 1:
        raise InputError(where, f"'keypoint' has shape {kp.shape}, expected (M, T, V, C) with "
                         "M, T, V >= 1 and C = 2 or 3")  # fmt: skip
    if not np.isfinite(kp).all():
        raise InputError(where, f"{int((~np.isfinite(kp)).sum())} non-finite keypoint value(s)")
    out = np.zeros((*kp.shape[:3], 3))
    out[..., : kp.shape[3]] = kp
    return out


def _skeleton(v: int) -> tuple[list[str], list[tuple[int, int]], str]:
    if v == len(NTU_JOINTS):
        return list(NTU_JOINTS), list(NTU_BONES), "NTU RGB+D (Kinect v2) joints"
    if v == len(COCO_KEYPOINTS):
        return list(COCO_KEYPOINTS), list(COCO_BONES), "COCO keypoints"
    return [f"kp{i:02d}" for i in range(v)], [], "unnamed keypoints"


def read_annotations(
    path: str | os.PathLike,
    *,
    bodies: int = 1,
    skip_bad: bool = False,
    allow_duplicates: bool = False,
) -> tuple[list[np.ndarray], pd.DataFrame, list[Rejected], dict]:
    """Read a pyskl pickle (see the module docstring). Returns the sequences (T, V x bodies,
    3) ordered by label, subject, trial and id, their metadata rows (with ``splits``, and
    ``camera`` and ``setup`` for NTU names), the rejected samples and ``source_info`` facts."""
    if bodies not in BODIES:
        raise ValueError(f"bodies must be one of {BODIES}, got {bodies!r}")
    path = Path(path)
    data = load_annotations(path)
    listed: dict[str, list[str]] = {}
    for name, members in sorted(data.get("split", {}).items()):
        for member in members:
            listed.setdefault(str(member), []).append(name)
    rows, sequences, rejected, seen = [], [], [], {}
    shapes: dict[str, tuple] = {}
    dropped = with_dropped = missing = 0
    for i, ann in enumerate(data["annotations"]):
        fd = ann.get("frame_dir") if isinstance(ann, dict) else None
        where = f"{path} annotation {i}" + (f" ({fd})" if isinstance(fd, str) else "")
        try:
            if not isinstance(ann, dict):
                raise InputError(where, f"an annotation is a dict, got {type(ann).__name__}")
            if not isinstance(fd, str) or not fd:
                raise InputError(where, "no 'frame_dir' (a non-empty string)")
            if fd in seen:
                raise InputError(where, f"duplicate frame_dir: the same as annotation {seen[fd]}")
            seen[fd] = i
            label = _label(ann.get("label"), where)
            kp = _keypoint(ann, where)
            for key, value in (("V", kp.shape[2]), ("C", ann["keypoint"].shape[3])):
                if shapes.setdefault(key, (value, i))[0] != value:
                    raise InputError(where, f"{key} = {value}, but annotation "
                                     f"{shapes[key][1]} has {shapes[key][0]}")  # fmt: skip
            present = np.abs(kp).sum(axis=(2, 3)) > 0  # (M, T): pyskl pads with zeros
            frames = [[(int(m), kp[m, t]) for m in np.flatnonzero(present[:, t])]
                      for t in range(kp.shape[1])]  # fmt: skip
            if not any(frames):
                raise MissingSkeleton(where, f"no person in any of its {kp.shape[1]} frames")
            seq, n_dropped, _ = select_bodies(frames, bodies)
        except MissingSkeleton as exc:
            rejected.append(Rejected(fd, exc.problem))
            missing += 1
            continue
        except InputError as exc:
            if not skip_bad or "duplicate frame_dir" in exc.problem:
                raise
            rejected.append(Rejected(fd if isinstance(fd, str) else f"annotation {i}", exc.problem))
            continue
        dropped += n_dropped
        with_dropped += int(n_dropped > 0)
        rows.append({
            "sequence_id": fd,
            "label": label,
            "subject": 0,
            "trial": None,
            "splits": ",".join(listed.get(fd, [])) or None,
            "source": f"{path.name}:{fd}",
            "sha256": sha256_bytes(np.ascontiguousarray(ann["keypoint"]).tobytes()),
        })  # fmt: skip
        sequences.append(seq)
    if not sequences:
        raise InputError(path, f"no readable samples ({len(rejected)} rejected)")
    meta = pd.DataFrame(rows)
    ntu, ntu_labels = all(_NTU_NAME.fullmatch(s) for s in meta["sequence_id"]), False
    if ntu:
        keys = [parse_name(Path(f"{s}.skeleton")) for s in meta["sequence_id"]]
        for column, values in zip(("setup", "camera", "subject", "trial"), zip(*keys, strict=True),
                                  strict=False):  # fmt: skip
            meta[column] = list(values)
        action = np.array([k[4] for k in keys])
        ntu_labels = bool((meta["label"].to_numpy() == action - 1).all())
    meta["label_name"] = [
        NTU_ACTIONS[label] if ntu and ntu_labels else f"class{label:03d}" for label in meta["label"]
    ]
    check_duplicate_recordings(meta, path.parent, allow_duplicates)
    order = meta.sort_values(["label", "subject", "trial", "sequence_id"], kind="stable").index
    meta = meta.loc[order.to_numpy()].reset_index(drop=True)
    c = shapes["C"][0]
    facts = {
        "annotations": path.name,
        "bodies": bodies,
        "second_body": "the other person repeated where one is missing" if bodies == 2 else None,
        "keypoint_channels": c,
        "z": "zero: the pickle holds 2D keypoints (C = 2); z = 0 was added" if c == 2 else None,
        "keypoint_score": "ignored",
        "subjects": "performer of the NTU frame_dir" if ntu else "0: the pickle names none",
        "splits": {k: len(v) for k, v in sorted(data.get("split", {}).items())},
        "split_entries_without_annotation": sum(1 for f in listed if f not in seen),
        "frames_dropped": dropped,
        "sequences_with_dropped_frames": with_dropped,
        "samples_without_person": missing,
    }
    return [sequences[i] for i in order], meta, rejected, facts


def store_info(dataset: str, v: int, facts: dict) -> StoreInfo:
    """The dataset-level metadata written into a pyskl store (``v`` keypoints per person)."""
    names, bones, kind = _skeleton(v)
    if facts["bodies"] == 2:
        names, bones = two_bodies(tuple(names), tuple(bones))
    planar = facts["keypoint_channels"] == 2
    coords = f"as in the pickle ({kind})" + ("; 2D keypoints with z = 0 added" if planar else "")
    return StoreInfo(
        dataset=dataset,
        landmark_names=names,
        bones=bones,
        units="m" if v == len(NTU_JOINTS) and not planar else "as in the pickle",
        coordinate_system=coords,
        source_info={"reader": "pyskl", **{k: x for k, x in facts.items() if x is not None}},
    )


def ingest(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    bodies: int = 1,
    skip_bad: bool = False,
    rejected_out: str | os.PathLike | None = None,
    dataset: str = "pyskl",
    allow_duplicates: bool = False,
) -> tuple[int, list[Rejected]]:
    """Convert a pyskl annotation pickle into the store ``out`` (atomically); the rejected
    samples go to ``rejected_out`` (default ``<out>.rejected.tsv``), written by every ingest.
    Returns (number of sequences written, rejected samples)."""
    sequences, meta, rejected, facts = read_annotations(
        path, bodies=bodies, skip_bad=skip_bad, allow_duplicates=allow_duplicates
    )
    v = sequences[0].shape[1] // bodies
    write_store(out, sequences, meta, store_info(dataset, v, facts))
    write_rejected(out, rejected, rejected_out)
    return len(sequences), rejected
