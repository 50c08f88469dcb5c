"""NTU RGB+D (60 and 120) reader: a folder of ``SsssCcccPpppRrrrAaaa.skeleton`` files -> the store.

Input format
------------
One text file per sample, named ``S001C002P003R002A013.skeleton``: setup ``S`` (1-32),
camera ``C`` (1-3), performer ``P`` (1-106), replication ``R`` (>= 1) and action ``A`` (1-120;
1-60 are NTU RGB+D's). The file holds the number of frames, then per frame the number of
bodies and per body: an info line (the body's tracking ID first, then 9 more values), the
number of joints (25) and one line per joint whose first three values are x, y, z (Kinect v2
camera space, metres; the other 9 values, depth and colour pixel positions, orientation and
tracking state, are checked to be numbers and not stored).

Mapping to the store: label = action - 1 (:data:`~geokd.data.skeleton.NTU_ACTIONS`), subject =
performer, trial = replication, and the optional columns ``camera`` and ``setup`` (for the
cross-view and cross-setup protocols, :data:`PROTOCOLS`); sequence id = the file's stem.

Bodies (``bodies``): a body is followed across frames by its tracking ID; its **motion** is the
sum, over consecutive frames in which it is present, of its 25 joints' displacements (metres).
``bodies=1`` keeps the most active body (largest motion; the first seen on a tie): 25 landmarks.
``bodies=2`` keeps the two most active: 50 landmarks (the more active body's 25 joints, then the
other's); where only one of them is present in a frame, and in a sample with one body only, the
present body is **repeated** in the other's place (zeros would put 25 landmarks at the camera,
which the Procrustes cost would take for part of the shape). Bodies beyond the kept ones (NTU's
occasional noise bodies) are left out.

Frames: a frame without any kept body (no body at all, or only bodies left out) is **dropped**;
the counts go into the store's ``source_info`` (``frames_without_body``: no body at all,
``frames_dropped``: every dropped frame, ``sequences_with_dropped_frames``). A file with no body
in any frame (NTU's "missing skeleton" samples: 302 in NTU RGB+D 60, 535 in 120) is
**always** rejected, with that reason, into ``<store>.rejected.tsv`` (never an error; the table
is written by every NTU ingest, so it records them).

Bad input (a name that does not parse, a truncated file, a joint count other than 25, a
non-numeric or non-finite value, content after the last frame) raises one
:class:`~geokd.errors.InputError` naming the file and line (``file:line``), or with
``skip_bad`` becomes a row of the rejected-files table. Nothing is written unless every file was
read (or rejected).
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
from .skeleton import NTU_ACTIONS, NTU_BONES, NTU_JOINTS, two_bodies
from .store import StoreInfo, write_store

__all__ = [
    "BODIES",
    "NTU60_XSUB_TRAIN",
    "NTU120_XSUB_TRAIN",
    "N_JOINTS",
    "PROTOCOLS",
    "MissingSkeleton",
    "ingest",
    "landmarks",
    "ntu_files",
    "parse_name",
    "read_file",
    "read_folder",
    "read_skeleton",
    "refresh_listing",
    "select_bodies",
]

FILE_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton$")
SUFFIX = ".skeleton"
N_JOINTS = len(NTU_JOINTS)  # 25
N_SETUPS, N_CAMERAS, N_PERFORMERS = 32, 3, 106
BODIES = (1, 2)
#: the published cross-subject training performers (Shahroudy et al. 2016; Liu et al. 2019)
NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_XSUB_TRAIN = (
    *NTU60_XSUB_TRAIN, 45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81,
    82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
)  # fmt: skip
#: the standard protocols, as config protocol entries (``by``: what the lists name)
PROTOCOLS: dict[str, dict] = {
    "ntu60_xsub": {
        "train": list(NTU60_XSUB_TRAIN),
        "test": [p for p in range(1, 41) if p not in NTU60_XSUB_TRAIN],
    },
    "ntu60_xview": {"by": "camera", "train": [2, 3], "test": [1]},
    "ntu120_xsub": {
        "train": list(NTU120_XSUB_TRAIN),
        "test": [p for p in range(1, N_PERFORMERS + 1) if p not in NTU120_XSUB_TRAIN],
    },
    "ntu120_xset": {"by": "setup", "train": list(range(2, 33, 2)), "test": list(range(1, 33, 2))},
}
COORDINATES = (
    "Kinect v2 camera space: origin at the depth sensor, x to the sensor's left, y up, "
    "z away from the sensor"
)


class MissingSkeleton(InputError):
    """A sample without a body in any frame (NTU's "missing skeleton" samples)."""


def landmarks(bodies: int = 1) -> tuple[list[str], list[tuple[int, int]]]:
    """(landmark names, bones) of a store with ``bodies`` NTU bodies (25 or 50 landmarks)."""
    if bodies not in BODIES:
        raise ValueError(f"bodies must be one of {BODIES}, got {bodies!r}")
    if bodies == 1:
        return list(NTU_JOINTS), list(NTU_BONES)
    return two_bodies(NTU_JOINTS, NTU_BONES)


def parse_name(path: Path) -> tuple[int, int, int, int, int]:
    """(setup, camera, performer, replication, action) of ``SsssCcccPpppRrrrAaaa.skeleton``;
    InputError naming the file otherwise."""
    m = FILE_RE.match(path.name)
    if not m:
        raise InputError(path, "file name does not match 'SsssCcccPpppRrrrAaaa.skeleton'")
    setup, camera, performer, replication, action = (int(g) for g in m.groups())
    for what, value, top in (
        ("setup", setup, N_SETUPS),
        ("camera", camera, N_CAMERAS),
        ("performer", performer, N_PERFORMERS),
        ("action", action, len(NTU_ACTIONS)),
    ):
        if not 1 <= value <= top:
            raise InputError(path, f"{what} {value} outside 1..{top}")
    if replication < 1:
        raise InputError(path, "replication numbers start at 1")
    return setup, camera, performer, replication, action


# --------------------------------------------------------------------------- the text file
class _Lines:
    """The file's lines with a cursor; every problem names ``file:line``."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines, self.i = path, text.splitlines(), 0

    def fail(self, problem: str, line: int | None = None) -> InputError:
        return InputError(f"{self.path}:{self.i + 1 if line is None else line}", problem)

    def take(self, n: int, what: str) -> list[str]:
        if self.i + n > len(self.lines):
            raise InputError(
                f"{self.path}:{len(self.lines)}",
                f"truncated file: it ends here, where {what} should follow",
            )
        out = self.lines[self.i : self.i + n]
        self.i += n
        return out

    def count(self, what: str, where: str) -> int:
        (line,) = self.take(1, f"the number of {what}{where}")
        tokens = line.split()
        if len(tokens) != 1 or not tokens[0].isdigit():
            self.i -= 1
            raise self.fail(f"expected the number of {what}{where} (one integer), got {line!r}")
        return int(tokens[0])


def _numbers(lines: _Lines, rows: list[list[str]], first: int, what: str) -> np.ndarray:
    """The values of ``rows`` (one token list per line, from line index ``first``) as float64;
    InputError naming the line of the first non-numeric value."""
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        pass
    for k, row in enumerate(rows):
        for token in row:
            try:
                float(token)
            except ValueError:
                raise lines.fail(f"non-numeric value {token!r} in {what}", first + k + 1) from None
    raise lines.fail(f"{what}: lines of unequal length", first + 1)  # pragma: no cover


def read_skeleton(path: str | os.PathLike) -> tuple[list[list[tuple[int, np.ndarray]]], int]:
    """Parse one ``.skeleton`` file: per frame a list of (body tracking ID, joints (25, 3)
    float64 x, y, z exactly as written), and the number of frames the file declares.

    Raises :class:`InputError` naming ``file:line`` for a truncated file, a count that is not
    one integer, a joint count other than 25, a joint line with fewer than three values, a
    non-numeric or non-finite value, a body ID twice in a frame, or content after the last
    frame; and naming the file when it is missing or not text.
    """
    path = Path(path)
    check_raw_file(path)
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise InputError(
            path, f"not a text .skeleton file (byte {exc.start} is not ASCII)"
        ) from None
    lines = _Lines(path, text)
    if not text.strip():
        raise InputError(path, "empty file")
    n_frames = lines.count("frames", "")
    frames = []
    for f in range(1, n_frames + 1):
        where = f" in frame {f} of {n_frames}"
        bodies = []
        for b in range(1, lines.count("bodies", where) + 1):
            at = f" of body {b}{where}"
            (info,) = lines.take(1, f"the info line{at}")
            tokens = info.split()
            if not tokens or not tokens[0].isdigit():
                lines.i -= 1
                raise lines.fail(f"expected the info line{at}, starting with the body ID")
            _numbers(lines, [tokens[1:]], lines.i - 1, f"the info line{at}")
            body_id = int(tokens[0])
            if any(body_id == other for other, _ in bodies):
                lines.i -= 1
                raise lines.fail(f"body ID {body_id} twice{where}")
            n_joints = lines.count("joints", at)
            if n_joints != N_JOINTS:
                lines.i -= 1
                raise lines.fail(f"expected {N_JOINTS} joints (Kinect v2){at}, got {n_joints}")
            first = lines.i
            rows = [line.split() for line in lines.take(N_JOINTS, f"the {N_JOINTS} joints{at}")]
            short = [k for k, row in enumerate(rows) if len(row) < 3]
            if short:
                raise lines.fail(
                    f"joint {short[0] + 1}{at}: expected x y z (and more values), got "
                    f"{len(rows[short[0]])} value(s)",
                    first + short[0] + 1,
                )
            if len({len(row) for row in rows}) == 1:
                values = _numbers(lines, rows, first, f"the joints{at}")[:, :3]
            else:
                values = np.stack(
                    [_numbers(lines, [row], first + k, f"joint {k + 1}{at}")[0, :3]
                     for k, row in enumerate(rows)]
                )  # fmt: skip
            bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
            if len(bad):
                raise lines.fail(
                    f"non-finite x, y, z of joint {bad[0] + 1}{at}", first + bad[0] + 1
                )
            bodies.append((body_id, np.ascontiguousarray(values)))
        frames.append(bodies)
    rest = [k for k, line in enumerate(lines.lines[lines.i :]) if line.strip()]
    if rest:
        raise lines.fail(
            f"unexpected content after the last of {n_frames} frames", lines.i + rest[0] + 1
        )
    return frames, n_frames


def select_bodies(
    frames: list[list[tuple[int, np.ndarray]]], bodies: int = 1
) -> tuple[np.ndarray, int, int]:
    """The stored sequence of a parsed file (see the module docstring): (array (T, 25 x
    bodies, 3), frames dropped, frames without any body). ValueError when no frame has a body.
    """
    if bodies not in BODIES:
        raise ValueError(f"bodies must be one of {BODIES}, got {bodies!r}")
    motion: dict[int, float] = {}  # body ID -> summed joint displacement, in order of appearance
    last: dict[int, tuple[int, np.ndarray]] = {}
    for t, frame in enumerate(frames):
        for body_id, joints in frame:
            motion.setdefault(body_id, 0.0)
            if body_id in last and last[body_id][0] == t - 1:
                motion[body_id] += float(np.linalg.norm(joints - last[body_id][1], axis=1).sum())
            last[body_id] = (t, joints)
    if not motion:
        raise ValueError("no body in any frame")
    ranked = sorted(motion, key=lambda i: -motion[i])  # stable: the first seen wins a tie
    keep = ranked[:bodies]
    out, dropped = [], 0
    for frame in frames:
        present = dict(frame)
        found = [present.get(i) for i in keep]
        if all(j is None for j in found):
            dropped += 1
            continue
        if bodies == 2:
            a, b = found if len(found) == 2 else (found[0], None)
            out.append(np.concatenate([a if a is not None else b, b if b is not None else a]))
        else:
            out.append(found[0])
    empty = sum(1 for frame in frames if not frame)
    return np.stack(out), dropped, empty


# -------------------------------------------------------------------------------- folders
def _files(raw_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in raw_dir.iterdir()
        if p.name.lower().endswith(SUFFIX) and (p.is_symlink() or p.is_file())
    )


def ntu_files(raw_dir: str | os.PathLike) -> tuple[Path, list[Path]]:
    """(root, files): the ``*.skeleton`` entries of ``raw_dir`` that ingest reads (none when it
    is not a folder); for the workflow's raw-file listing."""
    root = Path(raw_dir)
    return root, (_files(root) if root.is_dir() else [])


def refresh_listing(
    source: str, raw: str | os.PathLike, out: str | os.PathLike, cache_file: str | os.PathLike
) -> str:
    """The workflow's raw-file listing (:mod:`geokd.data.raw_listing`) of an ``ntu`` folder's
    ``.skeleton`` files or a ``pyskl`` pickle, written to ``out`` unless ``raw`` is missing
    (ingest then names it); returns ``out``."""
    from .raw_listing import update_listing

    root, files = ntu_files(raw) if source == "ntu" else (Path(raw).parent, [Path(raw)])
    if root.exists():
        update_listing(out, root, files, cache_file)
    return str(out)


def read_file(path: Path, bodies: int = 1) -> tuple[np.ndarray, int, int]:
    """(sequence, frames dropped, frames without a body) of one file; :class:`MissingSkeleton`
    for a file with no body in any frame, :class:`InputError` for a bad one."""
    frames, n_frames = read_skeleton(path)
    if not any(frames):
        raise MissingSkeleton(
            path,
            f"no body in any of its {n_frames} frames (an NTU 'missing skeleton' sample)",
        )
    return select_bodies(frames, bodies)


def read_folder(
    raw_dir: str | os.PathLike,
    *,
    bodies: int = 1,
    skip_bad: bool = False,
    allow_duplicates: bool = False,
) -> tuple[list[np.ndarray], pd.DataFrame, list[Rejected], dict]:
    """Read every ``*.skeleton`` file of ``raw_dir`` (see the module docstring).

    Returns the sequences (T, 25 x bodies, 3) ordered by label, subject, trial and id, their
    metadata rows (with ``camera`` and ``setup``), the rejected files (missing-skeleton
    samples always; bad files with ``skip_bad``, else the first raises) and facts for
    ``source_info``. Two files of one sample (the same five numbers) always raise; one
    recording under two names (the same SHA-256) raises unless ``allow_duplicates``.
    """
    landmarks(bodies)  # ValueError for a bad count, before any reading
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(raw_dir, "raw folder does not exist or is not a folder")
    files = _files(raw_dir)
    if not files:
        raise InputError(raw_dir, f"no {SUFFIX} files in the raw folder")
    rows, sequences, rejected, seen = [], [], [], {}
    dropped = empty = with_dropped = missing = 0
    for path in files:
        rel = path.relative_to(raw_dir).as_posix()
        try:
            setup, camera, performer, replication, action = key = parse_name(path)
            if key in seen:
                raise InputError(path, f"duplicate sample: the same numbers as {seen[key]}")
            seen[key] = rel
            seq, n_dropped, n_empty = read_file(path, bodies)
        except MissingSkeleton as exc:
            rejected.append(Rejected(rel, exc.problem))
            missing += 1
            continue
        except InputError as exc:
            if not skip_bad or "duplicate sample" in exc.problem:
                raise
            line = exc.where.rpartition(":")[2] if exc.where != str(path) else ""
            rejected.append(Rejected(rel, f"line {line}: {exc.problem}" if line else exc.problem))
            continue
        dropped += n_dropped
        empty += n_empty
        with_dropped += int(n_dropped > 0)
        rows.append(
            {
                "sequence_id": path.name[: -len(SUFFIX)],
                "label": action - 1,
                "label_name": NTU_ACTIONS[action - 1],
                "subject": performer,
                "trial": replication,
                "camera": camera,
                "setup": setup,
                "source": rel,
                "sha256": sha256_file(path),
            }
        )
        sequences.append(seq)
    if not sequences:
        raise InputError(raw_dir, f"no readable sequences ({len(rejected)} files rejected)")
    meta = pd.DataFrame(rows)
    check_duplicate_recordings(meta, raw_dir, allow_duplicates)
    order = meta.sort_values(
        ["label", "subject", "trial", "sequence_id"], kind="stable"
    ).index.to_numpy()
    meta = meta.loc[order].reset_index(drop=True)
    facts = {
        "bodies": bodies,
        "second_body": "the other body repeated where one is missing" if bodies == 2 else None,
        "frames_without_body": empty,
        "frames_dropped": dropped,
        "sequences_with_dropped_frames": with_dropped,
        "missing_skeleton_samples": missing,
        "fps": 30,
    }
    return [sequences[i] for i in order], meta, rejected, facts


def store_info(dataset: str, raw_dir: str | os.PathLike, facts: dict) -> StoreInfo:
    """The dataset-level metadata written into an NTU store."""
    names, bones = landmarks(facts["bodies"])
    info = {k: v for k, v in facts.items() if v is not None}
    return StoreInfo(
        dataset=dataset,
        landmark_names=names,
        bones=bones,
        units="m",
        coordinate_system=COORDINATES,
        source_info={"reader": "ntu", "raw_dir": Path(raw_dir).name, **info},
    )


def ingest(
    raw_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    bodies: int = 1,
    skip_bad: bool = False,
    rejected_out: str | os.PathLike | None = None,
    dataset: str = "ntu",
    allow_duplicates: bool = False,
) -> tuple[int, list[Rejected]]:
    """Convert a folder of NTU ``.skeleton`` files into the store ``out`` (atomically).

    The rejected files (missing-skeleton samples, and bad files with ``skip_bad``) are listed
    in ``rejected_out`` (TSV: source, reason; default ``<out>.rejected.tsv``), written by every
    successful ingest. Returns (number of sequences written, rejected files).
    """
    sequences, meta, rejected, facts = read_folder(
        raw_dir, bodies=bodies, skip_bad=skip_bad, allow_duplicates=allow_duplicates
    )
    write_store(out, sequences, meta, store_info(dataset, raw_dir, facts))
    write_rejected(out, rejected, rejected_out)
    return len(sequences), rejected
