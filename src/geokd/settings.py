"""The experiment settings: one dataclass per config section, the only place defaults live.

``config/config.yaml`` is checked for structure, types and bounds against
``workflow/schemas/config.schema.yaml`` (tested field by field against these dataclasses), then
:func:`resolve` builds each dataset's :class:`Settings`: the top-level sections with the
dataset's ``overrides`` merged in key by key, every absent key filled from the dataclass
defaults, and the checks that need several keys at once (a subject in two splits, a subject the
dataset does not have, ``n_heads`` not dividing ``d_model``, a NNGK ``k`` not smaller than the
training set). A bad value raises :class:`SettingsError` naming its key path.

Every workflow job gets the slice of the settings it uses (:func:`geokd.jobs.job_settings`,
its typed job dataclass) in a small
content-addressed JSON file (:func:`write_settings_file`), passed as ``--settings FILE``: the
printed command carries no config, and a change of a setting changes the file name, hence
the job's params, so Snakemake reruns exactly the jobs it shapes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text
from .checksum import sha256_bytes
from .data.ntu import N_CAMERAS, N_PERFORMERS, N_SETUPS
from .data.ntu_synthetic import NtuSyntheticConfig
from .data.signum import N_SIGNERS
from .data.signum_synthetic import SignumSyntheticConfig
from .data.skeleton import UTD_MHAD_ACTIONS
from .data.synthetic import SyntheticConfig
from .distances.config import DistanceConfig
from .errors import InputError
from .jsonfile import json_text
from .models.config import (
    JOB_FIELDS,
    MODES,
    NngkSettings,
    SoftmaxSettings,
    StudentConfig,
    TrainConfig,
)

#: UTD-MHAD: 8 subjects, 4 trials of each action (861 usable sequences)
UTD_MHAD_SUBJECTS = 8
UTD_MHAD_TRIALS = 4
MODELS = MODES
METRICS = ("procrustes", "paper", "euclidean", "hand")


class SettingsError(ValueError):
    """A bad setting: ``key`` is its dotted path in the config."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"config: {key}: {problem}")
        self.key, self.problem = key, problem


@dataclass
class IngestSettings:
    """``ingest``: ``skip_bad`` writes the good sequences and a table of rejected raw files
    (``<store>.rejected.tsv``) instead of failing; ``allow_duplicates`` keeps one recording
    (the same raw-file SHA-256) stored under two names or labels, otherwise an error naming
    both; ``allow_outside_paths`` lets a SIGNUM manifest list files outside its folder."""

    skip_bad: bool = False
    allow_duplicates: bool = False
    allow_outside_paths: bool = False


@dataclass
class DistanceSettings(DistanceConfig):
    """``distances``: frame costs to compute and per-metric parameters (``hand``: s1, s2, s3,
    delta), and the kernel's settings (:class:`geokd.distances.config.DistanceConfig`: rows and
    columns per block, one job each, the Sakoe-Chiba band, backend, precision, frame budget)."""

    metrics: list[str] = field(default_factory=lambda: ["procrustes"])
    metric_params: dict[str, dict[str, float]] = field(default_factory=dict)
    #: how the stored DTW sums are used: "none", or "path_length" (divided by n + m)
    normalise: str = "none"

    def __post_init__(self) -> None:
        if self.normalise not in ("none", "path_length"):
            raise ValueError(f"normalise must be none or path_length, got {self.normalise!r}")
        f = self.frames
        if f is not None and (not isinstance(f, int) or isinstance(f, bool) or f < 2):
            raise ValueError(f"frames must be null or an integer >= 2, got {self.frames!r}")


@dataclass
class TeacherSettings:
    """``teacher``: which train x train matrix teaches, the soft-label methods to compute and
    the one the distilled student learns from."""

    metric: str = "procrustes"
    methods: list[str] = field(default_factory=lambda: ["softmax", "nngk"])
    distill_from: str = "softmax"
    #: a training sample's soft labels from other subjects' samples, or every other sample
    exclude: str = "subject"

    def __post_init__(self) -> None:
        if self.exclude not in ("subject", "self"):
            raise ValueError(f"exclude must be subject or self, got {self.exclude!r}")

    softmax: SoftmaxSettings = field(default_factory=SoftmaxSettings)
    nngk: NngkSettings = field(default_factory=NngkSettings)


@dataclass
class KnnSettings:
    """``knn``: the largest k evaluated and the test queries timed as exact 1-NN queries."""

    k_max: int = 30
    latency_queries: int = 5


@dataclass
class TrainingSettings:
    """``training``: seeds, and the student's optimisation and architecture."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    train: TrainConfig = field(default_factory=TrainConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    #: families whose seeds are also evaluated as one ensemble (``<family>_ensemble``)
    ensembles: list[str] = field(default_factory=list)
    #: per model family: ``{"train": {...}, "student": {...}}`` merged over train and student
    per_model: dict[str, dict] = field(default_factory=dict)
    #: seeds of a family that one job trains at once, as one batched model (consecutive
    #: groups of ``training.seeds``); None: all of them in one job
    seeds_per_job: int | None = None
    #: the comparisons the summaries make, declared before the run: ``[geometry-taught family,
    #: labels-only family]`` pairs, each paired by seed (never a pick of test winners)
    comparisons: list[list[str]] = field(
        default_factory=lambda: [["distilled", "label_smoothing"], ["metric", "transformer"]]
    )

    def seed_groups(self) -> list[tuple[int, ...]]:
        """The seeds, in groups of ``seeds_per_job`` (in order): one training job each."""
        n = self.seeds_per_job or len(self.seeds)
        return [tuple(self.seeds[i : i + n]) for i in range(0, len(self.seeds), n)]

    def for_model(self, model: str) -> tuple[TrainConfig, StudentConfig]:
        """The train and student settings of one model family (``per_model`` merged in)."""
        over = self.per_model.get(model) or {}
        train = build(TrainConfig, {**_fields(self.train), **(over.get("train") or {})}, "train")
        student = build(
            StudentConfig, {**_fields(self.student), **(over.get("student") or {})}, "student"
        )
        return train, student


@dataclass
class BudgetSettings:
    """``budgets``: the label-budget study (:mod:`geokd.models.budgets`): for each protocol,
    ``m = 1 .. n - 1`` labelled training subjects (all single subjects at ``m = 1``, at most
    ``max_subsets`` subsets drawn with ``sample_seed`` for larger ``m``), each arm trained with
    ``seeds``; ``labels`` is the labels-only family of the ``labels`` arm."""

    enabled: bool = True
    max_subsets: int = 5
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    labels: str = "label_smoothing"
    sample_seed: int = 0

    def __post_init__(self) -> None:
        if self.max_subsets < 1 or not self.seeds:
            raise ValueError("max_subsets must be >= 1 and seeds not empty")
        if self.labels not in ("transformer", "label_smoothing", "nngk"):
            raise ValueError(f"labels must be a labels-only family, got {self.labels!r}")


@dataclass
class DatasetSettings:
    """``datasets.<name>``: where the sequences come from and the protocols run on them."""

    source: str
    protocols: dict[str, dict[str, list[int]]]
    raw_dir: str | None = None
    synthetic: SyntheticConfig | None = None
    manifest: str | None = None
    synthetic_signum: SignumSyntheticConfig | None = None
    landmarks: str = "both_hands"
    missing_landmarks: str = "reject"
    layout: str = "natural"
    as_published_of: str | None = None
    metrics: list[str] | None = None
    overrides: dict = field(default_factory=dict)
    #: ntu, pyskl: bodies stored per frame, 1 (the most active) or 2 (50 NTU landmarks)
    bodies: int = 1
    #: ntu only, instead of raw_dir: generate a synthetic NTU-format folder
    synthetic_ntu: NtuSyntheticConfig | None = None
    #: pyskl only: the annotation pickle
    annotations: str | None = None

    def __post_init__(self) -> None:
        if self.bodies not in (1, 2):
            raise ValueError(f"bodies must be 1 or 2, got {self.bodies!r}")


#: dataset keys that only some sources read: left out of the other sources' job settings
SOURCE_FIELDS = {
    "bodies": ("ntu", "pyskl"),
    "synthetic_ntu": ("ntu",),
    "annotations": ("pyskl",),
}


@dataclass
class Settings:
    """Everything one dataset's jobs use, overrides merged and defaults filled."""

    name: str
    dataset: DatasetSettings
    ingest: IngestSettings
    distances: DistanceSettings
    teacher: TeacherSettings
    knn: KnnSettings
    training: TrainingSettings
    budgets: BudgetSettings

    @property
    def metrics(self) -> list[str]:
        """The frame costs computed for this dataset (its own list, else ``distances``)."""
        return self.dataset.metrics or self.distances.metrics


SECTIONS = {
    "ingest": IngestSettings,
    "distances": DistanceSettings,
    "teacher": TeacherSettings,
    "knn": KnnSettings,
    "training": TrainingSettings,
    "budgets": BudgetSettings,
}


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _dataclass_of(tp) -> type | None:
    """The dataclass in an annotation such as ``X`` or ``X | None``."""
    if dataclasses.is_dataclass(tp):
        return tp
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if found else None
    return None


def build(cls: type, values: dict | None, key: str):
    """``cls(**values)`` with nested dataclasses built too; unknown keys and the dataclass's
    own ValueErrors become :class:`SettingsError` naming the key path."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise SettingsError(key, f"expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(values) - names):
        raise SettingsError(f"{key}.{unknown[0]}", f"unknown setting (known: {sorted(names)})")
    kwargs = {}
    for name, value in values.items():
        inner = _dataclass_of(hints[name])
        if inner is not None and (value is not None or inner is hints[name]):
            value = build(inner, value, f"{key}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        field_key = next((f"{key}.{n}" for n in names if n in str(exc)), key)
        raise SettingsError(field_key, str(exc)) from None


def _n_subjects(d: DatasetSettings) -> int | None:
    if d.source == "synthetic":
        return (d.synthetic or SyntheticConfig()).n_subjects
    if d.source == "utd_mhad":
        return UTD_MHAD_SUBJECTS
    if d.source == "ntu":
        return d.synthetic_ntu.n_performers if d.synthetic_ntu else N_PERFORMERS
    if d.source == "pyskl":
        return None  # performers where the pickle's names are NTU names, else subject 0
    if d.synthetic_signum is not None:
        return d.synthetic_signum.n_signers
    return N_SIGNERS


def _max_per_subject(d: DatasetSettings) -> int | None:
    """At most this many sequences per subject (None: not known before ingest)."""
    if d.source == "synthetic":
        cfg = d.synthetic or SyntheticConfig()
        return cfg.n_classes * cfg.n_trials
    if d.source == "utd_mhad":
        return len(UTD_MHAD_ACTIONS) * UTD_MHAD_TRIALS
    if d.synthetic_ntu is not None:
        cfg = d.synthetic_ntu
        return cfg.n_actions * cfg.n_replications * cfg.n_cameras
    if d.synthetic_signum is not None:
        cfg = d.synthetic_signum
        return cfg.n_signs * cfg.n_repetitions
    return None


#: a protocol's ``by`` (what its lists name) -> the sources that have it
PROTOCOL_BY = {
    "subject": None,  # every source
    "camera": ("ntu", "pyskl"),
    "setup": ("ntu", "pyskl"),
    "split": ("pyskl",),
}


def _by_range(d: DatasetSettings, by: str) -> int | None:
    """The largest number a protocol ``by`` this key may name (None: not known here)."""
    if by == "subject":
        return _n_subjects(d)
    cfg = d.synthetic_ntu
    if by == "camera":
        return cfg.n_cameras if cfg else N_CAMERAS
    if by == "setup":
        return cfg.n_setups if cfg else N_SETUPS
    return None


def _check_protocols(name: str, d: DatasetSettings) -> None:
    for protocol, splits in d.protocols.items():
        key = f"datasets.{name}.protocols.{protocol}"
        by = splits.get("by", "subject")
        if by not in PROTOCOL_BY or (PROTOCOL_BY[by] and d.source not in PROTOCOL_BY[by]):
            sources = {k: v or "every source" for k, v in PROTOCOL_BY.items()}
            raise SettingsError(f"{key}.by", f"{by!r} is not a key of {d.source} ({sources})")
        n = _by_range(d, by)
        seen: dict[int | str, str] = {}
        for split, subjects in splits.items():
            if split == "by":
                continue
            for s in subjects:
                if isinstance(s, str) != (by == "split"):
                    what = "split names" if by == "split" else f"{by} numbers"
                    raise SettingsError(f"{key}.{split}", f"{s!r}: by {by} lists {what}")
                if s in seen:
                    raise SettingsError(key, f"{by} {s} is in both {seen[s]} and {split}")
                if n is not None and not 1 <= s <= n:
                    raise SettingsError(
                        f"{key}.{split}", f"{by} {s} does not exist ({d.source}: 1..{n})"
                    )
                seen[s] = split


def resolve(config: dict, name: str) -> Settings:
    """The :class:`Settings` of dataset ``name`` in ``config`` (a parsed config file)."""
    datasets = config.get("datasets") or {}
    if name not in datasets:
        raise SettingsError(f"datasets.{name}", "no such dataset")
    entry = datasets[name]
    dataset = build(DatasetSettings, entry, f"datasets.{name}")
    _check_protocols(name, dataset)
    sections = {}
    for section, cls in SECTIONS.items():
        over = dataset.overrides.get(section) or {}
        where = f"datasets.{name}.overrides.{section}" if over else section
        values = _merged(config.get(section) or {}, over)
        if section == "training":
            for key in JOB_FIELDS:
                if key in (values.get("train") or {}):
                    raise SettingsError(
                        f"{where}.train.{key}",
                        "set by each job (seeds: training.seeds; threads: the profile's "
                        "set-threads), not a setting",
                    )
        sections[section] = build(cls, values, where)
    s = Settings(name=name, dataset=dataset, **sections)
    _check_cross(s)
    return s


def _check_cross(s: Settings) -> None:
    """Checks that need several settings at once."""
    t, where = s.teacher, f"datasets.{s.name}"
    if t.distill_from not in t.methods:
        raise SettingsError("teacher.distill_from", f"{t.distill_from!r} not in teacher.methods")
    if t.metric not in s.metrics:
        raise SettingsError("teacher.metric", f"{t.metric!r} is not computed ({s.metrics})")
    per_subject = _max_per_subject(s.dataset)
    if "nngk" in t.methods and per_subject is not None:
        for protocol, splits in s.dataset.protocols.items():
            if splits.get("by", "subject") != "subject":
                continue
            n_train = per_subject * len(splits.get("train", []))
            if t.nngk.k >= n_train:
                raise SettingsError(
                    "teacher.nngk.k",
                    f"k = {t.nngk.k} is not smaller than the training set of "
                    f"{where}.protocols.{protocol} (at most {n_train} sequences)",
                )
    for protocol, splits in s.dataset.protocols.items():
        by = splits.get("by", "subject")
        if s.budgets.enabled and by != "subject" and len(splits["train"]) > 1:
            raise SettingsError(
                f"{where}.protocols.{protocol}.by",
                f"the label-budget study draws training subjects, but this protocol's lists "
                f"name {by}s: set budgets: {{enabled: false}} for this dataset "
                f"({where}.overrides.budgets)",
            )
    for model in s.training.models:
        if model not in MODELS:
            raise SettingsError("training.models", f"unknown model {model!r} (known: {MODELS})")
    for model in s.training.ensembles:
        if model not in s.training.models:
            raise SettingsError(
                "training.ensembles", f"{model!r} is not in training.models of dataset {s.name}"
            )
    for i, pair in enumerate(s.training.comparisons):
        key = f"training.comparisons.{i}"
        if (
            len(pair) != 2
            or pair[0] not in ("distilled", "metric")
            or pair[1] not in ("transformer", "label_smoothing", "nngk")
        ):
            raise SettingsError(key, f"want [distilled|metric, a labels-only family], got {pair}")
    for model, over in s.training.per_model.items():
        key = f"training.per_model.{model}"
        if model not in MODELS:
            raise SettingsError(key, f"unknown model (known: {MODELS})")
        if unknown := sorted(set(over) - {"train", "student"}):
            raise SettingsError(f"{key}.{unknown[0]}", "unknown section: use train, student")
        if given := sorted(set(over.get("train") or {}) & set(JOB_FIELDS)):
            raise SettingsError(f"{key}.train.{given[0]}", "set by each job, not a setting")
        try:
            s.training.for_model(model)
        except SettingsError as err:
            raise SettingsError(f"{key}.{err.key}", err.problem) from None
    for metric in s.distances.metric_params:
        if metric not in METRICS:
            raise SettingsError(f"distances.metric_params.{metric}", "unknown metric")


def group_name(seeds) -> str:
    """A group of seeds as a file name: ``seeds0-1-2`` (its training job's log, benchmark)."""
    return "seeds" + "-".join(map(str, seeds))


def train_rule_name(seeds) -> str:
    """The workflow rule that trains this group of seeds: ``train_seeds0_1_2``."""
    return "train_" + group_name(seeds).replace("-", "_")


def train_groups(settings: dict[str, Settings]) -> dict[tuple[int, ...], list[str]]:
    """Every group of seeds that one training job trains at once (``seed_groups``), with the
    datasets whose training is grouped so: the workflow has one training rule per group."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, s in settings.items():
        for group in s.training.seed_groups():
            groups.setdefault(group, []).append(name)
    return groups


def resolve_all(config: dict) -> dict[str, Settings]:
    """:func:`resolve` for every dataset, in config order."""
    return {name: resolve(config, name) for name in config.get("datasets") or {}}


def settings_bytes(values: dict) -> bytes:
    """The one JSON format of geokd's settings files (sorted keys, indent 1)."""
    return json_text(values).encode()


def write_settings_file(values: dict, folder: str | os.PathLike) -> Path:
    """Write ``values`` to ``folder/<sha256[:16]>.json`` (atomically, once) and return it."""
    data = settings_bytes(values)
    path = Path(folder) / f"{sha256_bytes(data)[:16]}.json"
    if not path.exists():
        write_text(path, data.decode())
    return path


def read_settings_file(path: str | os.PathLike) -> dict:
    """The JSON object in a ``--settings`` file; :class:`SettingsError` naming it otherwise."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable settings file ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(path, "a settings file holds a JSON object")
    return value
