"""MetaSchedule JSON databases to events.

A database is two JSON-lines files side by side: ``database_workload.json`` with
``[structural hash, base64 IRModule]`` per line and ``database_tuning_record.json`` with
``[workload index, [trace, run_secs, target, args_info]]`` per line. The format has no
timestamps: records keep their file order and every event's ``ts`` is the record file's
modification time (the job's detail says so). No timeline is reconstructed.

Counts and latencies need only JSON. With TVM installed (and ``use_tvm``), tasks also carry
the workload's TVMScript (in ``detail``) and FLOPs, and record traces are TVM's own ``sch.*``
Python lines, decoded in a worker process (``ms_tvm``) so that a record TVM crashes on cannot
take the import down; without TVM, or for such a record, traces are rendered from their JSON
form. Job details carry ``metaschedule_database=<dir>``, which the best-record export reads.

Failed measurements are stored by MetaSchedule with a run time of 1e10 s (or none); they are
imported as errors of class "other", since the database keeps no error message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.events import Event, JobEvent, RecordEvent, TaskEvent
from collectors.importers._common import (
    BadLine,
    ImportContext,
    LogFormatError,
    UniqueNames,
    as_float_list,
    iter_json_lines,
    parse_json,
    shape_text,
)
from collectors.importers.ms_trace import (
    args_info_shapes,
    target_text,
    trace_text,
    workload_names,
)
from collectors.importers.ms_tvm import TvmDecoder

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
# MetaSchedule commits this run time (seconds) for a candidate that failed to build or run.
FAILED_RUN_SECS = 1e10
# Run times at or above this are the failure marker, not a measurement.
_FAILED_AT = 1e9
DETAIL_DATABASE_PREFIX = "metaschedule_database="
_WORKLOAD_START = re.compile(rb'^\[\s*"\d+"\s*,\s*"')
FAILED_ERROR = "no run time (MetaSchedule stores 1e10 s for a failed build or run)"


@dataclass(frozen=True)
class DatabasePaths:
    """The two files of one MetaSchedule JSON database."""

    workload: Path
    record: Path

    @property
    def directory(self) -> Path:
        return self.record.parent


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


def run_secs_of(value: Any) -> tuple[float, ...] | None:
    """Measured run times, or None for MetaSchedule's failure marker or a missing value."""
    secs = as_float_list(value)
    if secs is None or sum(secs) / len(secs) >= _FAILED_AT:
        return None
    return tuple(secs)


class _Workloads:
    """Workload lines read on demand by byte offset, so memory stays small."""

    def __init__(self, ctx: ImportContext, path: Path) -> None:
        self.ctx = ctx
        self.path = path
        self.offsets: list[int | None] = []
        self.cache: dict[int, dict[str, Any] | None] = {}
        self.decoder: TvmDecoder | None = None
        with open(path, "rb") as stream:
            offset = 0
            for number, raw in enumerate(stream, start=1):
                text = raw.strip()
                if text and not text.startswith(b"#"):
                    self.offsets.append(offset if self._check(number, text) else None)
                offset += len(raw)

    def _check(self, number: int, text: bytes) -> bool:
        # Cheap shape check while indexing; the full line is decoded when first used.
        if _WORKLOAD_START.match(text) and text.endswith(b'"]'):
            return True
        self.ctx.bad_line(number, "not a workload line [hash, base64]", file=self.path)
        return False

    def get(self, index: int) -> dict[str, Any] | None:
        """What is known of workload ``index``; None when it is missing or unreadable."""
        if index in self.cache:
            return self.cache[index]
        entry = None
        offset = self.offsets[index] if 0 <= index < len(self.offsets) else None
        if offset is not None:
            with open(self.path, "rb") as stream:
                stream.seek(offset)
                try:
                    line = json.loads(stream.readline())
                except ValueError:
                    line = None
            if looks_like_workload(line):
                entry = self._info(index, line)
        self.cache[index] = entry
        return entry

    def _info(self, index: int, line: list[Any]) -> dict[str, Any]:
        function, blocks = workload_names(line[1])
        op = function if function and function != "main" else (blocks[0] if blocks else None)
        info: dict[str, Any] = {"hash": line[0], "op": op or function or "workload"}
        if self.decoder is not None and self.decoder.enabled:
            decoded = self.decoder.workload(index, line)
            if decoded is not None:
                info["script"], info["flops"] = decoded.get("script"), decoded.get("flops")
            else:
                info["decode_error"] = "TVM could not decode it"
        return info


def read(ctx: ImportContext, paths: DatabasePaths) -> Iterator[Event]:
    """Stream events from the database; the record file is read one line at a time."""
    decoder = TvmDecoder() if ctx.use_tvm else None
    try:
        yield from _read(ctx, paths, decoder)
    finally:
        if decoder is not None:
            decoder.close()
            ctx.notes.extend(decoder.notes)


def _read(ctx: ImportContext, paths: DatabasePaths, decoder: TvmDecoder | None) -> Iterator[Event]:
    workloads = _Workloads(ctx, paths.workload)
    workloads.decoder = decoder
    ts = os.path.getmtime(paths.record)
    detail = (
        f"imported from MetaSchedule database {paths.directory.resolve()}; no timestamps: "
        f"records in file order (ts is the record file's modification time)\n"
        f"{database_detail(paths.directory)}"
    )
    names = UniqueNames()
    counts: dict[int, int] = {}
    target: str | None = None
    started = False
    records = 0
    for number, text in iter_json_lines(paths.record):
        try:
            obj = parse_json(text)
            if not looks_like_record(obj):
                raise BadLine("not a tuning record [workload index, [trace, run_secs, ...]]")
        except BadLine as exc:
            ctx.bad_line(number, str(exc), file=paths.record)
            continue
        index, record = obj
        info = workloads.get(index)
        if info is None:
            ctx.bad_line(
                number,
                f"workload index {index} has no readable line in {paths.workload.name}",
                file=paths.record,
            )
            continue
        if not started:
            started = True
            target = target_text(record[2] if len(record) > 2 else None)
            yield JobEvent(
                source=ctx.source, seq=ctx.next_seq(), ts=ts, job=ctx.job, change="submitted",
                target=target, name=paths.directory.name, detail=detail,
            )  # fmt: skip
        key = str(index)
        task = names.get(key)
        if task is None:
            task = yield from _task_event(ctx, ts, names, key, info, record)
        candidate = counts.get(index, 0)
        counts[index] = candidate + 1
        records += 1
        run_secs = run_secs_of(record[1])
        yield RecordEvent(
            source=ctx.source,
            seq=ctx.next_seq(),
            ts=ts,
            job=ctx.job,
            task=task,
            candidate=candidate,
            workload_hash=info["hash"],
            trace=_trace(index, record, decoder, f"line {number} of {paths.record.name}"),
            run_secs=run_secs,
            error=None if run_secs else FAILED_ERROR,
            error_class=None if run_secs else "other",
        )
    if started:
        yield JobEvent(
            source=ctx.source, seq=ctx.next_seq(), ts=ts, job=ctx.job, change="finished",
            target=target, name=paths.directory.name, trials=records,
            tasks=tuple(names.names()), detail=detail,
        )  # fmt: skip


def _task_event(
    ctx: ImportContext,
    ts: float,
    names: UniqueNames,
    key: str,
    info: dict[str, Any],
    record: list[Any],
) -> Generator[Event, None, str]:
    """Yield the task event of a workload seen for the first time; returns the task name."""
    shapes, dtype = args_info_shapes(record[3] if len(record) > 3 else None)
    task = names.add(key, f"{info['op']}({', '.join(shape_text(s) for s in shapes)})")
    detail = f"structural hash {info['hash']}"
    if info.get("script"):
        detail += f"\n{info['script']}"
    elif "decode_error" in info:
        detail += f"\nTVM could not decode the workload: {info['decode_error']}"
    yield TaskEvent(
        source=ctx.source,
        seq=ctx.next_seq(),
        ts=ts,
        job=ctx.job,
        task=task,
        op=info["op"],
        shapes=shapes,
        dtype=dtype,
        flops=info.get("flops"),
        workload_hash=info["hash"],
        detail=detail,
    )
    return task


def _trace(index: int, record: list[Any], decoder: TvmDecoder | None, where: str) -> str:
    if decoder is not None and decoder.enabled:
        text = decoder.trace(index, record, where)
        if text is not None:
            return text
    try:
        return trace_text(record[0])
    except ValueError as exc:
        return f"(trace not readable: {exc})\n{json.dumps(record[0])[:2000]}"
