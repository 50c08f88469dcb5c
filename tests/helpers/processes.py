"""Commands the tests run (Snakemake, DVC, geokd), each in a session of its own, and stopped as a
whole when the wait for it ends early.

``subprocess.run(..., timeout=...)`` kills only the process it started, with SIGKILL: DVC dies
and the Snakemake it runs for a stage goes on, re-parented to init; so do the jobs of a killed
Snakemake. :func:`run` starts the command in a new session instead, and whatever ends the wait
(its timeout, Ctrl-C, a SIGTERM to the test run, which tests/helpers/leftovers.py turns into
KeyboardInterrupt, a pytest-timeout failure) stops every process of that session
(:func:`stop_session`): SIGINT first, on which Snakemake cancels its SLURM jobs (scancel) and
ends its local ones, then SIGKILL for what is left after ``grace`` seconds. On SIGTERM, by
contrast, Snakemake only stops scheduling and waits for its running jobs: a SLURM run whose
cluster has gone waits for ever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

#: seconds a stopped command gets to end its jobs after SIGINT before SIGKILL
GRACE = 30.0


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def session_members(sid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for p in psutil.process_iter():
        if _sid(p.pid) != sid:
            continue
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            continue
    return found


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def stop_session(proc: subprocess.Popen, grace: float = GRACE) -> None:
    """End every process of the session led by ``proc`` (started with start_new_session):
    SIGINT, then SIGKILL after ``grace`` seconds; returns once they are gone and ``proc`` is
    reaped."""
    sid = proc.pid

    def others() -> list[psutil.Process]:
        return [p for p in session_members(sid) if p.pid != proc.pid]

    _signal(session_members(sid), signal.SIGINT)  # ``proc`` too, while it runs
    end = time.monotonic() + grace
    while time.monotonic() < end and (proc.poll() is None or others()):
        time.sleep(0.1)
    for _ in range(100):  # SIGKILL, also to what the session started meanwhile (scancel, ...)
        left = others()
        if proc.poll() is None:
            proc.kill()
        if not left and proc.poll() is not None:
            break
        _signal(left, signal.SIGKILL)
        time.sleep(0.1)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run(
    cmd: Iterable[str | os.PathLike],
    *,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 600,
    merge_stderr: bool = False,
    grace: float = GRACE,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)`` in a session of
    its own (stdin from /dev/null; stderr into stdout with ``merge_stderr``); when the wait
    ends early (timeout or any exception) the whole session is stopped (:func:`stop_session`)
    before the exception goes on (``TimeoutExpired`` with the output so far)."""
    args = [str(c) for c in cmd]
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_session(proc, grace)
        out, err = _rest(proc)
        raise subprocess.TimeoutExpired(args, timeout, output=out, stderr=err) from None
    except BaseException:
        stop_session(proc, grace)
        _rest(proc)
        raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _rest(proc: subprocess.Popen) -> tuple[str | None, str | None]:
    """What the pipes of a stopped process still hold (nothing if a stray process keeps them
    open: the session guard names it at the end of the run)."""
    try:
        return proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        return None, None


def started_in(folder: Path, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Live processes whose working folder is ``folder`` or below it."""
    folder = Path(folder).resolve()
    skip = {os.getpid(), *exclude}
    found = []
    for p in psutil.process_iter():
        if p.pid in skip:
            continue
        try:
            cwd = Path(p.cwd())
            if (cwd == folder or folder in cwd.parents) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found
