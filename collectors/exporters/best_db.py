"""A MetaSchedule database holding only the best record per workload (what TVM deploys with).

Input databases are read as plain JSON, two passes over each, keeping only one small entry per
workload: pass 1 finds the best valid record of each workload (lowest mean ``run_secs``;
MetaSchedule's 1e10 s failure marker never wins), pass 2 copies the chosen workload lines and
record lines, renumbering workload indices. The same workload in several databases (equal
structural hash and module) is written once, with the best record among them.

A store names the MetaSchedule databases of its jobs with ``metaschedule_database=<dir>``
lines in job ``detail`` (written by the MetaSchedule importer; tuners may do the same).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors._base import BaseStore
from collectors.importers._common import LogFormatError
from collectors.importers.metaschedule import (
    DETAIL_DATABASE_PREFIX,
    RECORD_FILE,
    WORKLOAD_FILE,
    DatabasePaths,
    database_paths,
    looks_like_record,
    looks_like_workload,
    run_secs_of,
)

_INDEX = re.compile(rb"^\s*\[\s*(\d+)\s*,")


@dataclass
class BestDbSummary:
    """What a best-record export read and wrote."""

    path: str
    sources: list[str]
    records_read: int = 0
    valid_records: int = 0
    workloads_seen: int = 0
    workloads_written: int = 0
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
            "bad_lines": self.bad_lines,
            "bad_line_details": list(self.bad_line_details),
            "missing_sources": list(self.missing_sources),
        }


@dataclass
class _Best:
    mean: float
    source: int
    offset: int


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
    """Write ``out_dir/database_{workload,tuning_record}.json`` with the best record per workload.

    ``sources`` are database directories or record files. Raises LogFormatError for a source
    that is not a MetaSchedule database or an ``out_dir`` that already holds one (nothing is
    overwritten).
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
    keys: list[list[str | None]] = [_workload_keys(db, summary) for db in databases]
    best: dict[str, _Best] = {}
    for index, db in enumerate(databases):
        _scan_records(index, db, keys[index], best, summary)
    summary.workloads_seen = len({k for ks in keys for k in ks if k is not None})
    out.mkdir(parents=True, exist_ok=True)
    _write(out, databases, keys, best)
    summary.workloads_written = len(best)
    return summary


def _bad(summary: BestDbSummary, path: Path, line: int, reason: str) -> None:
    summary.bad_lines += 1
    if len(summary.bad_line_details) < 50:
        summary.bad_line_details.append({"file": str(path), "line": line, "reason": reason})


def _workload_keys(db: DatabasePaths, summary: BestDbSummary) -> list[str | None]:
    """Identity of each workload line (None for an unreadable one), in index order."""
    keys: list[str | None] = []
    for number, raw in _lines(db.workload):
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if not looks_like_workload(line):
            _bad(summary, db.workload, number, "not a workload line [hash, base64]")
            keys.append(None)
            continue
        digest = hashlib.sha256(line[1].encode()).hexdigest()[:24]
        keys.append(f"{line[0]}:{digest}")
    return keys


def _scan_records(
    source: int,
    db: DatabasePaths,
    keys: list[str | None],
    best: dict[str, _Best],
    summary: BestDbSummary,
) -> None:
    offset = 0
    with open(db.record, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            here, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not looks_like_record(obj):
                _bad(summary, db.record, number, "not a tuning record line")
                continue
            summary.records_read += 1
            index = obj[0]
            key = keys[index] if 0 <= index < len(keys) else None
            if key is None:
                _bad(summary, db.record, number, f"workload index {index} has no readable line")
                continue
            secs = run_secs_of(obj[1][1])
            if secs is None:
                continue
            summary.valid_records += 1
            mean = sum(secs) / len(secs)
            current = best.get(key)
            if current is None or mean < current.mean:
                best[key] = _Best(mean, source, here)


def _write(
    out: Path, databases: list[DatabasePaths], keys: list[list[str | None]], best: dict[str, _Best]
) -> None:
    """Copy chosen workload lines, then their best records renumbered; files appear at once."""
    new_index: dict[str, int] = {}
    workload_tmp = out / f".{WORKLOAD_FILE}.partial"
    record_tmp = out / f".{RECORD_FILE}.partial"
    try:
        with open(workload_tmp, "wb") as w_out:
            for source, db in enumerate(databases):
                wanted = {
                    i: k for i, k in enumerate(keys[source]) if k in best and k not in new_index
                }
                if not wanted:
                    continue
                for i, (_, raw) in enumerate(_lines(db.workload)):
                    key = wanted.get(i)
                    if key is not None and key not in new_index:
                        new_index[key] = len(new_index)
                        w_out.write(raw.rstrip(b"\r\n") + b"\n")
        with open(record_tmp, "wb") as r_out:
            handles = {}
            try:
                for key in sorted(new_index, key=new_index.__getitem__):
                    chosen = best[key]
                    handle = handles.get(chosen.source)
                    if handle is None:
                        handle = handles[chosen.source] = open(  # noqa: SIM115 - closed below
                            databases[chosen.source].record, "rb"
                        )
                    handle.seek(chosen.offset)
                    raw = handle.readline().rstrip(b"\r\n")
                    r_out.write(_INDEX.sub(f"[{new_index[key]},".encode(), raw, count=1) + b"\n")
            finally:
                for handle in handles.values():
                    handle.close()
        os.replace(workload_tmp, out / WORKLOAD_FILE)
        os.replace(record_tmp, out / RECORD_FILE)
    finally:
        workload_tmp.unlink(missing_ok=True)
        record_tmp.unlink(missing_ok=True)


def _lines(path: Path) -> Iterable[tuple[int, bytes]]:
    """(line number, raw line) of each non-blank, non-comment line; numbering as in the file."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if text and not text.startswith(b"#"):
                yield number, raw
