"""CI's rule that a skipped test fails (GEOKD_FAIL_ON_SKIP=1, set by .ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(tmp_path: Path, env_value: str | None) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\n"
        "def test_runtime_skip():\n    pytest.skip('no cross-check library')\n\n"
        "@pytest.mark.skipif(True, reason='marker')\ndef test_marker_skip():\n    pass\n\n"
        "def test_passes():\n    assert True\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GEOKD_FAIL_ON_SKIP"}
    env["PYTHONPATH"] = str(HERE.parent)  # the conftest imports tests.helpers (the guard)
    if env_value is not None:
        env["GEOKD_FAIL_ON_SKIP"] = env_value
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )


def test_a_skip_fails_when_ci_forbids_skips(tmp_path):
    res = _run(tmp_path, "1")
    assert res.returncode == 1, res.stdout
    # a skip at run time fails the test; a skip marker fails its setup (an error)
    assert "1 failed, 1 passed, 1 error" in res.stdout
    assert "skipped in CI (GEOKD_FAIL_ON_SKIP=1)" in res.stdout


def test_a_skip_is_a_skip_elsewhere(tmp_path):
    res = _run(tmp_path, None)
    assert res.returncode == 0, res.stdout
    assert "1 passed, 2 skipped" in res.stdout
