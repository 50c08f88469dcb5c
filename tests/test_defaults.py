"""One typed settings contract (issue 25, item 2): every default is written once, in the
settings dataclasses, and the library, the jobs and the command line agree with it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
import yaml

import geokd
from geokd import jobs
from geokd.cli import build_parser
from geokd.data.signum_synthetic import SignumSyntheticConfig
from geokd.data.synthetic import SyntheticConfig
from geokd.distances.config import DistanceConfig
from geokd.jobs import job_settings
from geokd.models.config import NngkSettings, SoftmaxSettings, StudentConfig, TrainConfig
from geokd.settings import (
    DistanceSettings,
    IngestSettings,
    KnnSettings,
    TeacherSettings,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
#: the dataclasses whose fields a module's functions take as parameters of the same name
OWNERS = {
    "geokd.distances": [DistanceConfig],
    "geokd.models.teacher": [SoftmaxSettings, NngkSettings, TeacherSettings],
    "geokd.models.knn": [KnnSettings, DistanceSettings],
    "geokd.models.train": [TrainConfig, StudentConfig],
    "geokd.models.train_reference": [TrainConfig, StudentConfig],
    "geokd.models.batched": [StudentConfig],
    "geokd.models.members": [TrainConfig],
    "geokd.models.student": [StudentConfig],
    "geokd.models.streams": [StudentConfig],
    "geokd.models.losses": [TrainConfig],
    "geokd.models.runs": [TrainConfig],
    "geokd.models.checkpoint": [TrainConfig],
    "geokd.models.ensemble": [TrainConfig],
    "geokd.models.predict": [TrainConfig],
    "geokd.data.synthetic": [SyntheticConfig],
    "geokd.data.signum_synthetic": [SignumSyntheticConfig],
    "geokd.data.utd_mhad": [IngestSettings],
    "geokd.data.signum": [IngestSettings],
}
#: parameters named otherwise than the setting they take: (module prefix, parameter) ->
#: (the dataclass, the field)
ALIASES = {
    ("geokd.distances", "dtype"): (DistanceConfig, "precision"),
    ("geokd.models.teacher", "distance_normalise"): (DistanceSettings, "normalise"),
    ("geokd.models.train", "batch_size"): (TrainConfig, "eval_batch_size"),  # evaluate, ...
    ("geokd.models.train_reference", "batch_size"): (TrainConfig, "eval_batch_size"),
    ("geokd.models.ensemble", "batch_size"): (TrainConfig, "eval_batch_size"),
}
#: a parameter named like a setting that is not that setting, and why
NOT_THE_SETTING = {
    ("geokd.models.losses", "cross_entropy", "label_smoothing"): "a loss's smoothing, 0 = plain "
    "cross-entropy; the label_smoothing family passes TrainConfig.label_smoothing",
    ("geokd.models.checkpoint", "latency_ms_per_sample", "batch_size"): "batch 1 is the "
    "per-sample latency; TrainConfig.latency_batch_size is the second, batched, measurement",
}


def _owner(module: str) -> list[type]:
    return next((v for k, v in OWNERS.items() if module == k or module.startswith(k + ".")), [])


def _default(cls: type, name: str):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _public_functions():
    for info in pkgutil.walk_packages(geokd.__path__, "geokd."):
        if info.name == "geokd.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield module.__name__, name, obj
            elif inspect.isclass(obj):
                for attr, fn in vars(obj).items():
                    if inspect.isfunction(fn) and not attr.startswith("_"):
                        yield module.__name__, f"{name}.{attr}", fn


def test_every_library_default_agrees_with_its_settings_dataclass():
    checked, disagree = 0, []
    for module, name, fn in _public_functions():
        owners = _owner(module)
        for p in inspect.signature(fn).parameters.values():
            if p.default is inspect.Parameter.empty or p.default is None:
                continue  # required, or resolved from the config by the function itself
            alias = next((v for (m, a), v in ALIASES.items() if module.startswith(m) and
                          a == p.name), None)  # fmt: skip
            field = alias[1] if alias else p.name
            names = lambda c: {f.name for f in dataclasses.fields(c)}  # noqa: E731
            cls = alias[0] if alias else next((c for c in owners if field in names(c)), None)
            if cls is None or (module, name.split(".")[-1], p.name) in NOT_THE_SETTING:
                continue
            expected = _default(cls, field)
            value = list(p.default) if isinstance(p.default, tuple) else p.default
            checked += 1
            if value != expected:
                disagree.append(f"{module}.{name}({p.name}={p.default!r}): {cls.__name__}."
                                f"{field} = {expected!r}")  # fmt: skip
    assert not disagree, "defaults that disagree with the settings:\n" + "\n".join(disagree)
    assert checked >= 30, checked  # the walk reaches the library (40 on 2026-12-07)


def test_the_walk_catches_a_disagreeing_default(monkeypatch):
    """The test above can fail: a library function with another default is caught."""
    import geokd.models.teacher as teacher

    def softmax_teacher(D, y, n_classes, *, temperature: float = 3.0):  # the old default
        """A stand-in."""

    softmax_teacher.__module__ = teacher.__name__
    monkeypatch.setattr(teacher, "softmax_teacher", softmax_teacher)
    with pytest.raises(AssertionError, match=r"softmax_teacher\(temperature=3.0\)"):
        test_every_library_default_agrees_with_its_settings_dataclass()


def test_sections_extend_the_library_configs_and_keep_their_defaults():
    assert issubclass(DistanceSettings, DistanceConfig)
    assert DistanceSettings().precision == DistanceConfig().precision == "float64"
    t = TeacherSettings()
    assert (t.softmax, t.nngk) == (SoftmaxSettings(), NngkSettings())


@pytest.mark.parametrize("job", sorted(jobs.JOBS))
def test_a_job_round_trips_through_its_settings_file(job):
    """What the workflow writes for a job, the command reads back as the same dataclass."""
    config = yaml.safe_load((ROOT / "config" / "signum_demo.yaml").read_text())
    config["training"]["per_model"] = {"distilled": {"train": {"kd_weight": 0.3}}}
    name = next(iter(config["datasets"]))
    s = resolve(config, name)
    context = {
        "protocol": next(iter(s.dataset.protocols)),
        "metric": s.metrics[0],
        "method": "nngk",
        "model": "distilled",
    }
    cls = jobs.JOBS[job]
    payload = json.loads(json.dumps(job_settings(s, job, **context)))
    back = cls.from_payload(payload, "f.json", model="distilled")
    assert back == cls.of(s, **context)
    if job == "train":
        assert back.train.kd_weight == 0.3 and "seed" not in payload["train"]


@pytest.mark.parametrize("cls", [jobs.DistanceJob, jobs.KnnLatencyJob])
def test_no_frame_budget_stays_out_of_a_distance_jobs_settings_file(cls):
    """Without ``distances.frames`` the file is what it was before the option (no distance
    job of an existing run reruns for it); with one, the budget is in it and read back."""
    job = cls.defaults()
    assert job.frames is None and "frames" not in job.payload()
    budget = dataclasses.replace(job, frames=32)
    assert budget.payload()["frames"] == 32
    assert cls.from_payload(json.loads(json.dumps(budget.payload()))) == budget
    assert cls.from_payload(json.loads(json.dumps(job.payload()))) == job


def test_a_partial_settings_file_takes_the_dataclass_defaults_and_names_a_bad_key():
    job = jobs.DistanceJob.from_payload({"metric": "hand", "block_size": 7})
    assert (job.metric, job.block_size, job.precision) == ("hand", 7, DistanceConfig.precision)
    with pytest.raises(geokd.settings.SettingsError, match=r"f\.json\.blok_size"):
        jobs.DistanceJob.from_payload({"blok_size": 7}, "f.json")
    with pytest.raises(geokd.settings.SettingsError, match="unknown teacher method"):
        jobs.TeacherJob.from_payload({"method": "knn"}, "f.json")


def test_cli_help_shows_the_dataclass_defaults():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # argparse internals
    block = sub["distances"]._subparsers._group_actions[0].choices["block"]
    text = block.format_help()
    assert f"(default {DistanceConfig.block_size})" in text
    assert f"(default {DistanceConfig.precision})" in text
    assert f"largest k (default {KnnSettings.k_max})" in sub["knn"].format_help()
    lat = sub["knn-latency"].format_help()
    assert f"(default {KnnSettings.latency_queries})" in " ".join(lat.split())
