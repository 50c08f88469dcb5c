"""The canonical sequence store: one Parquet file per dataset, one row per sequence.

Columns (the data contract, see ``config/README.md``):

============== ================ ===========================================================
column         type             meaning
============== ================ ===========================================================
sequence_id    string           unique id of the sequence
dataset        string           dataset name (``utd_mhad``, ``synthetic``, ...)
label          int32            0-based class index
label_name     string           class name
subject        int32            subject / signer number as in the source (1-based)
trial          int32, nullable  repetition number, null where the source has none
n_frames       int32            T
n_landmarks    int32            K
frames         list<double>     row-major flattening of the (T, K, 3) array, source values
source         string           raw file path relative to the raw folder
sha256         string           SHA-256 of the raw file (of the frames bytes for synthetic)
============== ================ ===========================================================

Optional columns (:data:`OPTIONAL_COLUMNS`), written only by the readers that know them, so
that every other store (and every store written before they existed) is unchanged and loads
as before: ``camera`` and ``setup`` (int32, NTU RGB+D's camera 1-3 and setup number, for the
cross-view and cross-setup protocols) and ``splits`` (string, nullable: the pyskl split names
a sequence is listed in, comma-separated). :func:`load_meta` and :func:`load_sequences` return
them where the file has them.

The schema metadata key ``geokd`` holds JSON with ``format_version``, ``dataset``,
``landmark_names``, ``bones``, ``units``, ``coordinate_system`` and ``source_info``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import InputError

FORMAT_VERSION = 1
META_KEY = b"geokd"

META_COLUMNS = (
    "sequence_id",
    "dataset",
    "label",
    "label_name",
    "subject",
    "trial",
    "n_frames",
    "n_landmarks",
    "source",
    "sha256",
)

SCHEMA = pa.schema(
    [
        pa.field("sequence_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("label_name", pa.string(), nullable=False),
        pa.field("subject", pa.int32(), nullable=False),
        pa.field("trial", pa.int32(), nullable=True),
        pa.field("n_frames", pa.int32(), nullable=False),
        pa.field("n_landmarks", pa.int32(), nullable=False),
        pa.field("frames", pa.list_(pa.float64()), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
    ]
)

#: columns beyond the contract, present only where a reader writes them (see the docstring)
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {
    "camera": pa.int32(),
    "setup": pa.int32(),
    "splits": pa.string(),
}


@dataclass
class StoreInfo:
    """Dataset-level facts stored in the Parquet schema metadata."""

    dataset: str
    landmark_names: list[str]
    units: str
    bones: list[tuple[int, int]] = field(default_factory=list)
    coordinate_system: str = ""
    source_info: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        d = dict(self.__dict__)
        d["bones"] = [list(b) for b in self.bones]
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StoreInfo:
        d = json.loads(raw)
        d["bones"] = [tuple(b) for b in d.get("bones", [])]
        return cls(**d)


def validate_sequence(seq: np.ndarray, where: object, n_landmarks: int | None = None) -> None:
    """Raise :class:`InputError` unless ``seq`` is a finite (T >= 1, K, 3) array."""
    if seq.ndim != 3 or seq.shape[2] != 3:
        raise InputError(where, f"expected an array of shape (T, K, 3), got {seq.shape}")
    if seq.shape[0] < 1:
        raise InputError(where, "sequence has no frames")
    if n_landmarks is not None and seq.shape[1] != n_landmarks:
        raise InputError(where, f"expected {n_landmarks} landmarks, got {seq.shape[1]}")
    if not np.isfinite(seq).all():
        bad = int((~np.isfinite(seq)).sum())
        raise InputError(where, f"{bad} non-finite value(s) (NaN or inf) in the landmarks")


def write_store(
    path: str | os.PathLike, sequences: list[np.ndarray], meta: pd.DataFrame, info: StoreInfo
) -> None:
    """Validate and write sequences of shape (T, K, 3) with their metadata rows, atomically.

    ``meta`` has one row per sequence with the columns ``sequence_id, label, label_name,
    subject, trial, source, sha256`` (``dataset``, ``n_frames`` and ``n_landmarks`` are
    filled in here), and any of :data:`OPTIONAL_COLUMNS` it holds.
    """
    path = Path(path)
    if len(sequences) != len(meta):
        raise ValueError(f"{len(sequences)} sequences but {len(meta)} metadata rows")
    if len(sequences) == 0:
        raise InputError(path, "no sequences to write")
    ids = meta["sequence_id"].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(path, f"duplicate sequence_id(s): {sorted(set(dup))[:5]}")
    k = len(info.landmark_names)
    arrays = []
    for sid, seq in zip(ids, sequences, strict=True):
        seq = np.asarray(seq, dtype=np.float64)
        validate_sequence(seq, sid, k)
        arrays.append(np.ascontiguousarray(seq))
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum(lengths * k * 3, out=offsets[1:])
    values = np.concatenate([a.ravel() for a in arrays])
    frames = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values)).cast(
        pa.list_(pa.float64())
    )
    trial = pd.array(meta["trial"], dtype="Int32") if "trial" in meta else [None] * len(meta)
    columns = {
        "sequence_id": pa.array(ids.tolist(), pa.string()),
        "dataset": pa.array([info.dataset] * len(arrays), pa.string()),
        "label": pa.array(meta["label"].to_numpy(np.int32)),
        "label_name": pa.array(meta["label_name"].astype(str).tolist(), pa.string()),
        "subject": pa.array(meta["subject"].to_numpy(np.int32)),
        "trial": pa.array(trial, pa.int32(), from_pandas=True),
        "n_frames": pa.array(lengths.astype(np.int32)),
        "n_landmarks": pa.array(np.full(len(arrays), k, np.int32)),
        "frames": frames,
        "source": pa.array(meta["source"].astype(str).tolist(), pa.string()),
        "sha256": pa.array(meta["sha256"].astype(str).tolist(), pa.string()),
    }
    schema = SCHEMA
    for name in (c for c in OPTIONAL_COLUMNS if c in meta):
        kind = OPTIONAL_COLUMNS[name]
        values = meta[name].astype(object).where(meta[name].notna(), None).tolist()
        if pa.types.is_integer(kind):
            values = [None if v is None else int(v) for v in values]
        columns[name] = pa.array(values, kind)
        schema = schema.append(pa.field(name, kind, nullable=True))
    table = pa.table(columns, schema=schema.with_metadata({META_KEY: info.to_json()}))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_info(path: str | os.PathLike) -> StoreInfo:
    """Read the dataset-level metadata of a store without loading the frames."""
    schema = _read_schema(path)
    try:
        return StoreInfo.from_json(schema.metadata[META_KEY])
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"unreadable geokd metadata ({exc})") from exc


def _read_schema(path: str | os.PathLike) -> pa.Schema:
    if not Path(path).is_file():
        raise InputError(path, "sequence store not found")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"not a readable Parquet sequence store ({exc})") from exc
    missing = [f.name for f in SCHEMA if f.name not in schema.names]
    if missing or not schema.metadata or META_KEY not in schema.metadata:
        raise InputError(path, f"not a geokd sequence store (missing {missing} or metadata)")
    return schema


def load_meta(path: str | os.PathLike) -> pd.DataFrame:
    """The metadata table of a store (every column but ``frames``), in file order; its rows
    checked as by :func:`load_sequences` (all but the frame values)."""
    schema = _read_schema(path)
    try:
        optional = [c for c in OPTIONAL_COLUMNS if c in schema.names]
        meta = pq.read_table(path, columns=[*META_COLUMNS, *optional]).to_pandas()
        n_names = len(StoreInfo.from_json(schema.metadata[META_KEY]).landmark_names)
    except (OSError, pa.ArrowException, ValueError, TypeError) as exc:
        raise InputError(path, f"not a readable Parquet sequence store ({exc})") from exc
    _check_meta(path, meta, n_names)
    return meta


def load_sequences(path: str | os.PathLike) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Load a store: a list of float64 arrays of shape (T, K, 3) and the metadata table.

    The data contract is checked on every load, so a store written by other means (or
    damaged) is refused with :class:`InputError` naming the file and the first offending
    sequence: every sequence has T >= 1 frames, all have the same K (that of the
    ``landmark_names``), every value is finite, ``sequence_id`` is unique and ``label`` is a
    class index >= 0 with one ``label_name`` per label.

    >>> seqs, meta = load_sequences("data/interim/synthetic/sequences.parquet")  # doctest: +SKIP
    >>> seqs[0].shape  # (T, K, 3)  # doctest: +SKIP
    """
    schema = _read_schema(path)
    try:
        table = pq.read_table(path)
        info = StoreInfo.from_json(schema.metadata[META_KEY])
    except (OSError, pa.ArrowException, ValueError, TypeError) as exc:
        raise InputError(path, f"not a readable Parquet sequence store ({exc})") from exc
    meta = table.drop(["frames"]).to_pandas()
    _check_meta(path, meta, len(info.landmark_names))
    col = table.column("frames").combine_chunks()
    values = col.values.to_numpy(zero_copy_only=False)
    offsets = col.offsets.to_numpy()
    finite = np.isfinite(values)
    sequences = []
    for i, (sid, t, k) in enumerate(
        zip(meta["sequence_id"], meta["n_frames"], meta["n_landmarks"], strict=True)
    ):
        flat = values[offsets[i] : offsets[i + 1]]
        if flat.size != t * k * 3:
            raise InputError(
                path, f"row {i} ({sid}): frames length {flat.size} != n_frames*n_landmarks*3"
            )
        if not finite[offsets[i] : offsets[i + 1]].all():
            bad = int((~finite[offsets[i] : offsets[i + 1]]).sum())
            raise InputError(path, f"sequence {sid}: {bad} non-finite value(s) (NaN or inf)")
        sequences.append(flat.reshape(t, k, 3))
    return sequences, meta


def _check_meta(path: str | os.PathLike, meta: pd.DataFrame, n_names: int) -> None:
    """The per-row rules of the data contract that the metadata alone decides."""
    if len(meta) == 0:
        raise InputError(path, "the store holds no sequences")
    ids = meta["sequence_id"].astype(str)
    if ids.duplicated().any():
        raise InputError(
            path, f"duplicate sequence_id(s): {sorted(set(ids[ids.duplicated()]))[:5]}"
        )
    short = meta.index[meta["n_frames"] < 1]
    if len(short):
        raise InputError(path, f"sequence {ids[short[0]]}: no frames (n_frames = 0)")
    ks = meta["n_landmarks"].unique()
    if len(ks) > 1 or (n_names and ks[0] != n_names):
        first = meta.index[meta["n_landmarks"] != (n_names or ks[0])][0]
        raise InputError(
            path,
            f"sequence {ids[first]}: {meta['n_landmarks'][first]} landmarks, but the store has "
            f"{n_names or ks[0]} ({'landmark_names' if n_names else 'first row'}): "
            "mismatched landmark counts",
        )
    bad = meta.index[meta["label"] < 0]
    if len(bad):
        raise InputError(path, f"sequence {ids[bad[0]]}: unknown label {meta['label'][bad[0]]}")
    names = meta.groupby("label")["label_name"].nunique()
    if (names > 1).any():
        label = int(names.index[names > 1][0])
        raise InputError(path, f"label {label} has several label_name values")
