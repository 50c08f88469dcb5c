"""The session's process guard (a pytest plugin; tests/conftest.py registers its hooks).

Nothing a test starts may outlive the test run. At the end of the session (after every
fixture's teardown) the guard looks for live processes that the run started:

- its environment carries this session's token (``GEOKD_TEST_SESSION``, set at the start of
  the session and inherited by every process started after it, SLURM jobs included, and kept
  by a process re-parented to init);
- its working folder is under pytest's temporary folder (``--basetemp``);
- it descends from the pytest process.

A process still alive ``GRACE`` seconds after the last test fails the run (exit status 1, if
it was 0) with its command line, and is then ended (SIGTERM, SIGKILL). The terminal summary
says ``processes left behind: N`` either way (``.ci/run`` shows it for both passes).

A SIGTERM to the test run (``timeout``, a cancelled CI job) stops it as Ctrl-C does: pytest
raises KeyboardInterrupt, so that the fixtures' teardowns (the SLURM cluster cancels its jobs
and stops its daemons) and the commands' cleanups (tests/helpers/processes.py) run, and the
guard ends what is left. Without this a SIGTERM killed pytest, DVC and the SLURM daemons at
once and left the Snakemake of a DVC stage waiting for ever for a job of a cluster that was
gone (issue 27).

An xdist worker belongs to its controller's session: it keeps the token and does no check.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ENV = "GEOKD_TEST_SESSION"
#: seconds a process of the run may take to finish after the last test (GEOKD_LEFTOVER_GRACE)
GRACE = 10.0


@dataclass
class Leftover:
    pid: int
    reasons: list[str]
    cmdline: str
    cwd: str


@dataclass
class Guard:
    token: str
    pid: int
    found: list[Leftover] | None = None
    previous_handler: object = None


_KEY = pytest.StashKey[Guard]()


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM): stopping the test run")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller guards the session
        token = os.environ.get(ENV, "")
    else:
        token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        os.environ[ENV] = token
    guard = Guard(token=token, pid=os.getpid())
    try:
        guard.previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (pytester in-process runs): nothing to install
        guard.previous_handler = None
    config.stash[_KEY] = guard


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_KEY, None)
    if guard is not None and guard.previous_handler is not None:
        try:
            signal.signal(signal.SIGTERM, guard.previous_handler)
        except (ValueError, TypeError):
            pass


def _basetemp(config: pytest.Config) -> Path | None:
    factory = getattr(config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None) or config.option.basetemp
    return Path(base).resolve() if base else None


def _under(path: str, folder: Path) -> bool:
    try:
        p = Path(path).resolve()
    except OSError:
        return False
    return p == folder or folder in p.parents


def find(token: str, basetemp: Path | None, root: int) -> list[Leftover]:
    """Live processes of the run (module docstring), the pytest process ``root`` and its
    ancestors excepted."""
    me = psutil.Process(root)
    skip = {root, *(p.pid for p in me.parents())}
    try:
        family = {p.pid for p in me.children(recursive=True)}
    except psutil.Error:
        family = set()
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd", "environ", "status"]):
        info = p.info
        if info["pid"] in skip or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        reasons = []
        if token and (info["environ"] or {}).get(ENV) == token:
            reasons.append("started by this session (its environment)")
        if basetemp is not None and info["cwd"] and _under(info["cwd"], basetemp):
            reasons.append("working folder in the test's temporary folder")
        if info["pid"] in family:
            reasons.append("descendant of the test process")
        if reasons:
            cmd = " ".join(info["cmdline"] or []) or f"[{p.name()}]"
            found.append(Leftover(info["pid"], reasons, cmd, info["cwd"] or "?"))
    return found


def end(pids: list[int], wait: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``wait`` seconds, to each process and its descendants."""
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.Error:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        _, procs = psutil.wait_procs(procs, timeout=wait)
        if not procs:
            return


def check(token: str, basetemp: Path | None, root: int, grace: float = GRACE) -> list[Leftover]:
    """The processes still alive ``grace`` seconds from now (ended before returning)."""
    deadline = time.monotonic() + grace
    while True:
        found = find(token, basetemp, root)
        if not found or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if found:
        end([f.pid for f in found])
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    guard = config.stash.get(_KEY, None)
    if guard is None or hasattr(config, "workerinput") or guard.pid != os.getpid():
        return
    grace = float(os.environ.get("GEOKD_LEFTOVER_GRACE", GRACE))
    guard.found = check(guard.token, _basetemp(config), guard.pid, grace)
    if guard.found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    guard = config.stash.get(_KEY, None)
    if guard is None or guard.found is None:
        return
    n = len(guard.found)
    terminalreporter.write_line(f"processes left behind: {n}", red=bool(n), bold=bool(n))
    for f in guard.found:
        terminalreporter.write_line(
            f"  pid {f.pid} ({'; '.join(f.reasons)}), in {f.cwd}: {f.cmdline[:500]}", red=True
        )
    if n:
        terminalreporter.write_line("  (ended by the guard; the run fails)", red=True)
