"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and an interrupted or failed write (killed process,
full disk, read-only folder) leaves the previous version of the target (or nothing) in place.
A failed write removes its temporary files and raises :class:`OSError` naming the target; a
killed writer cannot, and the next write of the same target removes what it left
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import lifeline


def _output_error(exc: OSError, target: Path) -> OSError:
    """``exc`` as an :class:`OSError` naming the target (not the temporary file)."""
    if exc.errno is None:  # e.g. pyarrow's I/O errors: keep their message
        return OSError(None, str(exc), str(target))
    return OSError(exc.errno, os.strerror(exc.errno), str(target))


def _is_temporary(filename: object, target: Path) -> bool:
    """Whether an error's file name is unset or one of ``target``'s temporary files."""
    if filename is None:
        return True
    name = Path(str(filename))
    return name.parent == target.parent and name.name.startswith(f".{target.name}.")


def _owner_tag() -> str:
    """``<host>-<pid>``: who writes a temporary file (part of its name)."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``target`` left by killed writers on this host.

    A temporary file is named ``.<target name>.<host>-<pid>.<random>.tmp``; it is stale when
    ``<host>`` is this host and process ``<pid>`` no longer runs. Temporary files of other
    hosts (a shared cluster file system) and of live processes are kept. Returns the removed
    paths.
    """
    target = Path(target)
    host = _owner_tag().rsplit("-", 1)[0]
    removed = []
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.{glob.escape(host)}-*.tmp"):
        pid = tmp.name[len(f".{target.name}.{host}-") :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; silently skipped where directories cannot be fsynced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per target; rename them onto the targets on success.

    Every temporary file is written and flushed to disk before the first rename, so a full
    disk or a read-only folder fails before any target is touched. The renames follow in
    the order of ``targets`` (put a checksum sidecar last). On any exception the temporary
    files are removed and the targets are left untouched; an :class:`OSError` is re-raised
    naming the target. Parent folders are created if needed. A ``geokd`` step whose parent
    process has exited (an abandoned job) renames nothing:
    :class:`geokd.lifeline.OrphanedError`.
    """
    paths = [Path(t) for t in targets]
    temps: list[Path] = []
    current = paths[0] if paths else Path()
    try:
        for target in paths:
            current = target
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(target)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{target.name}.{_owner_tag()}.", suffix=".tmp", dir=target.parent
            )
            os.close(fd)
            temps.append(Path(tmp))
        current = paths[0] if paths else current
        yield tuple(temps)
        for tmp, target in zip(temps, paths, strict=True):
            current = target
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
        current = paths[0] if paths else current
        lifeline.check_current(current)  # an orphaned step commits nothing (geokd.lifeline)
        for tmp, target in zip(temps, paths, strict=True):
            current = target
            os.replace(tmp, target)
        for folder in dict.fromkeys(p.parent for p in paths):
            _fsync_dir(folder)
    except BaseException as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            named = {str(t): p for t, p in zip(temps, paths, strict=False)}
            current = named.get(str(exc.filename), current)
            if _is_temporary(exc.filename, current):
                raise _output_error(exc, current) from exc
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched.
    The parent folder is created if needed.
    """
    with atomic_paths(target) as (tmp,):
        yield tmp


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"))


def write_many(files: dict[str | os.PathLike, bytes]) -> None:
    """Write several files atomically as one unit (see :func:`atomic_paths`), in dict order."""
    with atomic_paths(*files) as temps:
        for tmp, data in zip(temps, files.values(), strict=True):
            tmp.write_bytes(data)
