"""UTD-MHAD reader: a folder of ``aA_sS_tT_skeleton.mat`` files -> the sequence store.

Each file holds one variable ``d_skel`` of shape (20, 3, T) (joints x xyz x frames, Kinect v1
camera coordinates in metres). Frame ``t`` is ``d_skel[:, :, t]``, so a sequence of shape
(T, 20, 3) is ``d_skel.transpose(2, 0, 1)``. (The original code reshaped a (60, T) array instead,
which scrambles joints and frames: paper-notes defect 2. We never do that by default;
``layout="reshape"`` reproduces it, clearly labelled, for the "as published" comparison only.)
Labels are ``A - 1`` (0..26), subject ``S``, trial ``T``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from ..checksum import sha256_file
from ..errors import InputError
from .rejected import Rejected, check_duplicate_recordings, check_raw_file, write_rejected
from .skeleton import UTD_MHAD_ACTIONS, UTD_MHAD_BONES, UTD_MHAD_JOINTS
from .store import StoreInfo, validate_sequence, write_store

FILE_RE = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_skeleton\.mat$")
N_JOINTS = len(UTD_MHAD_JOINTS)
LAYOUTS = ("natural", "reshape")
PAPER_FRAMES = 125  # the original zero-padded every sequence to 125 frames


def scramble_like_paper(seq: np.ndarray, frames: int = PAPER_FRAMES) -> np.ndarray:
    """The original release's frames (paper-notes defect 2), from a natural (T, 20, 3) sequence.

    The original stored ``d_skel`` (20, 3, T) as a (60, T) features-x-time array, zero-padded
    to 125 frames, and turned it into (125, 60) with ``reshape`` instead of a transpose. Row
    ``t`` of the result is then a slice of the flattened (features x time) array, not frame
    ``t``. Returns that (125, 20, 3) array. Never the default: only for "as published" runs.
    """
    T = seq.shape[0]
    if T > frames:
        raise ValueError(f"sequence has {T} frames, more than the original padding to {frames}")
    features = seq.transpose(1, 2, 0).reshape(N_JOINTS * 3, T)  # = d_skel.reshape(60, T)
    padded = np.zeros((N_JOINTS * 3, frames), dtype=np.float64)
    padded[:, :T] = features
    return padded.reshape(frames, N_JOINTS, 3)


def parse_name(path: Path) -> tuple[int, int, int]:
    """(action, subject, trial) from ``aA_sS_tT_skeleton.mat``; InputError otherwise."""
    m = FILE_RE.match(path.name)
    if not m:
        raise InputError(path, "file name does not match 'aA_sS_tT_skeleton.mat'")
    action, subject, trial = (int(g) for g in m.groups())
    if not 1 <= action <= len(UTD_MHAD_ACTIONS):
        raise InputError(path, f"action {action} outside 1..{len(UTD_MHAD_ACTIONS)}")
    if subject < 1 or trial < 1:
        raise InputError(path, "subject and trial numbers start at 1")
    return action, subject, trial


def read_file(path: Path) -> np.ndarray:
    """Read one ``.mat`` file and return its sequence, shape (T, 20, 3), float64."""
    check_raw_file(path)  # a dangling or looping symlink is named, not skipped
    try:
        mat = scipy.io.loadmat(path, variable_names=["d_skel"])
    except Exception as exc:  # scipy raises several types for corrupt files
        raise InputError(path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    if "d_skel" not in mat:
        raise InputError(path, "no variable 'd_skel' in the file")
    d_skel = mat["d_skel"]
    if not isinstance(d_skel, np.ndarray) or not np.issubdtype(d_skel.dtype, np.number):
        raise InputError(path, f"'d_skel' is not a numeric array ({type(d_skel).__name__})")
    if d_skel.ndim == 2 and d_skel.shape == (N_JOINTS, 3):  # a single-frame file
        d_skel = d_skel[:, :, None]
    if d_skel.ndim != 3 or d_skel.shape[:2] != (N_JOINTS, 3):
        raise InputError(path, f"'d_skel' has shape {d_skel.shape}, expected (20, 3, T)")
    seq = np.ascontiguousarray(d_skel.transpose(2, 0, 1), dtype=np.float64)  # (T, 20, 3)
    validate_sequence(seq, path, N_JOINTS)
    return seq


def read_folder(
    raw_dir: str | os.PathLike,
    *,
    skip_bad: bool = False,
    layout: str = "natural",
    allow_duplicates: bool = False,
) -> tuple[list[np.ndarray], pd.DataFrame, list[Rejected]]:
    """Read every ``*.mat`` entry of ``raw_dir`` (sorted by action, subject, trial).

    Returns the sequences (T, 20, 3), their metadata rows and the rejected files. Without
    ``skip_bad`` the first bad file raises :class:`InputError`; with it, bad files are
    collected in the rejected list. A ``*.mat`` symlink that reaches no file (dangling, or a
    loop) is a bad file, named. Duplicate (action, subject, trial) always raise, and so does
    one recording under two names (the same SHA-256) unless ``allow_duplicates``.
    ``layout="reshape"`` returns the original code's scrambled (125, 20, 3) arrays instead
    (:func:`scramble_like_paper`; "as published" runs only).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(raw_dir, "raw folder does not exist or is not a folder")
    files = sorted(
        p
        for p in raw_dir.iterdir()
        if p.suffix.lower() == ".mat" and (p.is_symlink() or p.is_file())
    )
    if not files:
        raise InputError(raw_dir, "no .mat files in the raw folder")
    rows, sequences, rejected, seen = [], [], [], {}
    for path in files:
        rel = path.relative_to(raw_dir).as_posix()
        try:
            action, subject, trial = parse_name(path)
            key = (action, subject, trial)
            if key in seen:
                raise InputError(path, f"duplicate sequence: same a/s/t as {seen[key]}")
            seen[key] = rel
            seq = read_file(path)
            if layout == "reshape":
                if len(seq) > PAPER_FRAMES:
                    raise InputError(path, f"{len(seq)} frames: the original padding holds 125")
                seq = scramble_like_paper(seq)
        except InputError as exc:
            if not skip_bad or "duplicate sequence" in exc.problem:
                raise
            rejected.append(Rejected(rel, exc.problem))
            continue
        rows.append(
            {
                "sequence_id": f"a{action:02d}_s{subject}_t{trial}",
                "label": action - 1,
                "label_name": UTD_MHAD_ACTIONS[action - 1],
                "subject": subject,
                "trial": trial,
                "source": rel,
                "sha256": sha256_file(path),
            }
        )
        sequences.append(seq)
    if not sequences:
        raise InputError(raw_dir, f"no readable sequences ({len(rejected)} files rejected)")
    meta = pd.DataFrame(rows)
    check_duplicate_recordings(meta, raw_dir, allow_duplicates)
    order = meta.sort_values(["label", "subject", "trial"], kind="stable").index.to_numpy()
    meta = meta.loc[order].reset_index(drop=True)
    sequences = [sequences[i] for i in order]
    return sequences, meta, rejected


def store_info(raw_dir: str | os.PathLike, layout: str = "natural") -> StoreInfo:
    """The dataset-level metadata written into the UTD-MHAD store."""
    source_info = {"reader": "utd_mhad", "raw_dir": Path(raw_dir).name, "fps": 30}
    if layout != "natural":
        source_info["layout"] = (
            f"{layout} (the original code's scrambled frames; as published only)"
        )
    return StoreInfo(
        dataset="utd_mhad",
        landmark_names=list(UTD_MHAD_JOINTS),
        bones=list(UTD_MHAD_BONES),
        units="m",
        coordinate_system="Kinect v1 camera space: x right, y up, z away from the sensor",
        source_info=source_info,
    )


def ingest(
    raw_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    skip_bad: bool = False,
    rejected_out: str | os.PathLike | None = None,
    layout: str = "natural",
    allow_duplicates: bool = False,
) -> tuple[int, list[Rejected]]:
    """Convert a UTD-MHAD skeleton folder into the store ``out`` (atomically).

    With ``skip_bad``, rejected files are listed in ``rejected_out`` (TSV: source, reason),
    default ``<out>.rejected.tsv``. ``layout``, ``allow_duplicates``: see
    :func:`read_folder`. Returns (number of sequences written, rejected files).
    """
    sequences, meta, rejected = read_folder(
        raw_dir, skip_bad=skip_bad, layout=layout, allow_duplicates=allow_duplicates
    )
    write_store(out, sequences, meta, store_info(raw_dir, layout))
    if skip_bad:
        write_rejected(out, rejected, rejected_out)
    return len(sequences), rejected
