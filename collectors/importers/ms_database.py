"""MetaSchedule JSON database files read as plain JSON, without TVM: their names, finding both
files of a database, the shapes of their lines and a record's run times.

A database is two JSON-lines files side by side: ``database_workload.json`` with
``[structural hash, base64 IRModule]`` per line and ``database_tuning_record.json`` with
``[workload index, [trace, run_secs, target, args_info]]`` per line. A workload index counts
the workload file's lines, blank lines and ``#`` comments aside. A trace is MetaSchedule's
JSON form, ``[instructions, decisions]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.importers._common import LogFormatError, as_float_list

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
# MetaSchedule commits this run time (seconds) for a candidate that failed to build or run.
FAILED_RUN_SECS = 1e10
# Run times at or above this are the failure marker, not a measurement.
FAILED_AT = 1e9
# A job-detail line naming a MetaSchedule database folder (read by the best-record export).
DETAIL_DATABASE_PREFIX = "metaschedule_database="

# Called with (file, line number, reason) for a line that cannot be used; may raise.
BadLineHandler = Callable[[Path, int, str], None]


@dataclass(frozen=True)
class DatabasePaths:
    """The two files of one MetaSchedule JSON database."""

    workload: Path
    record: Path

    @property
    def directory(self) -> Path:
        return self.record.parent


def database_paths(path: Path) -> DatabasePaths:
    """Resolve a database given as its directory, its record file or its workload file.

    A record file named ``<x>tuning_record<y>`` pairs with ``<x>workload<y>`` beside it, else
    with ``database_workload.json``. Raises LogFormatError naming what is missing.
    """
    path = Path(path)
    if path.is_dir():
        record, workload = path / RECORD_FILE, path / WORKLOAD_FILE
    elif "workload" in path.name and "tuning_record" not in path.name:
        workload = path
        record = path.with_name(path.name.replace("workload", "tuning_record"))
    else:
        record = path
        paired = path.with_name(path.name.replace("tuning_record", "workload"))
        workload = paired if paired != path and paired.is_file() else path.with_name(WORKLOAD_FILE)
    for needed, role in ((record, "tuning record file"), (workload, "workload file")):
        if not needed.is_file():
            raise LogFormatError(f"{path}: MetaSchedule database has no {role} (expected {needed})")
    return DatabasePaths(workload=workload, record=record)


def database_detail(directory: Path) -> str:
    """The job-detail line naming a MetaSchedule database directory (read by best-db export)."""
    return f"{DETAIL_DATABASE_PREFIX}{Path(directory).resolve()}"


def looks_like_record(obj: Any) -> bool:
    """True for a decoded tuning-record line ``[int, [trace, run_secs, ...]]``."""
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and type(obj[0]) is int
        and isinstance(obj[1], list)
        and len(obj[1]) >= 2
        and isinstance(obj[1][0], list)
    )


def looks_like_workload(obj: Any) -> bool:
    """True for a decoded workload line ``[structural hash, base64]``."""
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and obj[0].isdigit()
        and isinstance(obj[1], str)
    )


def looks_like_trace(obj: Any) -> bool:
    """True for a trace's JSON form ``[instructions, decisions]``, each instruction a list
    that starts with its kind."""
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and isinstance(obj[0], list)
        and isinstance(obj[1], list)
        and all(isinstance(inst, list) and inst and isinstance(inst[0], str) for inst in obj[0])
    )


def run_secs_of(value: Any) -> tuple[float, ...] | None:
    """Measured run times, or None for MetaSchedule's failure marker or a missing value."""
    secs = as_float_list(value)
    if secs is None or sum(secs) / len(secs) >= FAILED_AT:
        return None
    return tuple(secs)


def data_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) of each line that is neither blank nor a ``#``
    comment, read one at a time."""
    offset = 0
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            here, offset = offset, offset + len(raw)
            text = raw.strip()
            if text and not text.startswith(b"#"):
                yield number, here, raw


def workload_lines(path: Path, on_bad: BadLineHandler) -> Iterator[tuple[int, list[str] | None]]:
    """(line number, ``[hash, base64]``) of each workload line in index order; an unreadable
    line is reported to ``on_bad`` and yields None (it still takes its index)."""
    for number, _, raw in data_lines(path):
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if looks_like_workload(obj):
            yield number, obj
        else:
            on_bad(path, number, "not a workload line [hash, base64]")
            yield number, None


def line_at(path: Path, offset: int) -> bytes:
    """The line of ``path`` that starts at byte ``offset``, without its line end."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        return stream.readline().rstrip(b"\r\n")
