"""Folders built once per test run and read by many tests, also across pytest-xdist workers.

A session-scoped fixture runs once per process: with ``make test``'s parallel workers (``-n``)
each worker would repeat an expensive build (a whole workflow run) that the others need too.
:func:`shared_folder` builds it once, in the run's temporary folder, under a file lock: the
first worker to ask builds it, the others wait and read it. The tests treat it as read-only (a
test that damages files works on a copy).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def run_temp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's temporary folder: pytest's basetemp, the controller's under xdist (each
    worker has a subfolder ``popen-gwN`` of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_folder(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """``<run temp>/shared-<name>``, built by ``build(folder)`` once per run."""
    root = run_temp_root(tmp_path_factory)
    folder = root / f"shared-{name}"
    done = root / f"shared-{name}.done"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not done.exists():
            if folder.exists():  # a build that failed half-way: start again
                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            done.write_text("built\n")
    return folder
