"""The package's layout keeps its promises: stage packages with a documented public face, no
private name imported across packages, no import cycle, modules of a readable size."""

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "geokd"
STAGES = ("data", "distances", "models", "report")
#: the numba kernel module may stay long (issue 12); everything else stays readable
LONG_OK = {"geokd.distances._kernels"}
MAX_LINES = 500


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _package(module: str, path: Path) -> str:
    """The package a module belongs to (itself for an __init__)."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path):
    """(imported module, names, lineno) of every geokd import in ``path``, resolved."""
    package = _package(module, path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("geokd"):
                yield target, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("geokd"):
                    yield a.name, [], node.lineno


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else "geokd"


def test_stage_packages_have_docstrings_and_public_faces():
    for stage in STAGES:
        pkg = importlib.import_module(f"geokd.{stage}")
        assert pkg.__doc__ and len(pkg.__doc__.strip()) > 80, stage
        assert pkg.__all__, stage
        for name in pkg.__all__:
            assert not name.startswith("_"), (stage, name)
            assert getattr(pkg, name) is not None, (stage, name)


def test_no_private_name_or_module_imported_across_packages():
    offences = []
    for module, path in _modules():
        for target, names, line in _imports(module, path):
            cross = _stage(target) != _stage(module)
            private_module = any(
                p.startswith("_") and p != "__init__" for p in target.split(".")[1:]
            )
            if not cross:
                continue
            if private_module:
                offences.append(f"{path.name}:{line} imports private module {target}")
            for name in names:
                if name.startswith("_") and name != "__version__":
                    offences.append(f"{path.name}:{line} imports {target}.{name}")
    assert not offences, offences


def test_no_import_cycle_between_modules():
    graph = {}
    for module, path in _modules():
        deps = set()
        for target, names, _ in _imports(module, path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if (SRC / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    SRC / Path(*candidate.split(".")) / "__init__.py"
                ).exists():
                    if candidate != module:
                        deps.add(candidate)
                    break
        graph[module] = deps
    # package __init__s import their own submodules lazily (geokd._lazy), so no edges there
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


@pytest.mark.parametrize("stage", STAGES)
def test_stage_layering(stage):
    """data <- distances <- models <- report: a stage never imports a later one."""
    order = {s: i for i, s in enumerate(STAGES)}
    for module, path in _modules():
        if _stage(module) != stage:
            continue
        for target, _, line in _imports(module, path):
            other = _stage(target)
            if other in order:
                assert order[other] <= order[stage], f"{path}:{line} imports {target}"


def test_modules_stay_readable():
    long = {
        module: n
        for module, path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES and module not in LONG_OK
    }
    assert not long, long


def test_common_smk_stays_small():
    """Snakemake plumbing only (targets, input functions, resources): logic lives in geokd."""
    common = (PKG.parents[1] / "workflow/rules/common.smk").read_text().splitlines()
    assert len(common) < 200, len(common)


def test_code_hash_follows_the_stages_and_ignores_docstrings(tmp_path):
    """The workflow's `code` param: a change reaches its stage and the later ones only."""
    import shutil

    from geokd.provenance import CODE_STAGES, code_hash

    pkg = tmp_path / "geokd"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = {s: code_hash(pkg, s) for s in CODE_STAGES}
    assert before == {s: code_hash(PKG, s) for s in CODE_STAGES}  # paths are relative
    assert len(set(before.values())) == len(CODE_STAGES)

    def changed(path: Path, text: str) -> set[str]:
        old = path.read_text()
        path.write_text(text(old))
        try:
            return {s for s in CODE_STAGES if code_hash(pkg, s) != before[s]}
        finally:
            path.write_text(old)

    probe = lambda t: t + "\nPROBE = 1\n"  # noqa: E731
    assert changed(pkg / "settings.py", probe) == set(CODE_STAGES)
    assert changed(pkg / "distances/shards.py", probe) == {"distances", "models", "report"}
    assert changed(pkg / "models/teacher.py", probe) == {"models", "report"}
    assert changed(pkg / "report/tables.py", probe) == {"report"}
    # docstrings, comments and formatting do not count
    reworded = lambda t: t.replace('"""', '"""Reworded. ', 1)  # noqa: E731
    assert changed(pkg / "models/teacher.py", reworded) == set()
    assert changed(pkg / "data/store.py", lambda t: t + "\n# a note\n\n") == set()


def test_no_test_module_imports_another_test_module():
    """Tests share code through tests/helpers (and fixtures through conftest.py files), never
    by importing a test module (tests/**/test_*.py), whose import runs its module-level set-up
    and ties one module's tests to another's internals."""
    tests = SRC.parent / "tests"

    def test_module(name: str) -> bool:
        parts = name.split(".")
        path = tests.parent.joinpath(*parts).with_suffix(".py")
        return parts[0] == "tests" and parts[-1].startswith("test_") and path.is_file()

    def offences(text: str, module: str) -> list[str]:
        package = module.rpartition(".")[0]
        found = []
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            found += [f"{module}:{node.lineno} imports {t}" for t in targets if test_module(t)]
        return found

    # the check sees an import of a test module, absolute or relative, in any form
    probe = (
        "import tests.test_cli\nfrom tests import test_cli\nfrom ..faults.test_orphans import x\n"
    )
    assert len(offences(probe, "tests.helpers.probe")) == 3
    assert offences("from tests.helpers.workflow import TINY\n", "tests.test_x") == []

    bad = []
    for path in sorted(tests.rglob("*.py")):
        module = ".".join(path.relative_to(tests.parent).with_suffix("").parts)
        bad += offences(path.read_text(), module)
    assert not bad, bad
