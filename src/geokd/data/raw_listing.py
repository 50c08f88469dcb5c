"""Checksum listings of raw input files, so that ingest reruns when their content changes.

The workflow (``workflow/rules/common.smk``, :func:`refresh_listing`) writes
``data/interim/<dataset>/raw_listing.tsv`` each time it plans a real dataset's ingest: one line
per raw file that ingest reads (path relative to the raw folder, size, SHA-256), rewritten only
when that text changes. The listing is an input of the ingest rule, so a changed, added or
removed raw file reruns ingest and what depends on it, and an unchanged (or merely touched) raw
folder reruns nothing.

Files read: UTD-MHAD, every ``*.mat`` entry of ``raw_dir`` (what
:func:`geokd.data.utd_mhad.read_folder` reads); SIGNUM, the manifest and every sample path it
lists (relative to the manifest's folder, as :func:`geokd.data.signum.read_signum` resolves
them). An entry that is not a readable file (a dangling symlink, a missing sample) is listed
as such; ingest then names it.

Cost: a file is hashed again only when its size, modification time, change time (``ctime``,
which every write sets and no user can set back) or inode differ from the cache in
``.snakemake/geokd/raw/`` (one JSON file per dataset); otherwise the cached SHA-256 is used,
so a large unchanged raw folder costs one ``stat`` per file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import write_text
from ..checksum import sha256_file

HEADER = "path\tsize\tsha256\n"


def utd_mhad_files(raw_dir: str | os.PathLike) -> tuple[Path, list[Path]]:
    """(root, files): the ``*.mat`` entries of ``raw_dir`` (none when it is not a folder)."""
    root = Path(raw_dir)
    if not root.is_dir():
        return root, []
    return root, sorted(p for p in root.iterdir() if p.suffix.lower() == ".mat")


def signum_files(manifest: str | os.PathLike) -> tuple[Path, list[Path]]:
    """(root, files): the manifest file and every sample path it lists (as far as the
    manifest can be read: ingest names whatever is wrong with it)."""
    from ..errors import InputError
    from .signum import MANIFEST_NAMES, read_manifest

    path = Path(manifest)
    if path.is_dir():
        found = [path / n for n in MANIFEST_NAMES if (path / n).is_file()]
        if len(found) != 1:
            return path, found
        path = found[0]
    root = path.parent
    try:
        table, _ = read_manifest(path)
    except (InputError, OSError, ValueError):
        return root, [path]
    samples = {root / str(rel).strip() for rel in table["path"] if str(rel).strip()}
    return root, [path, *sorted(samples)]


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def listing_text(root: Path, files: list[Path], cache: dict[str, list]) -> str:
    """The listing of ``files`` (paths shown relative to ``root`` where they lie under it);
    ``cache`` (absolute path -> [size, mtime_ns, ctime_ns, inode, sha256]) is used and
    updated in place."""
    lines = []
    for path in files:
        try:
            shown = str(path.relative_to(root))
        except ValueError:
            shown = str(path)
        try:
            st = path.stat()
        except OSError as exc:
            lines.append(f"{shown}\t-\tunreadable: {exc.strerror or exc}")
            continue
        if not path.is_file():
            lines.append(f"{shown}\t-\tnot a file")
            continue
        name = str(path.absolute())
        entry = cache.get(name)
        if not (isinstance(entry, list) and len(entry) == 5 and entry[:4] == _key(st)):
            try:
                entry = [*_key(st), sha256_file(path)]
            except OSError as exc:
                lines.append(f"{shown}\t-\tunreadable: {exc.strerror or exc}")
                continue
            cache[name] = entry
        lines.append(f"{shown}\t{entry[0]}\t{entry[4]}")
    return HEADER + "".join(f"{line}\n" for line in lines)


def update_listing(
    out: str | os.PathLike, root: Path, files: list[Path], cache_file: str | os.PathLike
) -> Path:
    """Write the listing of ``files`` to ``out`` unless it already holds exactly that text
    (so its modification time changes only with the content); return ``out``."""
    out, cache_file = Path(out), Path(cache_file)
    try:
        cache = json.loads(cache_file.read_text())
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    before = json.dumps(cache, sort_keys=True)
    text = listing_text(root, files, cache)
    try:
        current = out.read_text()
    except (OSError, UnicodeDecodeError):
        current = None
    if current != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, text)
    known = {str(p.absolute()) for p in files}
    cache = {k: v for k, v in cache.items() if k in known}
    if json.dumps(cache, sort_keys=True) != before:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_text(cache_file, json.dumps(cache, sort_keys=True))
    return out


def refresh_listing(
    source: str, raw: str | os.PathLike, out: str | os.PathLike, cache_file: str | os.PathLike
) -> str:
    """The workflow's entry point: list the raw files of a ``utd_mhad`` folder or a ``signum``
    manifest ``raw`` into ``out`` (:func:`update_listing`); nothing is written when ``raw``
    does not exist (ingest then names it). Returns ``out``."""
    root, files = utd_mhad_files(raw) if source == "utd_mhad" else signum_files(raw)
    if root.exists():
        update_listing(out, root, files, cache_file)
    return str(out)
