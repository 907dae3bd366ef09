"""The best record per (workload, target) of MetaSchedule JSON databases, read as plain JSON.

One pass over each record file keeps one small entry per (workload, target key): where the
best record is (its file and byte offset), its mean run time and how many valid records it
beat. Records are read again by offset when they are wanted (``record_at``), so memory does
not grow with the file. Valid means measured: MetaSchedule's 1e10 s failure marker never
wins. Targets are compared by ``target_key``: records for two CPUs keep two best records,
records that differ only in ``num-cores`` compete.

With ``tuned_only``, records whose trace has no instruction are left out too: the workload as
it is, which a reuse job measures as its fallback, is not a schedule.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from collectors.importers.ms_database import (
    BadLineHandler,
    data_lines,
    line_at,
    looks_like_record,
    looks_like_trace,
    run_secs_of,
)
from collectors.importers.ms_targets import target_key

K = TypeVar("K", bound=Hashable)  # how a caller names workloads
_KEYS_KEPT = 64  # target keys remembered by the target's text


@dataclass(frozen=True, slots=True)
class BestRecord(Generic[K]):
    """The best valid record of one (workload, target): ``source`` is the position of its
    record file among those scanned, ``line`` and ``offset`` where it is in that file,
    ``trials`` how many valid records of the pair were seen."""

    source: int
    workload: K
    target: str
    line: int
    offset: int
    mean_s: float
    trials: int


@dataclass
class BestScan(Generic[K]):
    """What a scan found: ``best`` by (workload, target key), in the order first seen;
    ``records_read`` counts well-formed record lines, ``valid_records`` those measured (and,
    with ``tuned_only``, tuned)."""

    best: dict[tuple[K, str], BestRecord[K]] = field(default_factory=dict)
    records_read: int = 0
    valid_records: int = 0

    def by_workload(self) -> dict[K, list[BestRecord[K]]]:
        """The best records grouped by workload, each workload's targets in first-seen order."""
        grouped: dict[K, list[BestRecord[K]]] = {}
        for record in self.best.values():
            grouped.setdefault(record.workload, []).append(record)
        return grouped


@dataclass(slots=True)
class _Leader:
    source: int
    line: int
    offset: int
    mean: float
    count: int = 1


def best_records(
    record_files: Iterable[tuple[Path, Sequence[K | None]]],
    on_bad: BadLineHandler,
    *,
    tuned_only: bool = False,
) -> BestScan[K]:
    """Scan record files for the best valid record per (workload, target key).

    Each record file comes with its workloads: the key of workload index ``i`` is
    ``workloads[i]`` (None for a workload line that could not be read); equal keys in several
    files are one workload. A line that is not a usable record is reported to ``on_bad``
    (which may raise) and skipped.
    """
    scan: BestScan[K] = BestScan()
    leaders: dict[tuple[K, str], _Leader] = {}
    keys: dict[str, str] = {}  # a target's repr -> its key; a database has few targets
    for source, (path, workloads) in enumerate(record_files):
        for number, offset, raw in data_lines(path):
            try:
                obj = json.loads(raw)
            except ValueError:
                on_bad(path, number, "not JSON")
                continue
            why, target = _check(obj, keys)
            if why is not None:
                on_bad(path, number, why)
                continue
            scan.records_read += 1
            index = obj[0]
            workload = workloads[index] if 0 <= index < len(workloads) else None
            if workload is None:
                has = "readable " if 0 <= index < len(workloads) else ""
                on_bad(path, number, f"workload index {index} has no {has}workload line")
                continue
            secs = run_secs_of(obj[1][1])
            if secs is None or (tuned_only and not obj[1][0][0]):
                continue
            scan.valid_records += 1
            mean = sum(secs) / len(secs)
            leader = leaders.get((workload, target))
            if leader is None:
                leaders[workload, target] = _Leader(source, number, offset, mean)
                continue
            leader.count += 1
            if mean < leader.mean:
                leader.source, leader.line, leader.offset = source, number, offset
                leader.mean = mean
    scan.best = {
        (workload, target): BestRecord(
            found.source, workload, target, found.line, found.offset, found.mean, found.count
        )
        for (workload, target), found in leaders.items()
    }
    return scan


def record_at(path: Path, offset: int) -> list[Any]:
    """The decoded record line of ``path`` at byte ``offset`` (a ``BestRecord``'s)."""
    return json.loads(line_at(path, offset))


def _check(obj: Any, keys: dict[str, str]) -> tuple[str | None, str]:
    """(why the line is not a usable record or None, its target key)."""
    if not looks_like_record(obj):
        return "not a tuning record [workload index, [trace, run_secs, target, ...]]", ""
    body = obj[1]
    if not looks_like_trace(body[0]):
        return "trace is not [instructions, decisions]", ""
    if len(body) < 3:
        return "no target in the record", ""
    text = repr(body[2])
    key = keys.get(text)
    if key is None:
        if len(keys) >= _KEYS_KEPT:
            keys.clear()
        try:
            key = keys[text] = target_key(body[2])
        except ValueError:
            return "no target in the record", ""
    return None, key
