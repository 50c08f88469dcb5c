"""What makes ``snakemake results/report.html`` rebuild a lost file the report stands on.

Snakemake reruns a job whose output is missing only when a target asks for that output or a
job that must run anyway needs it: a checkpoint (``model.pt``) deleted after a finished run
stays missing when only the report is asked for, since the report and the summary are still
newer than everything that exists. So the report rule also takes a marker file
(``.snakemake/geokd/report/missing.txt``): each time the workflow is planned,
:func:`mark_missing` rewrites it with the list of the report's inputs that are missing, which
makes it newer than the report; the report then has to run, and Snakemake rebuilds whatever
it needs that is missing, and everything downstream of it. When nothing is missing the
marker is left alone (created, as old as possible, where it does not exist yet), so a
finished run stays finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..atomic import write_text

HEADER = "# inputs of results/report.html missing when the workflow was last planned\n"


def missing_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The ``paths`` that are not files, in order, without repeats."""
    return [p for p in dict.fromkeys(map(os.fspath, paths)) if not os.path.isfile(p)]


def mark_missing(paths: Iterable[str | os.PathLike], marker: str | os.PathLike) -> str:
    """The workflow's entry point (an input of the report rule): rewrite ``marker`` with the
    ``paths`` that are missing when there are any; create it with modification time 0 when
    it does not exist (so it is older than any output); otherwise leave it. Returns
    ``marker``."""
    marker = Path(marker)
    lost = missing_files(paths)
    if lost or not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_text(marker, HEADER + "".join(f"{p}\n" for p in lost))
        if not lost:
            os.utime(marker, ns=(0, 0))
    return os.fspath(marker)
