"""A geokd step does not outlive its job, and an abandoned step commits nothing.

A workflow job is ``bash -c "exec python -m geokd ..."`` (or, in older rules, a shell that
runs the step as its child). Killing the job's shell, or Snakemake, used to leave the step
running: an *orphan* that finished later and atomically replaced the outputs of a newer run
(say, one with a corrected config) with those of the abandoned one. Two guards, both armed by
:func:`arm` at the start of every ``geokd`` command (``python -m geokd`` and the ``geokd``
script; not when :func:`geokd.cli.main` is called from Python with arguments):

1. On Linux the kernel is asked (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the step when
   its parent process dies. If the parent died between the start and that call (the step's
   parent pid changed), the step kills itself at once.
2. :func:`check_current`, called by :mod:`geokd.atomic` right before the renames that
   commit outputs: if the step's parent pid is no longer the one recorded at the start (the
   step was orphaned and re-parented, e.g. where the signal could not be set up), it raises
   :class:`OrphanedError` and the temporary files are removed; no target is touched.

Both are off (nothing armed) off Linux, when the parent is already pid 1 at the start (a step
started directly as a container's command or by init), and when ``GEOKD_ALLOW_ORPHAN=1`` is
set: use that to run a step that must outlive the shell that started it (``nohup geokd ...
&`` followed by logging out; ``tmux`` or ``screen`` keep the shell and need nothing).
Processes forked by a step (worker pools) are not checked.

Remaining window: a parent that dies during the interpreter's start, before :func:`arm` runs
(a few tens of milliseconds for ``python -m geokd``), leaves a step that looks as if it had
been started by init; it is then not guarded.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: set to "1" to let a step outlive its parent (and commit its outputs after it has gone)
ENV_ALLOW = "GEOKD_ALLOW_ORPHAN"
_PR_SET_PDEATHSIG = 1

#: ``(pid, parent pid)`` recorded by :func:`arm`; None: not armed (library use, tests)
_armed: tuple[int, int] | None = None


class OrphanedError(RuntimeError):
    """A step whose parent process has exited refuses to commit its outputs."""

    def __init__(self, target: object, parent: int):
        super().__init__(
            f"{target}: not written: this geokd step's parent process (pid {parent}) has "
            "exited, so its job was abandoned (killed, or superseded by a newer run); its "
            f"outputs are discarded (set {ENV_ALLOW}=1 to allow a step to outlive its parent)"
        )
        self.target, self.parent = target, parent


def _set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)``; False when it is not available or fails."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def arm() -> bool:
    """Tie this process to its parent (module docstring); True when armed. Idempotent."""
    global _armed
    if _armed is not None and _armed[0] == os.getpid():
        return True
    if os.environ.get(ENV_ALLOW) == "1" or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    if parent <= 1:  # started by init, or as pid 1 of a container: nothing to outlive
        return False
    _set_parent_death_signal(signal.SIGKILL)
    _armed = (os.getpid(), parent)
    if os.getppid() != parent:  # the parent died before the signal was set up
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def orphaned() -> int | None:
    """The parent pid recorded by :func:`arm` if this process has lost that parent, else
    None (also when not armed, and in a process forked from the armed one)."""
    if _armed is None:
        return None
    pid, parent = _armed
    if os.getpid() != pid or os.getppid() == parent:
        return None
    return parent


def check_current(target: object) -> None:
    """Raise :class:`OrphanedError` naming ``target`` if this step has been orphaned."""
    parent = orphaned()
    if parent is not None:
        raise OrphanedError(target, parent)
