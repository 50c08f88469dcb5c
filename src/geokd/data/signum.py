"""SIGNUM reader: pre-extracted MediaPipe landmark files listed in a manifest -> the store.

Input format
------------
A **manifest** (``.csv`` or ``.parquet``; or a folder holding ``manifest.csv`` or
``manifest.parquet``) with one row per sample and the columns ``path`` (the sample's ``.npy``
file, relative to the manifest's folder), ``sign`` (sign id, an integer in 1..450) and
``signer`` (1..25); optional ``repetition`` (integer >= 1) and ``gloss`` (the sign's name).

Each ``.npy`` file holds one sample of T >= 1 frames of MediaPipe Holistic landmarks, shape
(T, 75, 3) or (T, 225) (the same, row-major: x, y, z of landmark 0, then of landmark 1, ...).
Landmarks 0-32 are the 33 pose landmarks, 33-53 the 21 left-hand and 54-74 the 21 right-hand
landmarks (wrist first). Coordinates are MediaPipe's: x and y normalised by the image width
and height (x right, y down), z a relative depth at about the scale of x.

Mapping to the store: label = sign - 1, label_name = gloss (else ``sign007``), subject =
signer, trial = repetition (null without that column); sequence id ``sign007_s03_r1``.
Only the configured landmark subset is stored (:data:`SUBSETS`, default ``both_hands``:
left hand 0-20 then right hand 21-41, wrist first, as the ``hand`` metric expects).

Undetected landmarks: MediaPipe extractions write NaN (or zeros) for a hand it did not see.
``missing="reject"`` (default) refuses a sample with NaN in the selected landmarks;
``missing="zero"`` stores NaN as 0.0, the other common convention (a missing hand is then 21
landmarks at one point, which the ``procrustes`` and ``hand`` costs treat as a degenerate
frame: finite). Infinite values are always refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..checksum import sha256_file
from ..errors import InputError
from .rejected import Rejected, check_duplicate_recordings, check_raw_file, write_rejected
from .skeleton import HAND_BONES, HAND_LANDMARKS
from .store import StoreInfo, write_store

__all__ = [
    "MISSING_POLICIES",
    "N_SIGNERS",
    "N_SIGNS",
    "POSE_LANDMARKS",
    "SIGNER_PROTOCOL",
    "SUBSETS",
    "ingest",
    "landmark_subset",
    "read_manifest",
    "read_sample",
    "read_signum",
]

N_SIGNS, N_SIGNERS, N_POSE, N_HAND = 450, 25, 33, 21
N_LANDMARKS = N_POSE + 2 * N_HAND  # 75
# The signer-independent protocol: signers 1-14 train, 15-18 validation, 19-25 test.
SIGNER_PROTOCOL = {
    "train": list(range(1, 15)),
    "val": list(range(15, 19)),
    "test": list(range(19, 26)),
}
MISSING_POLICIES = ("reject", "zero")
MANIFEST_NAMES = ("manifest.csv", "manifest.parquet")
REQUIRED, OPTIONAL = ("path", "sign", "signer"), ("repetition", "gloss")

# MediaPipe Pose, landmark order of the model card.
POSE_LANDMARKS: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
# mediapipe.solutions.pose.POSE_CONNECTIONS (drawn as bones; the graph has cycles)
POSE_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
    (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip
_POSE, _LEFT, _RIGHT = range(0, 33), range(33, 54), range(54, 75)
SUBSETS: dict[str, tuple[range, ...]] = {
    "both_hands": (_LEFT, _RIGHT),
    "left_hand": (_LEFT,),
    "right_hand": (_RIGHT,),
    "pose": (_POSE,),
    "all": (_POSE, _LEFT, _RIGHT),
}
COORDINATES = (
    "MediaPipe Holistic: x, y normalised by the image width and height (x right, y down), "
    "z relative depth (hands: to the wrist, pose: to the hip midpoint) at about the scale of x"
)
_INT = re.compile(r"^\s*[+-]?\d+(\.0*)?\s*$")  # "7", and "7.0" as pandas writes a float column


def _block(part: range) -> tuple[list[str], list[tuple[int, int]]]:
    """Names and bones (indices within the part) of one of the three landmark blocks."""
    if part is _POSE:
        return [f"pose_{n}" for n in POSE_LANDMARKS], list(POSE_BONES)
    side = "left" if part is _LEFT else "right"
    return [f"{side}_{n}" for n in HAND_LANDMARKS], list(HAND_BONES)


def landmark_subset(name: str) -> tuple[np.ndarray, list[str], list[tuple[int, int]]]:
    """(indices into the 75 landmarks, names, bones) of the subset ``name`` (:data:`SUBSETS`).

    >>> idx, names, bones = landmark_subset("both_hands")
    >>> len(idx), names[0], names[21], idx[:2].tolist(), idx[21].item()
    (42, 'left_wrist', 'right_wrist', [33, 34], 54)
    """
    if name not in SUBSETS:
        raise ValueError(f"unknown landmark subset {name!r}; expected one of {sorted(SUBSETS)}")
    idx, names, bones = [], [], []
    for part in SUBSETS[name]:
        part_names, part_bones = _block(part)
        bones += [(p + len(idx), c + len(idx)) for p, c in part_bones]
        idx += list(part)
        names += part_names
    return np.array(idx), names, bones


# ------------------------------------------------------------------------------ manifest
def _int(value) -> int | None:
    """An integer cell (int, integral float, or a digit string such as ``7`` or ``7.0``) as
    int; None otherwise."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and np.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and _INT.match(value):
        return int(float(value)) if "." in value else int(value)
    return None


def _blank(value) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or value is pd.NA
        or (isinstance(value, float) and np.isnan(value))
    )


def read_manifest(path: str | os.PathLike) -> tuple[pd.DataFrame, Path]:
    """Read a manifest (file, or a folder holding one); returns (table, manifest file).

    The table has the manifest's columns as read (CSV cells as strings) plus
    ``manifest_line``: the CSV line number (header = 1; blank lines are skipped but counted)
    or Parquet row number (1-based).
    """
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in MANIFEST_NAMES if (path / n).is_file()]
        if len(found) != 1:
            raise InputError(
                path, f"expected exactly one of {MANIFEST_NAMES} in the folder, found {len(found)}"
            )
        path = found[0]
    if not path.is_file():
        raise InputError(path, "manifest does not exist")
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
            line = np.arange(len(table)) + 2  # one row per line after the header
            blank = table.apply(lambda c: c.fillna("").str.strip() == "").all(axis=1).to_numpy()
            table, line = table[~blank].reset_index(drop=True), line[~blank]
        elif path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
            line = np.arange(len(table)) + 1
        else:
            raise InputError(path, "manifest must be a .csv or .parquet file")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(path, f"not a readable manifest ({type(exc).__name__}: {exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise InputError(
            path,
            f"manifest lacks column(s) {missing}; expected "
            f"{list(REQUIRED)} and optionally {list(OPTIONAL)}",
        )
    if table.empty:
        raise InputError(path, "manifest lists no samples")
    return table.assign(manifest_line=line), path


# ------------------------------------------------------------------------------- samples
def read_sample(path: Path, landmarks: str = "both_hands", missing: str = "reject"):
    """Read one ``.npy`` sample: (float64 array (T, K, 3) of the subset, number of NaN set to 0).

    Raises :class:`InputError` naming ``path`` for a missing file, a dangling or looping
    symlink, an unreadable file, a shape other than (T, 225) or (T, 75, 3), no frames,
    infinite values, or (``missing="reject"``) NaN.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    idx = landmark_subset(landmarks)[0]
    check_raw_file(path, "sample file listed in the manifest does not exist")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"not a readable .npy array ({type(exc).__name__}: {exc})") from exc
    if not isinstance(a, np.ndarray):
        a.close()
        raise InputError(path, "not a .npy array (an .npz archive?)")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(path, f"array of dtype {a.dtype}, expected real numbers")
    if a.ndim == 2 and a.shape[1] == 3 * N_LANDMARKS:
        a = a.reshape(a.shape[0], N_LANDMARKS, 3)
    elif a.ndim != 3 or a.shape[1:] != (N_LANDMARKS, 3):
        raise InputError(path, f"array of shape {a.shape}, expected (T, 225) or (T, 75, 3)")
    if a.shape[0] == 0:
        raise InputError(path, "sample has no frames (T = 0)")
    seq = np.ascontiguousarray(a[:, idx], dtype=np.float64)
    if np.isinf(seq).any():
        raise InputError(path, f"{int(np.isinf(seq).sum())} infinite value(s) in the landmarks")
    nan = np.isnan(seq)
    if nan.any():
        if missing == "reject":
            frames = np.flatnonzero(nan.any(axis=(1, 2)))
            raise InputError(
                path,
                f"{int(nan.sum())} NaN value(s) (undetected landmarks?) in "
                f"{len(frames)} of {len(seq)} frames, first frame "
                f"{frames[0]}; use missing_landmarks: zero "
                "(--missing-landmarks zero) to store them as 0",
            )
        seq[nan] = 0.0
    return seq, int(nan.sum())


def _row_keys(row, where: str, n_signs: int, n_signers: int) -> tuple[int, int, int | None]:
    """(sign, signer, repetition) of a manifest row; InputError naming ``where`` otherwise."""
    sign, signer = _int(row["sign"]), _int(row["signer"])
    if sign is None or not 1 <= sign <= n_signs:
        raise InputError(
            where, f"unknown sign {row['sign']!r}: expected an integer in 1..{n_signs}"
        )
    if signer is None or not 1 <= signer <= n_signers:
        raise InputError(where, f"signer {row['signer']!r} outside 1..{n_signers}")
    rep = row.get("repetition")
    if rep is None or _blank(rep):
        return sign, signer, None
    if _int(rep) is None or _int(rep) < 1:
        raise InputError(where, f"repetition {rep!r} is not an integer >= 1")
    return sign, signer, _int(rep)


def read_signum(
    manifest: str | os.PathLike,
    *,
    landmarks: str = "both_hands",
    missing: str = "reject",
    skip_bad: bool = False,
    n_signs: int = N_SIGNS,
    n_signers: int = N_SIGNERS,
    allow_duplicates: bool = False,
    allow_outside_paths: bool = False,
) -> tuple[list[np.ndarray], pd.DataFrame, list[Rejected], dict]:
    """Read every sample of a SIGNUM manifest (see the module docstring).

    Returns the sequences (T, K, 3) ordered by label, subject, trial, their metadata rows,
    the rejected samples and facts for ``source_info``. Without ``skip_bad`` the first bad
    row or file raises :class:`InputError`; with it, they are collected as rejected. A
    duplicate sample (same path, or same sign, signer and repetition) always raises, and so
    does one recording under two rows (the same SHA-256) unless ``allow_duplicates``. A path
    outside the manifest's folder (absolute, or leaving it with ``..``; symlinks inside the
    folder are followed) is a bad row unless ``allow_outside_paths``.
    """
    landmark_subset(landmarks)  # ValueError for an unknown subset, before any reading
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    table, manifest = read_manifest(manifest)
    root = manifest.parent
    rows, sequences, rejected, seen, zero_filled = [], [], [], {}, 0
    for rec in table.to_dict("records"):
        rel = str(rec["path"]).strip() if not _blank(rec["path"]) else ""
        where = f"{manifest}:{rec['manifest_line']}" + (f" ({rel})" if rel else "")
        try:
            if not rel:
                raise InputError(where, "empty path")
            sign, signer, rep = _row_keys(rec, where, n_signs, n_signers)
            inside = os.path.normpath(rel)
            if not allow_outside_paths and (
                os.path.isabs(inside) or inside == ".." or inside.startswith(f"..{os.sep}")
            ):
                raise InputError(
                    where,
                    f"path is outside the manifest's folder {root}; set ingest: "
                    "{allow_outside_paths: true} (--allow-outside-paths) to read it",
                )
            real = os.path.realpath(root / rel)  # never raises on a symlink loop
            for key in (("path", real), ("sample", sign, signer, rep)):
                if key in seen:
                    what = "path" if key[0] == "path" else "sign, signer and repetition"
                    hint = " (add a repetition column)" if key[0] != "path" and not rep else ""
                    raise InputError(
                        where, f"duplicate sample: same {what} as line {seen[key]}{hint}"
                    )
                seen[key] = rec["manifest_line"]
            seq, n_nan = read_sample(root / rel, landmarks, missing)
        except InputError as exc:
            if not skip_bad or "duplicate sample" in exc.problem:
                raise
            rejected.append(Rejected(rel or f"line {rec['manifest_line']}", exc.problem))
            continue
        gloss = rec.get("gloss")
        rows.append(
            {
                "sequence_id": f"sign{sign:03d}_s{signer:02d}" + (f"_r{rep}" if rep else ""),
                "label": sign - 1,
                "label_name": f"sign{sign:03d}" if _blank(gloss) else str(gloss).strip(),
                "subject": signer,
                "trial": rep,
                "source": rel,
                "sha256": sha256_file(root / rel),
            }
        )
        sequences.append(seq)
        zero_filled += n_nan
    if not sequences:
        raise InputError(manifest, f"no readable samples ({len(rejected)} rejected)")
    meta = pd.DataFrame(rows)
    check_duplicate_recordings(meta, root, allow_duplicates)
    meta["trial"] = pd.array(meta["trial"], dtype="Int32")
    names = meta.groupby("label")["label_name"].nunique()
    if (names > 1).any():
        sign = int(names.index[names > 1][0]) + 1
        raise InputError(manifest, f"sign {sign} has more than one gloss")
    order = meta.sort_values(["label", "subject", "trial"], kind="stable").index.to_numpy()
    meta = meta.loc[order].reset_index(drop=True)
    facts = {
        "manifest": manifest.name,
        "landmarks": landmarks,
        "missing_landmarks": missing,
        "zero_filled_values": zero_filled,
        "fps": 30,
    }
    return [sequences[i] for i in order], meta, rejected, facts


def store_info(dataset: str, landmarks: str, facts: dict) -> StoreInfo:
    """The dataset-level metadata written into a SIGNUM store."""
    _, names, bones = landmark_subset(landmarks)
    return StoreInfo(
        dataset=dataset,
        landmark_names=names,
        bones=bones,
        units="normalised image coordinates",
        coordinate_system=COORDINATES,
        source_info={"reader": "signum", **facts},
    )


def ingest(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    *,
    landmarks: str = "both_hands",
    missing: str = "reject",
    skip_bad: bool = False,
    rejected_out: str | os.PathLike | None = None,
    dataset: str = "signum",
    n_signs: int = N_SIGNS,
    n_signers: int = N_SIGNERS,
    allow_duplicates: bool = False,
    allow_outside_paths: bool = False,
) -> tuple[int, list[Rejected]]:
    """Convert a SIGNUM manifest and its ``.npy`` samples into the store ``out`` (atomically).

    With ``skip_bad``, rejected samples are listed in ``rejected_out`` (TSV: source, reason),
    default ``<out>.rejected.tsv``. ``allow_duplicates``, ``allow_outside_paths``: see
    :func:`read_signum`. Returns (number of sequences written, rejected samples).
    """
    sequences, meta, rejected, facts = read_signum(
        manifest,
        landmarks=landmarks,
        missing=missing,
        skip_bad=skip_bad,
        n_signs=n_signs,
        n_signers=n_signers,
        allow_duplicates=allow_duplicates,
        allow_outside_paths=allow_outside_paths,
    )
    write_store(out, sequences, meta, store_info(dataset, landmarks, facts))
    if skip_bad:
        write_rejected(out, rejected, rejected_out)
    return len(sequences), rejected
