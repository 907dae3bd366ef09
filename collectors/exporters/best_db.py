"""A MetaSchedule database holding only the best record per workload and target (what TVM
deploys with).

Input databases are read as plain JSON (``ms_best``), two passes over each, keeping one small
entry per (workload, target): pass 1 finds the best valid record of each (lowest mean
``run_secs``; MetaSchedule's 1e10 s failure marker never wins) and keeps its byte offset, pass 2
copies the chosen workload lines and record lines, renumbering workload indices. The same
workload in several databases (equal structural hash and module) is written once, with the
best record among them for each target. A database tuned for two targets (say two CPUs, or two
``-mcpu`` settings) keeps one best record per target: their run times are not comparable.
Targets that differ only in ``num-cores`` are one target (``target_key``).

A store names the MetaSchedule databases of its jobs with ``metaschedule_database=<dir>``
lines in job ``detail`` (written by the MetaSchedule importer; tuners may do the same).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors._base import BaseStore
from collectors.importers._common import LogFormatError
from collectors.importers.ms_best import BestRecord, best_records
from collectors.importers.ms_database import (
    DETAIL_DATABASE_PREFIX,
    RECORD_FILE,
    WORKLOAD_FILE,
    BadLineHandler,
    DatabasePaths,
    data_lines,
    database_paths,
    workload_lines,
)

_INDEX = re.compile(rb"^\s*\[\s*(\d+)\s*,")


@dataclass
class BestDbSummary:
    """What a best-record export read and wrote: ``records_written`` is one best record per
    workload and target, ``targets`` the targets written (``target_key`` form)."""

    path: str
    sources: list[str]
    records_read: int = 0
    valid_records: int = 0
    workloads_seen: int = 0
    workloads_written: int = 0
    records_written: int = 0
    targets: list[str] = field(default_factory=list)
    bad_lines: int = 0
    bad_line_details: list[dict[str, Any]] = field(default_factory=list)
    missing_sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sources": list(self.sources),
            "records_read": self.records_read,
            "valid_records": self.valid_records,
            "workloads_seen": self.workloads_seen,
            "workloads_written": self.workloads_written,
            "records_written": self.records_written,
            "targets": list(self.targets),
            "bad_lines": self.bad_lines,
            "bad_line_details": list(self.bad_line_details),
            "missing_sources": list(self.missing_sources),
        }


def databases_in_store(store: BaseStore) -> list[Path]:
    """MetaSchedule database directories named by the store's job and task events (importers
    name them on the job, the tuner on each task), first seen first."""
    found: dict[str, Path] = {}
    for stored in store.read(kinds=("job", "task")):
        detail = getattr(stored.event, "detail", None)
        if not detail:
            continue
        for line in detail.splitlines():
            if line.startswith(DETAIL_DATABASE_PREFIX):
                path = line[len(DETAIL_DATABASE_PREFIX) :].strip()
                if path:
                    found.setdefault(path, Path(path))
    return list(found.values())


def export_best_db(
    sources: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> BestDbSummary:
    """Write ``out_dir/database_{workload,tuning_record}.json`` with the best record per
    workload and target.

    ``sources`` are database directories or record files. Raises LogFormatError for a source
    that is not a MetaSchedule database or an ``out_dir`` that already holds one (nothing is
    overwritten). Lines that cannot be used are counted in the summary, not written.
    """
    out = Path(out_dir)
    for name in (WORKLOAD_FILE, RECORD_FILE):
        if (out / name).exists():
            raise LogFormatError(
                f"{out}: already holds a MetaSchedule database ({name}); choose a new directory"
            )
    if not sources:
        raise LogFormatError("no MetaSchedule database to export from")
    databases = [database_paths(Path(s)) for s in sources]
    summary = BestDbSummary(path=str(out), sources=[str(d.directory) for d in databases])

    def bad(path: Path, line: int, reason: str) -> None:
        summary.bad_lines += 1
        if len(summary.bad_line_details) < 50:
            summary.bad_line_details.append({"file": str(path), "line": line, "reason": reason})

    keys = [_workload_keys(db, bad) for db in databases]
    scan = best_records(((db.record, k) for db, k in zip(databases, keys, strict=True)), bad)
    best = scan.by_workload()
    out.mkdir(parents=True, exist_ok=True)
    _write(out, databases, keys, best)
    summary.records_read, summary.valid_records = scan.records_read, scan.valid_records
    summary.workloads_seen = len({k for ks in keys for k in ks if k is not None})
    summary.workloads_written = len(best)
    summary.records_written = len(scan.best)
    summary.targets = sorted({target for _, target in scan.best})
    return summary


def _workload_keys(db: DatabasePaths, bad: BadLineHandler) -> list[str | None]:
    """Identity of each workload line (None for an unreadable one), in index order."""
    keys: list[str | None] = []
    for _, line in workload_lines(db.workload, bad):
        if line is None:
            keys.append(None)
        else:
            keys.append(f"{line[0]}:{hashlib.sha256(line[1].encode()).hexdigest()[:24]}")
    return keys


def _write(
    out: Path,
    databases: list[DatabasePaths],
    keys: list[list[str | None]],
    best: dict[str, list[BestRecord[str]]],
) -> None:
    """Copy chosen workload lines, then their best records renumbered; files appear at once."""
    new_index: dict[str, int] = {}
    workload_tmp = out / f".{WORKLOAD_FILE}.partial"
    record_tmp = out / f".{RECORD_FILE}.partial"
    try:
        with open(workload_tmp, "wb") as w_out:
            for source, db in enumerate(databases):
                if not any(k in best and k not in new_index for k in keys[source]):
                    continue
                for i, (_, _, raw) in enumerate(data_lines(db.workload)):
                    key = keys[source][i]
                    if key is not None and key in best and key not in new_index:
                        new_index[key] = len(new_index)
                        w_out.write(raw.rstrip(b"\r\n") + b"\n")
        with open(record_tmp, "wb") as r_out:
            handles = {}
            try:
                for key, index in new_index.items():
                    for chosen in best[key]:
                        handle = handles.get(chosen.source)
                        if handle is None:
                            handle = handles[chosen.source] = open(  # noqa: SIM115 - closed below
                                databases[chosen.source].record, "rb"
                            )
                        handle.seek(chosen.offset)
                        raw = handle.readline().rstrip(b"\r\n")
                        r_out.write(_INDEX.sub(f"[{index},".encode(), raw, count=1) + b"\n")
            finally:
                for handle in handles.values():
                    handle.close()
        os.replace(workload_tmp, out / WORKLOAD_FILE)
        os.replace(record_tmp, out / RECORD_FILE)
    finally:
        workload_tmp.unlink(missing_ok=True)
        record_tmp.unlink(missing_ok=True)
