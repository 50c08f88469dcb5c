"""Each workflow job's settings as one typed dataclass: the contract between the workflow and
the ``geokd`` commands.

:func:`geokd.settings.job_settings` builds a job's dataclass from the resolved config
(:meth:`of`) and writes its :meth:`payload` to the ``--settings`` file; the command reads the
file back into the same dataclass (:meth:`from_payload`, every value checked) and takes
explicit command-line options on top (:func:`override`). A job dataclass declares no default of
its own: a command run without ``--settings`` starts from :meth:`defaults`, which are the
config section dataclasses' defaults (:mod:`geokd.settings`, :mod:`geokd.models.config`), the
only place a default is written.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from . import settings as _st
from .data.ntu_synthetic import NtuSyntheticConfig
from .data.signum_synthetic import SignumSyntheticConfig
from .data.synthetic import SyntheticConfig
from .models.config import (
    JOB_FIELDS,
    MODE_FIELDS,
    NngkSettings,
    SoftmaxSettings,
    StudentConfig,
    TrainConfig,
)
from .settings import Settings, SettingsError, build


def _build(cls: type, values: dict, key: str):
    return build(cls, values, key)


def _without_no_budget(payload: dict) -> dict:
    """A distance job's settings file without ``frames`` where no frame budget is set: the
    file, and so the job, stay as they were before the option."""
    if payload.get("frames") is None:
        payload.pop("frames", None)
    return payload


class Job:
    """What every job dataclass offers (see the module docstring)."""

    #: the job family's name in :func:`geokd.settings.job_settings`
    job: ClassVar[str]

    @classmethod
    def of(cls, s: Settings, **wildcards) -> Job:
        raise NotImplementedError

    @classmethod
    def defaults(cls, **wildcards) -> Job:
        """The job of a dataset whose config sets nothing (every section's defaults)."""
        raise NotImplementedError

    def payload(self) -> dict:
        """The JSON object of the ``--settings`` file (what shapes the job's outputs only)."""
        return dataclasses.asdict(self)

    #: keys of a settings object that :meth:`defaults` takes (the defaults depend on them)
    context_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_payload(cls, values: dict, key: str = "settings", **context) -> Job:
        """The job from a ``--settings`` object, keys it leaves out taken from :meth:`defaults`
        (``context``: what the command line says of the job, e.g. the model family); a bad or
        unknown key raises :class:`SettingsError` naming it."""
        if not isinstance(values, dict):
            raise SettingsError(key, f"expected a mapping, got {values!r}")
        context |= {k: values[k] for k in cls.context_keys if k in values}
        base = dataclasses.asdict(cls.defaults(**context))
        return _build(cls, {**base, **values}, key)


@dataclass
class IngestJob(Job):
    """``geokd ingest``: every source's switches (the ones a source does not read are None
    and stay out of its settings file)."""

    job: ClassVar[str] = "ingest"
    context_keys = ("source",)
    source: str
    skip_bad: bool
    allow_duplicates: bool | None
    allow_outside_paths: bool | None
    layout: str | None
    landmarks: str | None
    missing_landmarks: str | None
    synthetic: SyntheticConfig | None
    #: ntu, pyskl: bodies per frame (1 or 2)
    bodies: int | None

    @classmethod
    def of(cls, s, **wildcards):
        d, i = s.dataset, s.ingest
        utd, sig, syn = (d.source == x for x in ("utd_mhad", "signum", "synthetic"))
        body = d.source in ("ntu", "pyskl")
        cfg = dataclasses.replace(d.synthetic or SyntheticConfig(), dataset=s.name)
        return cls(
            source=d.source,
            skip_bad=i.skip_bad,
            allow_duplicates=i.allow_duplicates if utd or sig or body else None,
            allow_outside_paths=i.allow_outside_paths if sig else None,
            layout=d.layout if utd else None,
            landmarks=d.landmarks if sig else None,
            missing_landmarks=d.missing_landmarks if sig else None,
            synthetic=cfg if syn else None,
            bodies=d.bodies if body else None,
        )

    @classmethod
    def defaults(cls, source: str = "synthetic", **wildcards):
        st = _st
        d = st.DatasetSettings(source=source, protocols={})
        sections = {k: c() for k, c in st.SECTIONS.items()}
        return cls.of(st.Settings(name=d.source, dataset=d, **sections))

    def payload(self):
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return out


@dataclass
class SyntheticSignumJob(Job):
    """``geokd synthetic-signum``: the generated SIGNUM-format set."""

    job: ClassVar[str] = "synthetic_signum"
    synthetic_signum: SignumSyntheticConfig

    @classmethod
    def of(cls, s, **wildcards):
        return cls(s.dataset.synthetic_signum or SignumSyntheticConfig())

    @classmethod
    def defaults(cls, **wildcards):
        return cls(SignumSyntheticConfig())


@dataclass
class SyntheticNtuJob(Job):
    """``geokd synthetic-ntu``: the generated NTU-format folder of ``.skeleton`` files."""

    job: ClassVar[str] = "synthetic_ntu"
    synthetic_ntu: NtuSyntheticConfig

    @classmethod
    def of(cls, s, **wildcards):
        return cls(s.dataset.synthetic_ntu or NtuSyntheticConfig())

    @classmethod
    def defaults(cls, **wildcards):
        return cls(NtuSyntheticConfig())


@dataclass
class SplitJob(Job):
    """``geokd split``: the protocol's subjects per split."""

    job: ClassVar[str] = "split"
    protocol: dict[str, list[int]]

    @classmethod
    def of(cls, s, protocol: str, **wildcards):
        return cls(dict(s.dataset.protocols[protocol]))

    @classmethod
    def defaults(cls, **wildcards):
        return cls({})


@dataclass
class DistanceJob(Job):
    """``geokd distances block|assemble``: one matrix's frame cost and kernel settings."""

    job: ClassVar[str] = "distances"
    context_keys = ("metric",)
    metric: str
    block_size: int
    window: int | None
    metric_params: dict[str, float]
    backend: str
    precision: str
    #: the frame budget (``distances.frames``); None (all frames) stays out of the file
    frames: int | None

    @classmethod
    def of(cls, s, metric: str, **wildcards):
        d = s.distances
        return cls(metric, d.block_size, d.window, d.metric_params.get(metric, {}), d.backend,
                   d.precision, d.frames)  # fmt: skip

    @classmethod
    def defaults(cls, metric: str | None = None, **wildcards):
        st = _st
        d, t = st.DistanceSettings(), st.TeacherSettings()
        return cls(metric or t.metric, d.block_size, d.window, {}, d.backend, d.precision,
                   d.frames)  # fmt: skip

    def payload(self):
        return _without_no_budget(super().payload())


@dataclass
class TeacherJob(Job):
    """``geokd teacher``: the soft-label method and its parameters (``softmax`` or ``nngk``:
    :class:`geokd.models.config.SoftmaxSettings` / ``NngkSettings``), which pairs it never uses
    (``teacher.exclude``) and how it reads the distances (``distances.normalise``)."""

    job: ClassVar[str] = "teacher"
    method: str
    params: Any
    exclude: str
    normalise: str

    @classmethod
    def of(cls, s, method: str, **wildcards):
        return cls(method, getattr(s.teacher, method), s.teacher.exclude, s.distances.normalise)

    @classmethod
    def defaults(cls, method: str | None = None, **wildcards):
        t, d = _st.TeacherSettings(), _st.DistanceSettings()
        method = method or t.distill_from
        return cls(method, getattr(t, method), t.exclude, d.normalise)

    def payload(self):
        return {"method": self.method, **dataclasses.asdict(self.params),
                "exclude": self.exclude, "normalise": self.normalise}  # fmt: skip

    @classmethod
    def from_payload(cls, values, key="settings", **context):
        if not isinstance(values, dict):
            raise SettingsError(key, f"expected a mapping, got {values!r}")
        values = dict(values)
        method = values.pop("method", context.get("method")) or _st.TeacherSettings().distill_from
        kinds = {"softmax": SoftmaxSettings, "nngk": NngkSettings}
        if method not in kinds:
            raise SettingsError(f"{key}.method", f"unknown teacher method {method!r}")
        base = cls.defaults(method=method)
        exclude = values.pop("exclude", base.exclude)
        normalise = values.pop("normalise", base.normalise)
        # a bad key is named as in the config: "<file>: teacher.softmax.k: unknown setting"
        params = _build(kinds[base.method], values, f"{key}: teacher.{base.method}")
        _build(_st.TeacherSettings, {"exclude": exclude}, f"{key}: teacher")  # checks the value
        _build(_st.DistanceSettings, {"normalise": normalise}, f"{key}: distances")
        return cls(base.method, params, exclude, normalise)


@dataclass
class KnnJob(Job):
    """``geokd knn``: the largest k evaluated, and how the distances are read."""

    job: ClassVar[str] = "knn"
    k_max: int
    normalise: str

    @classmethod
    def of(cls, s, **wildcards):
        return cls(s.knn.k_max, s.distances.normalise)

    @classmethod
    def defaults(cls, **wildcards):
        return cls(_st.KnnSettings().k_max, _st.DistanceSettings().normalise)


@dataclass
class KnnLatencyJob(Job):
    """``geokd knn-latency``: the frame cost and how many test queries are timed."""

    job: ClassVar[str] = "knn_latency"
    context_keys = ("metric",)
    metric: str
    n_queries: int
    window: int | None
    metric_params: dict[str, float]
    #: the frame budget (``distances.frames``); None (all frames) stays out of the file
    frames: int | None

    @classmethod
    def of(cls, s, metric: str, **wildcards):
        d = s.distances
        return cls(metric, s.knn.latency_queries, d.window, d.metric_params.get(metric, {}),
                   d.frames)  # fmt: skip

    @classmethod
    def defaults(cls, metric: str | None = None, **wildcards):
        st = _st
        d, k = st.DistanceSettings(), st.KnnSettings()
        return cls(metric or st.TeacherSettings().metric, k.latency_queries, d.window, {},
                   d.frames)  # fmt: skip

    def payload(self):
        return _without_no_budget(super().payload())


@dataclass
class TrainJob(Job):
    """``geokd train``: one model family's optimisation and architecture (the seed, the family,
    threads and the progress bar come from the command line: :data:`JOB_FIELDS`)."""

    job: ClassVar[str] = "train"
    model: str
    train: TrainConfig
    student: StudentConfig
    #: how the metric family reads the train x train distances (``distances.normalise``)
    normalise: str

    @classmethod
    def of(cls, s, model: str = "transformer", **wildcards):
        tcfg, scfg = s.training.for_model(model)
        return cls(model, tcfg, scfg, s.distances.normalise)

    @classmethod
    def defaults(cls, model: str = "transformer", **wildcards):
        return cls(model, TrainConfig(), StudentConfig(), _st.DistanceSettings().normalise)

    def payload(self):
        """The fields that shape this family's models: not the job's own (seed, ...), not the
        other families' loss settings, no NNGK head settings for a linear head."""
        others = {f for m, fs in MODE_FIELDS.items() if m != self.model for f in fs}
        train = {
            k: v
            for k, v in dataclasses.asdict(self.train).items()
            if k not in {*JOB_FIELDS, *others}
        }
        student = dataclasses.asdict(self.student)
        if self.model != "nngk" and self.student.head == "linear":
            student = {k: v for k, v in student.items() if not k.startswith("nngk_")}
        out = {"train": train, "student": student}
        if self.model == "metric" and self.normalise != "none":
            out["normalise"] = self.normalise  # only the metric family reads the distances
        return out

    @classmethod
    def from_payload(cls, values, key="settings", model: str = "transformer", **context):
        if unknown := sorted(set(values) - {"train", "student", "normalise"}):
            raise SettingsError(f"{key}.{unknown[0]}", "unknown section: use train, student")
        train = dict(values.get("train") or {})
        if given := sorted(set(train) & set(JOB_FIELDS)):
            raise SettingsError(f"train.{given[0]}", "set by the command line, not a setting")
        normalise = values.get("normalise", _st.DistanceSettings().normalise)
        _build(_st.DistanceSettings, {"normalise": normalise}, key)
        return cls(
            model,
            _build(TrainConfig, train, "train"),
            _build(StudentConfig, values.get("student") or {}, "student"),
            normalise,
        )


@dataclass
class BudgetJob(Job):
    """``geokd budget-run``: the label-budget study's seeds, its two trained families' recipes
    (the labels-only family and ``distilled``: the same student), the softmax teacher's
    settings, its exclusion and how the distances are read."""

    job: ClassVar[str] = "budgets"
    seeds: list[int]
    labels: TrainJob
    distilled: TrainJob
    teacher: SoftmaxSettings
    exclude: str
    normalise: str

    @classmethod
    def of(cls, s, **wildcards):
        b = s.budgets
        return cls(list(b.seeds), TrainJob.of(s, b.labels), TrainJob.of(s, "distilled"),
                   s.teacher.softmax, s.teacher.exclude, s.distances.normalise)  # fmt: skip

    @classmethod
    def defaults(cls, **wildcards):
        b, t, d = _st.BudgetSettings(), _st.TeacherSettings(), _st.DistanceSettings()
        return cls(list(b.seeds), TrainJob.defaults(b.labels), TrainJob.defaults("distilled"),
                   t.softmax, t.exclude, d.normalise)  # fmt: skip

    def payload(self):
        return {"seeds": self.seeds, "labels": {"model": self.labels.model,
                **self.labels.payload()}, "distilled": self.distilled.payload(),
                "teacher": dataclasses.asdict(self.teacher), "exclude": self.exclude,
                "normalise": self.normalise}  # fmt: skip

    @classmethod
    def from_payload(cls, values, key="settings", **context):
        if not isinstance(values, dict):
            raise SettingsError(key, f"expected a mapping, got {values!r}")
        base = cls.defaults()
        labels = dict(values.get("labels") or {})
        model = labels.pop("model", base.labels.model)
        return cls(
            [int(x) for x in values.get("seeds", base.seeds)],
            TrainJob.from_payload(labels, f"{key}.labels", model=model),
            TrainJob.from_payload(
                values.get("distilled") or {}, f"{key}.distilled", model="distilled"
            ),
            _build(SoftmaxSettings, values.get("teacher") or {}, f"{key}.teacher"),
            values.get("exclude", base.exclude),
            values.get("normalise", base.normalise),
        )


@dataclass
class SummaryJob(Job):
    """``geokd summarize``: every section of the dataset's settings (recorded in the summary)."""

    job: ClassVar[str] = "summary"
    sections: dict

    @classmethod
    def of(cls, s, **wildcards):
        sections = {n: dataclasses.asdict(getattr(s, n)) for n in ("dataset", *_st.SECTIONS)}
        source = s.dataset.source
        sections["dataset"] = {
            k: v
            for k, v in sections["dataset"].items()
            if source in _st.SOURCE_FIELDS.get(k, (source,))  # another source's key: left out
        }
        return cls(sections)

    @classmethod
    def defaults(cls, **wildcards):
        return cls({})

    def payload(self):
        return self.sections

    @classmethod
    def from_payload(cls, values, key="settings", **context):
        return cls(dict(values))


#: job family -> its dataclass
JOBS: dict[str, type[Job]] = {
    c.job: c
    for c in (IngestJob, SyntheticSignumJob, SyntheticNtuJob, SplitJob, DistanceJob, TeacherJob,
              KnnJob, KnnLatencyJob, TrainJob, BudgetJob, SummaryJob)
}  # fmt: skip


def job_settings(s: Settings, job: str, **wildcards) -> dict:
    """The slice of ``s`` that the workflow job family ``job`` uses, JSON-ready: the payload
    of its typed job dataclass, which the command reads back (:func:`load`).

    Only what shapes a job's outputs is in its slice, so a changed setting reruns exactly
    the jobs it shapes (e.g. a new seed does not rerun the other seeds).
    """
    if job not in JOBS:
        raise ValueError(f"no settings slice for job {job!r}")
    return JOBS[job].of(s, **wildcards).payload()


def load(cls: type[Job], args: argparse.Namespace, **context) -> Job:
    """The job of a command: its ``--settings`` file, else :meth:`Job.defaults`; then every
    explicit option named like a field (``args.<field>`` not None) replaces that field.
    ``context``: what the command line says of the job (e.g. ``model``, ``metric``)."""
    path = getattr(args, "settings", None)
    if path:
        job = cls.from_payload(_st.read_settings_file(path), str(path), **context)
    else:
        job = cls.defaults(**context)
    return override(job, args)


def override(job: Job, args: argparse.Namespace) -> Job:
    """``job`` with the fields given explicitly on the command line (not None) replaced."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(job)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(job, **given) if given else job
