"""The session's process guard (tests/helpers/leftovers.py) and the command runner that stops a
command's whole session (tests/helpers/processes.py), each shown to fail where it must.

The guard is tested on inner pytest sessions (``pytester``, enabled here only) that load it as
a plugin, as tests/conftest.py does for the real suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.leftovers import ENV
from tests.helpers.processes import run, started_in

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ["-p", "tests.helpers.leftovers", "-p", "no:cacheprovider"]


@pytest.fixture
def inner(pytester, monkeypatch):
    """A pytester whose sessions can import the guard (the repository on PYTHONPATH), with a
    grace of 3 s."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("GEOKD_LEFTOVER_GRACE", "3")
    return pytester


def _gone(pid: int, created: float) -> bool:
    """The process ``pid`` started at ``created`` has ended (a zombie counts as ended)."""
    try:
        p = psutil.Process(pid)
        return p.create_time() != created or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pid_file(path: Path, timeout: float = 30) -> tuple[int, float]:
    """(pid, start time) written by :data:`SLEEPER`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        words = path.read_text().split() if path.is_file() else []
        if len(words) == 2:
            return int(words[0]), float(words[1])
        time.sleep(0.05)
    raise AssertionError(f"{path} not written")


#: a process that writes its pid and start time to the file argv[1], then sleeps 10 minutes
SLEEPER = (
    "import sys, time, psutil; me = psutil.Process(); "
    "open(sys.argv[1] + '.tmp', 'w').write(f'{me.pid} {me.create_time()!r}'); "
    "__import__('os').replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(600)"
)


def test_a_leaked_child_fails_the_run_and_is_ended(inner, tmp_path):
    pid_file = tmp_path / "leaked.pid"
    inner.makepyfile(
        test_leak=f"""
        import subprocess, sys

        def test_leaks_a_process(tmp_path):
            subprocess.Popen([sys.executable, "-c", {SLEEPER!r}, {str(pid_file)!r}],
                             cwd=tmp_path, start_new_session=True)
            import time
            for _ in range(600):
                if __import__("os").path.exists({str(pid_file)!r}):
                    break
                time.sleep(0.05)
        """
    )
    result = inner.runpytest_subprocess(*PLUGIN)
    pid, created = _pid_file(pid_file)
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*1 passed*"])  # the test itself passed: the guard failed it
    out = result.stdout.str()
    assert "processes left behind: 1" in out
    assert f"pid {pid} " in out and "time.sleep(600)" in out
    assert "working folder in the test's temporary folder" in out
    deadline = time.monotonic() + 20
    while not _gone(pid, created) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid, created), "the guard did not end the leaked process"


def test_a_leak_in_an_xdist_worker_fails_the_run(inner, tmp_path):
    """make test runs the tests in parallel processes (pytest-xdist): the controller guards
    the whole run, what its workers started included."""
    pid_file = tmp_path / "leaked.pid"
    inner.makepyfile(
        test_leak=f"""
        import os, subprocess, sys, time

        def test_leaks_a_process(tmp_path):
            subprocess.Popen([sys.executable, "-c", {SLEEPER!r}, {str(pid_file)!r}],
                             cwd="/", start_new_session=True)
            for _ in range(600):
                if os.path.exists({str(pid_file)!r}):
                    break
                time.sleep(0.05)

        def test_does_nothing():
            pass
        """
    )
    result = inner.runpytest_subprocess(*PLUGIN, "-n", "2")
    pid, created = _pid_file(pid_file)
    out = result.stdout.str()
    assert result.ret == 1, out
    result.stdout.fnmatch_lines(["*2 passed*"])
    assert "processes left behind: 1" in out and f"pid {pid} " in out
    deadline = time.monotonic() + 20
    while not _gone(pid, created) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid, created)


def test_an_orphan_outside_the_temporary_folder_is_found_by_its_environment(inner, tmp_path):
    """Double-forked (re-parented to init) and working in /: neither a descendant nor in the
    temporary folder; the session's token in its environment gives it away."""
    pid_file = tmp_path / "orphan.pid"
    inner.makepyfile(
        test_orphan=f"""
        import os, shlex, subprocess, sys, time

        def test_leaves_an_orphan():
            code = shlex.quote({SLEEPER!r})
            cmd = f"{{shlex.quote(sys.executable)}} -c {{code}} {str(pid_file)!r} &"
            subprocess.run(["sh", "-c", cmd], cwd="/", check=True)
            for _ in range(600):
                if os.path.exists({str(pid_file)!r}):
                    break
                time.sleep(0.05)
        """
    )
    result = inner.runpytest_subprocess(*PLUGIN)
    pid, created = _pid_file(pid_file)
    out = result.stdout.str()
    assert result.ret == 1, out
    assert "processes left behind: 1" in out and f"pid {pid} " in out
    assert "started by this session (its environment)" in out
    assert "descendant" not in out and "temporary folder" not in out
    deadline = time.monotonic() + 20
    while not _gone(pid, created) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid, created)


def test_a_clean_run_passes_and_says_so(inner):
    """No leak, and a detached process that ends within the guard's grace: both pass."""
    inner.makepyfile(
        test_clean="""
        import subprocess, sys

        def test_runs_a_command(tmp_path):
            assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0

        def test_leaves_a_process_that_ends_soon(tmp_path):
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"],
                             cwd=tmp_path, start_new_session=True)
        """
    )
    result = inner.runpytest_subprocess(*PLUGIN)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["processes left behind: 0", "*2 passed*"])


def test_sigterm_stops_the_run_like_ctrl_c_and_its_commands_with_it(inner, tmp_path):
    """SIGTERM to the test run (``timeout``, a cancelled CI job): KeyboardInterrupt in the
    test, the command run by tests/helpers/processes.py is stopped with its session, fixtures
    are torn down, and nothing is left."""
    pid_file, teardown = tmp_path / "child.pid", tmp_path / "teardown.done"
    inner.makepyfile(
        test_term=f"""
        import sys
        import pytest
        from tests.helpers.processes import run

        @pytest.fixture(scope="module")
        def resource():
            yield
            open({str(teardown)!r}, "w").write("done")

        def test_waits_for_a_command(resource, tmp_path):
            run([sys.executable, "-c", {SLEEPER!r}, {str(pid_file)!r}], cwd=tmp_path,
                timeout=600)
        """
    )
    proc = inner.popen(
        [sys.executable, "-m", "pytest", "-q", *PLUGIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        pid, created = _pid_file(pid_file, timeout=120)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = out.decode() if isinstance(out, bytes) else out
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out and "processes left behind: 0" in out
    assert teardown.read_text() == "done"
    assert _gone(pid, created)


def test_run_stops_the_whole_session_of_a_command_that_times_out(tmp_path):
    """A shell with a background and a foreground child: on the timeout all three end (a
    plain ``subprocess.run`` would kill the shell only)."""
    script = "sleep 300 & sleep 301; wait"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run(["sh", "-c", script], cwd=tmp_path, timeout=2, grace=2)
    assert time.monotonic() - started < 30
    assert started_in(tmp_path) == []


def test_commands_carry_the_session_token():
    """What the guard's environment check relies on: a command started by a test inherits
    this session's token."""
    assert os.environ.get(ENV)
    done = run([sys.executable, "-c", f"import os; print(os.environ[{ENV!r}])"])
    assert done.stdout.strip() == os.environ[ENV]
