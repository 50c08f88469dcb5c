"""The project's own files agree with each other: pins, env files, docs."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock():
    pins = {}
    for line in (ROOT / "requirements/constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_torch_and_snakemake_9():
    pins = _lock()
    assert pins["torch"] == "2.13.0"
    assert pins["snakemake"].startswith("9.")
    for name in ("numpy", "scipy", "pandas", "pyarrow", "matplotlib", "pytest", "hypothesis"):
        assert re.fullmatch(r"\d+(\.\d+)+", pins[name]), name


def test_conda_envs_pin_the_same_versions_as_the_lock():
    pins = _lock()
    envs = sorted((ROOT / "workflow/envs").glob("*.yaml"))
    assert envs
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        for spec in pip:
            name, version = spec.split("==")
            assert pins[name.lower().replace("_", "-")] == version, (env.name, spec)


def test_every_rule_file_is_included_and_has_log_and_benchmark():
    snakefile = (ROOT / "workflow/Snakefile").read_text()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        assert f'include: "rules/{smk.name}"' in snakefile, smk.name
        text = smk.read_text()
        for rule in re.findall(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M):
            body = text.split(f" {rule}:", 1)[1].split("\nrule ", 1)[0]
            assert "log:" in body and "benchmark:" in body, rule
            assert "run:" not in body and "lambda" not in body, rule
