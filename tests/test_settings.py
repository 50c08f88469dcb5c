"""One settings path: the schema, the dataclasses, config/README.md and the profiles agree, and
bad values fail at start-up naming their key."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import types
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml

from geokd.data.signum_synthetic import SignumSyntheticConfig
from geokd.data.synthetic import SyntheticConfig
from geokd.jobs import JOB_FIELDS, job_settings
from geokd.models.config import StudentConfig, TrainConfig
from geokd.settings import (
    BudgetSettings,
    DatasetSettings,
    DistanceSettings,
    IngestSettings,
    KnnSettings,
    NngkSettings,
    SettingsError,
    SoftmaxSettings,
    TeacherSettings,
    TrainingSettings,
    read_settings_file,
    resolve,
    resolve_all,
    write_settings_file,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())

#: schema location -> the dataclass it describes (and fields that are not config keys)
PAIRS = {
    ("properties", "ingest"): (IngestSettings, ()),
    ("properties", "distances"): (DistanceSettings, ()),
    ("properties", "teacher"): (TeacherSettings, ()),
    ("properties", "teacher", "properties", "softmax"): (SoftmaxSettings, ()),
    ("properties", "teacher", "properties", "nngk"): (NngkSettings, ()),
    ("properties", "knn"): (KnnSettings, ()),
    ("properties", "training"): (TrainingSettings, ()),
    ("properties", "training", "properties", "train"): (TrainConfig, JOB_FIELDS),
    ("properties", "training", "properties", "student"): (StudentConfig, ()),
    ("$defs", "dataset"): (DatasetSettings, ()),
    ("$defs", "synthetic"): (SyntheticConfig, ("dataset",)),
    ("$defs", "synthetic_signum"): (SignumSyntheticConfig, ()),
}


def _node(path):
    node = SCHEMA
    for part in path:
        node = node[part]
    return node


def _deref(node):
    while "$ref" in node:
        node = _node(node["$ref"].lstrip("#/").split("/"))
    return node


def _schema_types(node) -> set[str]:
    node = _deref(node)
    if "enum" in node:
        return {
            {bool: "boolean", int: "integer", float: "number", str: "string"}[type(v)]
            for v in node["enum"]
        }
    kind = node["type"]
    return set(kind) if isinstance(kind, list) else {kind}


def _python_types(annotation) -> set[str]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set().union(*(_python_types(a) for a in typing.get_args(annotation)))
    origin = typing.get_origin(annotation) or annotation
    if dataclasses.is_dataclass(origin) or origin is dict:
        return {"object"}
    return {
        bool: {"boolean"},
        int: {"integer"},
        float: {"number"},
        str: {"string"},
        list: {"array"},
        type(None): {"null"},
    }[origin]


@pytest.mark.parametrize("path", list(PAIRS), ids=lambda p: ".".join(p[1::2]))
def test_schema_matches_the_dataclasses_field_by_field(path):
    cls, not_settings = PAIRS[path]
    props = _deref(_node(path))["properties"]
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)} - set(not_settings)
    assert set(props) == fields, (cls.__name__, set(props) ^ fields)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name in fields:
        schema, python = _schema_types(props[name]), _python_types(hints[name])
        if defaults[name] is None and "null" not in schema:
            python -= {"null"}  # None = the key is absent
        assert schema == python, (cls.__name__, name)


def test_defaults_live_only_in_the_dataclasses():
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if "default" in node and node["default"] != {}:
                found.append(where)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(SCHEMA, "schema")
    assert not found, found


def _readme_rows():
    """(section, key, default text) of every settings table in config/README.md."""
    section = None
    for line in (ROOT / "config/README.md").read_text().splitlines():
        heading = re.match(r"^###? `([a-z_.<>]+)`", line) or re.match(r"^`(training\.\w+)`", line)
        if heading:
            section = heading.group(1)
        elif line.startswith("#"):
            section = None
        row = re.match(r"^\| ((?:`[a-z_.<>]+`(?:, )?)+) \| ([^|]*) \|", line)
        if section and row and row.group(1) != "`key`":
            yield section, re.findall(r"`([a-z_.<>]+)`", row.group(1)), row.group(2).strip()


SECTION_CLASSES = {
    "ingest": IngestSettings,
    "distances": DistanceSettings,
    "teacher": TeacherSettings,
    "knn": KnnSettings,
    "training": TrainingSettings,
    "training.train": TrainConfig,
    "training.student": StudentConfig,
    "budgets": BudgetSettings,
    "datasets.<name>.synthetic": SyntheticConfig,
}


def _default(cls, dotted: str):
    obj = cls()
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _parse(text: str):
    text = text.strip("`")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def test_every_documented_setting_is_accepted_with_its_documented_default():
    rows = [r for r in _readme_rows() if r[0] in SECTION_CLASSES]
    assert sum(len(keys) for _, keys, _ in rows) > 60, rows  # the tables were found
    checked = 0
    for section, keys, default in rows:
        if not default or default.startswith("(") or keys[0].startswith("metric_params"):
            continue  # "(table below)", a mapping per metric: checked by the schema test
        documented = (
            [_parse(d) for d in default.split(", ")] if len(keys) > 1 else [_parse(default)]
        )
        assert len(documented) == len(keys), (section, keys, default)
        cls = SECTION_CLASSES[section]
        for key, expected in zip(keys, documented, strict=True):
            assert _default(cls, key) == expected, (section, key, default)
            checked += 1
            if section == "datasets.<name>.synthetic":
                continue  # per dataset; its keys are checked by the schema test
            # the documented key is accepted where the README says it lives
            config = copy.deepcopy(CONFIG)
            node = config.setdefault(section.split(".")[0], {})
            for part in section.split(".")[1:] + key.split(".")[:-1]:
                node = node.setdefault(part, {})
            node[key.split(".")[-1]] = expected
            jsonschema.validate(config, SCHEMA)
            resolve(config, "synthetic")
    assert checked > 50, checked


def test_settings_named_in_profiles_and_docs_are_accepted():
    texts = [
        *(ROOT / "workflow/profiles").rglob("config.yaml"),
        ROOT / "docs/cluster.md",
        ROOT / "config/README.md",
    ]
    mentioned = set()
    for path in texts:
        for m in re.finditer(r"\b(training\.train\.[a-z_]+): (\w+)", path.read_text()):
            mentioned.add((m.group(1), m.group(2)))
        for m in re.finditer(r"training: \{train: \{(\w+): (\w+)\}\}", path.read_text()):
            mentioned.add((f"training.train.{m.group(1)}", m.group(2)))
        for m in re.finditer(r"\b(distances\.backend): (\w+)", path.read_text()):
            mentioned.add((m.group(1), m.group(2)))
    assert ("training.train.device", "cuda") in mentioned, mentioned
    assert ("distances.backend", "cuda") in mentioned, mentioned
    for key, value in mentioned:
        config = _with(key, value)
        jsonschema.validate(config, SCHEMA)
        node = resolve(config, "synthetic")
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key


def _with(path: str, value):
    config = copy.deepcopy(CONFIG)
    node = config
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        ("datasets.synthetic.protocols.paper.test", [4, 5], "protocols.paper", "both train"),
        ("datasets.synthetic.protocols.paper.val", [7], "protocols.paper.val", "does not exist"),
        ("training.student.n_heads", 5, "training.student", "does not divide"),
        ("teacher.nngk.k", 96, "teacher.nngk.k", "not smaller than the training set"),
        ("training.train.seed", 3, "training.train.seed", "set by each job"),
        ("training.train.epochz", 3, "training.train.epochz", "unknown setting"),
        ("teacher.distill_from", "nngk", None, None),
        ("distances.frames", 1, "distances.frames", "integer >= 2"),
        ("distances.frames", 32, None, None),
    ],
)
def test_bad_values_fail_at_start_up_naming_their_key(path, value, key, words):
    config = _with(path, value)
    if key is None:  # a good value: accepted
        resolve(config, "synthetic")
        return
    with pytest.raises(SettingsError) as err:
        resolve(config, "synthetic")
    assert key in err.value.key and words in str(err.value), str(err.value)


def test_nngk_k_just_below_the_training_set_is_accepted():
    # synthetic default: 8 classes x 3 trials x 4 training subjects (paper) -> 96 sequences,
    # cross_subject: 3 subjects -> 72; k must stay below the smaller one
    resolve(_with("teacher.nngk.k", 71), "synthetic")
    with pytest.raises(SettingsError):
        resolve(_with("teacher.nngk.k", 72), "synthetic")


def test_overrides_merge_key_by_key_and_defaults_fill_the_rest():
    config = yaml.safe_load((ROOT / "config/utd_mhad.yaml").read_text())
    settings = resolve_all(config)
    natural, published = settings["utd_mhad"], settings["utd_mhad_as_published"]
    assert natural.teacher.softmax.temperature is None  # chosen by the teacher's NLL
    assert published.teacher.softmax.temperature == 3.0
    assert natural.distances.normalise == "path_length"
    assert published.distances.normalise == "none" and not published.teacher.softmax.exclude_self
    assert published.teacher.nngk.k == natural.teacher.nngk.k == 5  # not overridden
    assert published.training.student.d_model == 60 and natural.training.student.d_model == 48
    assert natural.training.train.eval_batch_size == TrainConfig().eval_batch_size
    assert published.metrics == ["paper"] and natural.metrics == ["procrustes"]


def test_device_auto_is_a_valid_setting():
    config = _with("training.train.device", "auto")
    jsonschema.validate(config, SCHEMA)
    assert resolve(config, "synthetic").training.train.device == "auto"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_with("training.train.device", "tpu"), SCHEMA)


def test_job_slices_hold_only_what_shapes_the_job(tmp_path):
    s = resolve(CONFIG, "synthetic")
    train = job_settings(s, "train", model="distilled", seed="1")
    assert set(train) == {"train", "student"} and not set(train["train"]) & set(JOB_FIELDS)
    again = resolve(_with("training.seeds", [0, 1, 2, 3]), "synthetic")
    assert job_settings(again, "train", model="distilled") == train  # no other seed reruns
    assert "kd_weight" in train["train"] and "label_smoothing" not in train["train"]
    assert "kd_weight" not in job_settings(s, "train", model="transformer")["train"]
    assert job_settings(s, "knn") == {"k_max": CONFIG["knn"]["k_max"], "normalise": "none"}
    teacher = job_settings(s, "teacher", method="nngk")
    assert teacher["method"] == "nngk" and teacher["k"] == CONFIG["teacher"]["nngk"]["k"]
    a = write_settings_file(train, tmp_path)
    assert write_settings_file(json.loads(json.dumps(train)), tmp_path) == a  # same content
    assert read_settings_file(a) == train
    changed = resolve(_with("training.train.epochs", 7), "synthetic")
    assert write_settings_file(job_settings(changed, "train"), tmp_path) != a
