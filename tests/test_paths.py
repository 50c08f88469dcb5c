"""geokd.paths: the file layout spelled once. Its helpers (fill, in_protocol, sidecar), its
templates' fields (the rules' wildcard names), and a static check that no other module of the
package and no rule file spells a path under data/, results/, logs/, benchmarks/ or
.snakemake/ (with a self-test showing that the check catches one)."""

import ast
import re
import sys
from pathlib import Path

import pytest

from geokd import checksum, paths

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "geokd"
RULE_FILES = [*sorted((ROOT / "workflow/rules").glob("*.smk")), ROOT / "workflow/Snakefile"]
PREFIXES = ("data/", "results/", "logs/", "benchmarks/", ".snakemake/")


def _templates() -> dict[str, str]:
    found = {k: v for k, v in vars(paths).items() if k.isupper() and isinstance(v, str)}
    found.update({f"TABLE_FILES[{i}]": t for i, t in enumerate(paths.TABLE_FILES)})
    return found


# ---------------------------------------------------------------- helpers
def test_fields_in_order_of_first_appearance():
    assert paths.fields(paths.BLOCK) == (
        "dataset",
        "protocol",
        "metric",
        "query",
        "reference",
        "bi",
        "bj",
    )
    assert paths.fields(paths.REPORT) == ()
    assert paths.fields("{a}/{b}/{a}") == ("a", "b")


def test_fill_leaves_the_other_fields_for_snakemake():
    assert paths.fill(paths.MATRIX, query="test", reference="train") == (
        "results/{dataset}/{protocol}/distances/{metric}/test-train.npy"
    )
    assert paths.fill(paths.RUN_MODEL, dataset="d", protocol="p", model="nngk", seed=2) == (
        "results/d/p/models/nngk/seed2/model.pt"
    )
    assert paths.fill(paths.REPORT) == paths.REPORT
    # a value is put in as is, never read as a template itself
    store = paths.fill(paths.STORE, dataset="{protocol}")
    assert store == "data/interim/{protocol}/sequences.parquet"


def test_fill_refuses_a_keyword_that_is_not_a_field():
    with pytest.raises(KeyError, match="seed"):
        paths.fill(paths.SPLIT, dataset="d", seed=0)


def test_sidecar_is_the_checksum_sidecar_of_the_checksum_module():
    assert paths.sidecar("t/nngk.parquet") == "t/nngk.parquet.json"
    assert paths.SOFT_LABELS_SIDECAR == paths.sidecar(paths.SOFT_LABELS)
    assert checksum.sidecar_path("a/b.npy") == Path("a/b.npy.json")
    assert checksum.sidecar_path(Path("a/b.npy")) == Path(paths.sidecar("a/b.npy"))


def test_in_protocol_is_the_part_below_a_protocols_folder():
    assert paths.in_protocol(paths.SUMMARY) == "summary.json"
    assert paths.in_protocol(paths.KNN_LATENCY, metric="paper") == "knn/latency_paper.json"
    assert paths.in_protocol(paths.RUN_HISTORY, model="metric", seed=1) == (
        "models/metric/seed1/history.json"
    )
    pattern = paths.in_protocol(paths.MATRIX, metric="*", query="test", reference="train")
    assert pattern == "distances/*/test-train.npy"
    # what the workflow writes for dataset d, protocol p is the folder + that part
    rdir = paths.fill(paths.PROTOCOL, dataset="d", protocol="p")
    full = paths.fill(paths.BUDGET_SUMMARY, dataset="d", protocol="p")
    assert f"{rdir}/{paths.in_protocol(paths.BUDGET_SUMMARY)}" == full


def test_in_protocol_wants_every_field_and_a_template_below_the_folder():
    with pytest.raises(KeyError, match="metric"):
        paths.in_protocol(paths.KNN_RESULT)
    with pytest.raises(KeyError, match="dataset"):
        paths.in_protocol(paths.SPLIT, dataset="d")
    with pytest.raises(ValueError, match="not below"):
        paths.in_protocol(paths.STORE)
    with pytest.raises(ValueError, match="not below"):
        paths.in_protocol(paths.REPORT)


def test_log_benchmark_and_run_files():
    assert paths.log("split", "{dataset}/{protocol}") == "logs/split/{dataset}/{protocol}.log"
    assert paths.benchmark("report_html", "report") == "benchmarks/report_html/report.tsv"
    assert paths.run_file("timings.json") == paths.RUN_TIMINGS


# ---------------------------------------------------------------- templates and rules
def _rule_wildcards() -> set[str]:
    """Every name constrained in a `wildcard_constraints:` block of the rule files (every
    wildcard of the workflow has a constraint)."""
    names: set[str] = set()
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "wildcard_constraints:":
                continue
            indent = len(line) - len(line.lstrip())
            for body in lines[i + 1 :]:
                if body.strip() and len(body) - len(body.lstrip()) <= indent:
                    break
                if m := re.match(r"\s+(\w+)\s*=", body):
                    names.add(m[1])
    return names


def test_the_rules_constrain_the_wildcards_they_use():
    assert {"dataset", "protocol", "metric", "query", "reference", "bi", "bj", "method"} <= (
        _rule_wildcards()
    )
    assert {"model", "seed", "subset"} <= _rule_wildcards()


@pytest.mark.parametrize("name", sorted(_templates()))
def test_every_templates_fields_are_wildcards_of_the_rules(name):
    template = _templates()[name]
    assert set(paths.fields(template)) <= _rule_wildcards(), (name, template)
    assert f"{template}/".startswith(PREFIXES), (name, template)


def test_paths_imports_the_standard_library_only():
    tree = ast.parse((PKG / "paths.py").read_text())
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        (n.module or "").split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and not n.level
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


# ---------------------------------------------------------------- nowhere else
def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (module, class, function) of a syntax tree."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def python_path_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal (f-string parts included, docstrings left out)
    of Python ``source`` that starts with a layout prefix."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and node.value.startswith(PREFIXES)
    ]


def _code_part(line: str) -> str:
    """A line of a rule file without its comment (a `#` outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


_SMK_LITERAL = re.compile(
    r"""(?<![\w])[rRfFbB]{0,2}["'](?:""" + "|".join(map(re.escape, PREFIXES)) + ")"
)


def smk_path_literals(source: str) -> list[tuple[int, str]]:
    """(line, line text) of each line of a rule file whose code (not its comment) has a
    string literal starting with a layout prefix."""
    return [
        (n, line.strip())
        for n, line in enumerate(source.splitlines(), 1)
        if _SMK_LITERAL.search(_code_part(line))
    ]


def test_the_checkers_catch_a_path_and_let_docs_and_comments_be():
    py = '''"""Writes results/<dataset>/summary.json."""
import os  # data/raw is where the raw files go


def f(d):
    """Reads data/interim/<dataset>."""
    x = "results/report.html"
    return os.path.join(f"data/interim/{d}", x), ".snakemake/geokd/x", "results"
'''
    assert sorted(text for _, text in python_path_literals(py)) == [
        ".snakemake/geokd/x",
        "data/interim/",
        "results/report.html",
    ]
    smk = """# results/<dataset>/summary.json: "results/x" in a comment
rule a:
    output:
        "results/{dataset}/x.json",  # a comment "data/y"
    log:
        f'logs/a/{{dataset}}.log',
    params:
        x=paths.SUMMARY,  # "results/summary.json"
        y="#", z="benchmarks/a.tsv"
"""
    assert [n for n, _ in smk_path_literals(smk)] == [4, 6, 9]


def test_no_module_but_paths_and_no_rule_file_spells_a_path():
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        if path == PKG / "paths.py":
            continue
        if hits := python_path_literals(path.read_text()):
            found[str(path.relative_to(ROOT))] = hits
    for path in RULE_FILES:
        if hits := smk_path_literals(path.read_text()):
            found[str(path.relative_to(ROOT))] = hits
    assert not found, f"spell these with geokd.paths templates: {found}"
