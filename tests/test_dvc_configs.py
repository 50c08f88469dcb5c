"""DVC for every config: `geokd dvc-yaml CONFIG` (geokd.dvcfile) writes the pipeline of any
config, one set of stages per dataset; the committed dvc.yaml is the default config's.

Fast: the committed file is the generated one; for every shipped config the generated
pipeline reads in DVC (stage graph per dataset), its params are keys of that config, and a
Snakemake dry run of that config agrees with its stages' targets and outs. The SLURM test
(tests/test_slurm.py) runs a reduced mid-scale SIGNUM config through DVC and the SLURM profile.
"""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
import yaml

from geokd.dvcfile import pipeline
from geokd.errors import InputError
from geokd.settings import resolve_all
from tests.helpers.dvc import BIN, ROOT, covered, dotted, dry_run_jobs, rule_files, run

SHARED = ROOT.parent / "shared" / "datasets" / "utd-mhad"
CONFIGS = [
    "config.yaml",
    "signum_demo.yaml",
    "signum_midscale.yaml",
    "utd_mhad.yaml",
    "signum.yaml",
]


def generate(name: str, monkeypatch) -> dict:
    monkeypatch.chdir(ROOT)
    return yaml.safe_load(pipeline(f"config/{name}"))


def command(spec: dict) -> tuple[list[str], list[str], list[str]]:
    """(snakemake options, targets, allowed rules) of a stage's command."""
    words = shlex.split(spec["cmd"])
    assert words[:3] == ["snakemake", "--cores", "all"], words
    cut = words.index("--allowed-rules")
    options = words[3:6] if words[3] == "--configfile" else []
    return options, words[3 + len(options) : cut], words[cut + 1 :]


def outs(spec: dict) -> list[str]:
    entries = [*spec.get("outs", []), *spec.get("metrics", []), *spec.get("plots", [])]
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def test_the_committed_dvc_yaml_is_the_default_configs(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert (ROOT / "dvc.yaml").read_text() == pipeline("config/config.yaml"), (
        "dvc.yaml is stale: run `geokd dvc-yaml config/config.yaml`"
    )


def test_the_cli_writes_it_and_names_a_bad_config(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "dvc.yaml"
    run(ROOT, BIN / "geokd", "dvc-yaml", "config/signum_midscale.yaml", "--out", out)
    assert out.read_text() == pipeline("config/signum_midscale.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("training: {seeds: [0]}\n")
    with pytest.raises(InputError, match="no datasets"):
        pipeline(empty)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_param_is_a_key_of_its_config_and_every_stage_names_its_rules(name, monkeypatch):
    stages = generate(name, monkeypatch)["stages"]
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    defined = rule_files()
    datasets = list(config["datasets"])
    suffixes = [""] if len(datasets) == 1 else [f"_{d}" for d in datasets]
    expected = {f"{s}{x}" for s in ("ingest", "split", "distances", "teacher", "knn", "training")
                for x in suffixes} | {"report"}  # fmt: skip
    resolved = resolve_all(config)  # and the label-budget study where a dataset runs it
    expected |= {
        f"budgets{x}"
        for d, x in zip(datasets, suffixes, strict=True)
        if resolved[d].budgets.enabled
        and any(len(p["train"]) > 1 for p in resolved[d].dataset.protocols.values())
    }
    assert set(stages) == expected
    for stage, spec in stages.items():
        options, targets, rules = command(spec)
        if name != "config.yaml":
            assert options == ["--configfile", f"config/{name}", "--replace-workflow-config"]
        assert targets and all(r in defined for r in rules), (stage, rules)
        code = {d for d in spec["deps"] if d.startswith(("src/", "workflow/"))}
        assert {"src/geokd", "workflow/rules/common.smk"} | {defined[r] for r in rules} <= code
        for entry in spec.get("params", []):
            ((path, keys),) = entry.items()
            assert path == f"config/{name}"
            for key in keys or []:
                dotted(config, key)


def test_several_datasets_get_a_stage_graph_each(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "utd_mhad.yaml", tmp_path / "config" / "utd_mhad.yaml")
    (tmp_path / "dvc.yaml").write_text(pipeline("config/utd_mhad.yaml"))
    run(tmp_path, BIN / "dvc", "init", "--no-scm", "-q")
    dot = run(tmp_path, BIN / "dvc", "dag", "--dot")
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', dot))
    for d in ("utd_mhad", "utd_mhad_as_published"):
        for a, b in [
            ("ingest", "split"),
            ("split", "distances"),
            ("distances", "teacher"),
            ("distances", "knn"),
            ("teacher", "training"),
            ("training", "report"),
            ("knn", "report"),
        ]:
            edge = (f"{a}_{d}", "report" if b == "report" else f"{b}_{d}")
            assert edge in edges, (edge, sorted(edges))


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["signum_midscale.yaml", "utd_mhad.yaml"])
def test_stage_targets_and_outs_match_a_dry_run_of_the_config(name, tmp_path, monkeypatch):
    """As tests/test_dvc.py does for the default: every job of a dry run belongs to one stage,
    writes only inside its outs, and is a target of the stage or feeds one of its jobs."""
    stages = generate(name, monkeypatch)["stages"]
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    for spec in config["datasets"].values():  # real raw data: from the project root
        if "raw_dir" in spec:
            if not SHARED.is_dir():
                pytest.skip(f"the real UTD-MHAD files are not in {SHARED}")
            spec["raw_dir"] = str((ROOT / spec["raw_dir"]).resolve())
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / name).write_text(yaml.safe_dump(config))
    out = run(
        tmp_path,
        BIN / "snakemake",
        "--snakefile",
        ROOT / "workflow" / "Snakefile",
        "--directory",
        tmp_path,
        "--configfile",
        f"config/{name}",
        "--replace-workflow-config",
        "--cores",
        "1",
        "--dry-run",
    )
    jobs = dry_run_jobs(out)
    assert len(jobs) > 10, out[-3000:]
    stage_of = {}
    for stage, spec in stages.items():
        _, targets, rules = command(spec)
        for rule in rules:
            stage_of.setdefault(rule, set()).add(stage)
    for rule, _, outputs in jobs:
        assert rule in stage_of, f"no DVC stage runs rule {rule}"
        homes = [s for s in stage_of[rule] if all(covered(p, outs(stages[s])) for p in outputs)]
        assert len(homes) == 1, (rule, outputs, homes)
    for stage, spec in stages.items():
        _, targets, rules = command(spec)
        produced = {p for r, _, o in jobs if r in rules for p in o}
        assert set(targets) <= produced, (stage, sorted(set(targets) - produced))
