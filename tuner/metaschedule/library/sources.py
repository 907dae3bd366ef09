"""A source database as the library reads it, without TVM: its workload lines, the best
record of each (workload, target) it offers (``collectors.importers.ms_best``), its id, the
names of its tasks, and the extract of it the library keeps.

Unlike the best-record export, the library refuses a database with any line it cannot use,
naming the file and line, and offers only tuned schedules: a record whose trace has no
instruction (a reuse job's fallback, the workload as it is) is no schedule to reuse.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.importers.ms_best import best_records, record_at
from collectors.importers.ms_database import RECORD_FILE, WORKLOAD_FILE, workload_lines
from collectors.importers.ms_targets import target_dict
from tuner.metaschedule.library.index import LibraryEntry, LibraryError, line_error, write_atomic


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The best record of one (workload, target): its line, the record as written
    (``[workload index, [trace, run_secs, target, ...]]``), its trace and target, its mean
    run time and how many valid records it beat."""

    line: int
    raw: list[Any]
    trace: list[Any]
    target: dict[str, Any]
    latency_s: float
    trials: int


@dataclass(frozen=True)
class SourceDatabase:
    """A source database's workload lines (``[hash, base64]``, with their line numbers) and
    its best records by workload index, then target key."""

    workload_path: Path
    record_path: Path
    workloads: list[list[str]]
    workload_lines: list[int]
    best: dict[int, dict[str, SourceRecord]]

    @property
    def hashes(self) -> list[str]:
        return [w[0] for w in self.workloads]


def read_database(workload_path: Path, record_path: Path) -> SourceDatabase:
    """Read and check both files; raises LibraryError naming the first bad line."""
    workloads: list[list[str]] = []
    numbers: list[int] = []
    for number, obj in workload_lines(workload_path, _refuse):
        if obj is not None:
            workloads.append(obj)
            numbers.append(number)
    if not workloads:
        raise LibraryError(f"{workload_path}: holds no workload")
    indices = list(range(len(workloads)))
    scan = best_records([(record_path, indices)], _refuse, tuned_only=True)
    best: dict[int, dict[str, SourceRecord]] = {}
    for (index, key), found in scan.best.items():
        raw = record_at(record_path, found.offset)
        body = raw[1]
        record = SourceRecord(
            found.line, raw, body[0], target_dict(body[2]), found.mean_s, found.trials
        )
        best.setdefault(index, {})[key] = record
    return SourceDatabase(workload_path, record_path, workloads, numbers, best)


def write_extract(folder: Path, parsed: SourceDatabase, entries: Sequence[LibraryEntry]) -> None:
    """The entries' workloads and best records, as a MetaSchedule JSON database in ``folder``."""
    wanted = {e.workload_hash for e in entries}
    keys = {(e.workload_hash, e.target_key) for e in entries}
    workload_out: list[str] = []
    record_out: list[str] = []
    for index, obj in enumerate(parsed.workloads):
        if obj[0] not in wanted:
            continue
        new_index = len(workload_out)
        workload_out.append(json.dumps(obj, separators=(",", ":")))
        for key, record in parsed.best.get(index, {}).items():
            if (obj[0], key) in keys:
                body = record.raw[1]
                record_out.append(json.dumps([new_index, body], separators=(",", ":")))
    write_atomic(folder / WORKLOAD_FILE, "\n".join(workload_out) + "\n")
    write_atomic(folder / RECORD_FILE, "\n".join(record_out) + "\n")


def source_id(workload: Path, record: Path) -> str:
    """A database's id in the library: a digest of both files' bytes."""
    digest = hashlib.sha256()
    for path in (workload, record):
        try:
            with open(path, "rb") as stream:
                for chunk in iter(lambda s=stream: s.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise LibraryError(f"{path}: cannot read ({exc.strerror})") from None
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def task_name_map(
    names: Mapping[str, str] | Sequence[str] | None, hashes: list[str]
) -> dict[int, str]:
    """Task names by workload index, from names by workload hash or a list in file order."""
    if names is None:
        return {}
    if isinstance(names, Mapping):
        return {i: str(names[h]) for i, h in enumerate(hashes) if h in names}
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise LibraryError("task_names must map workload hashes to names, or list the names")
    if len(names) != len(hashes):
        raise LibraryError(
            f"task_names lists {len(names)} names but the database has {len(hashes)} workloads"
        )
    return {i: str(n) for i, n in enumerate(names)}


def trace_digest(trace: Any) -> str:
    """A short digest of a trace's JSON (equal schedules, equal digests)."""
    text = json.dumps(trace, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _refuse(path: Path, line: int, why: str) -> None:
    raise line_error(path, line, why)
