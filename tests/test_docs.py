"""The documentation's code runs as shown."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.helpers.processes import run

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_the_quickstart_runs_and_the_student_learns(tmp_path):
    (code,) = _python_blocks(ROOT / "docs/quickstart.md")
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    done = run([sys.executable, script], cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    knn = float(re.search(r"1-NN accuracy ([\d.]+)", done.stdout).group(1))
    student = float(re.search(r"student accuracy ([\d.]+)", done.stdout).group(1))
    assert knn > 0.5 and student > 0.5  # chance is 1/6
    assert (tmp_path / "student.pt").is_file() and (tmp_path / "student.pt.json").is_file()
