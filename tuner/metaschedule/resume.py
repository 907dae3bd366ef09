"""Picking a job up after its process stopped, however it stopped: the job's MetaSchedule
database is the truth of what was measured, the store follows it.

Commit order (``MetaScheduleDriver._update``): a batch's tuning records are appended to the
database's record file and flushed to disk (``fsync``) before any of the batch's ``record``
events is written to the store. So at any instant the store holds, per task, a prefix of the
task's records in the database, in the same order (a task's records are appended in candidate
order). Recovery (``ResumeState``, read by the driver) counts the task's records in the
database (``d``) and in the store (``s <= d``) and emits ``record`` events for candidates
``s .. d-1`` from the database; nothing is measured twice and nothing is stored twice. A
line cut short (the machine lost power mid-write) is dropped first (``repair_database``):
its record never reached the store either.

Plain JSON here, no TVM: the driver replays the traces itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.importers.ms_database import (
    RECORD_FILE,
    WORKLOAD_FILE,
    data_lines,
    looks_like_record,
    looks_like_workload,
    run_secs_of,
)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a restarted job had stored before: per task, the ``record`` events the store
    holds, why each task had stopped (its latest ``task`` event said ``stopped=``), and when
    the job first started (unix seconds, for its time budget)."""

    stored_records: Mapping[str, int] = field(default_factory=dict)
    stopped: Mapping[str, str] = field(default_factory=dict)
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class DatabaseRecord:
    """One committed tuning record: its trace (MetaSchedule JSON), its run times (None: it
    failed) and the whole record as committed (``[trace, run_secs, target, args_info]``)."""

    trace: list[Any]
    run_secs: tuple[float, ...] | None
    raw: list[Any]

    @property
    def trace_text(self) -> str:
        """The trace as the store keeps it (compact JSON)."""
        return json.dumps(self.trace, separators=(",", ":"))


def repair_database(db_dir: Path) -> list[str]:
    """Drop a last line cut short (no line end, or not valid JSON) from each file of the
    database in ``db_dir``; returns a note per file repaired."""
    notes = []
    for name in (WORKLOAD_FILE, RECORD_FILE):
        path = Path(db_dir) / name
        if not path.is_file():
            continue
        size = path.stat().st_size
        keep = _complete_prefix(path)
        if keep < 0:  # a whole last line without its line end
            with open(path, "ab") as stream:
                stream.write(b"\n")
                stream.flush()
                os.fsync(stream.fileno())
            notes.append(f"{name}: ended its last line")
        elif keep < size:
            with open(path, "r+b") as stream:
                stream.truncate(keep)
                stream.flush()
                os.fsync(stream.fileno())
            notes.append(f"{name}: dropped {size - keep} bytes of a line cut short")
    return notes


def records_by_workload(db_dir: Path) -> dict[str, list[DatabaseRecord]]:
    """The database's tuning records per workload structural hash, in commit order."""
    db_dir = Path(db_dir)
    workload_file, record_file = db_dir / WORKLOAD_FILE, db_dir / RECORD_FILE
    if not workload_file.is_file() or not record_file.is_file():
        return {}
    hashes: list[str | None] = []
    for _, _, raw in data_lines(workload_file):
        obj = _loads(raw)
        hashes.append(obj[0] if looks_like_workload(obj) else None)
    out: dict[str, list[DatabaseRecord]] = {}
    for _, _, raw in data_lines(record_file):
        obj = _loads(raw)
        if not looks_like_record(obj) or not 0 <= obj[0] < len(hashes):
            continue
        workload = hashes[obj[0]]
        if workload is None:
            continue
        body = obj[1]
        out.setdefault(workload, []).append(DatabaseRecord(body[0], run_secs_of(body[1]), body))
    return out


def sync_file(path: Path) -> None:
    """Flush a file the database appended to onto the disk (before the store hears of it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete_prefix(path: Path) -> int:
    """Bytes of ``path`` without its last line when that line was cut short (not valid JSON);
    -1 when the last line is whole but lacks its line end. Earlier lines are never touched."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as stream:
        stream.seek(max(0, size - (1 << 20)))
        tail = stream.read()
    body = tail[:-1] if tail.endswith(b"\n") else tail
    start = body.rfind(b"\n") + 1  # where the last line starts, within ``tail``
    if start == 0 and size > len(tail):
        return size  # a last line over 1 MiB long: leave it to the reader
    last = tail[start:]
    text = last.strip()
    if not text or text.startswith(b"#") or _loads(last) is not None:
        return size if last.endswith(b"\n") or not text else -1
    return size - len(last)


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
