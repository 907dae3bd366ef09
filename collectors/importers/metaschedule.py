"""MetaSchedule JSON databases to events.

A database is two JSON-lines files side by side: ``database_workload.json`` with
``[structural hash, base64 IRModule]`` per line and ``database_tuning_record.json`` with
``[workload index, [trace, run_secs, target, args_info]]`` per line (``ms_database``). It has no
timestamps: records keep their file order and every event's ``ts`` is the record file's
modification time (the job's detail says so). No timeline is reconstructed.

A record's trace is kept exactly as the database writes it: MetaSchedule's JSON form
(``[instructions, decisions]``, origin ``"metaschedule"``), the form tuneloom's own tuner
records, which a viewer replays with TVM or renders as text (``ms_trace.trace_text``) when it
shows one record. Rendering every trace at import took six times as long as everything else
the import does. Record lines in the usual layout are read in one pass that keeps the
trace's text as it is: after a workload's first record, by msgspec without building the
trace (``_msgspec_record``, ~4x faster); any other layout is decoded as a whole.

Counts and latencies need only JSON. With TVM installed (and ``use_tvm``), tasks also carry
the workload's TVMScript (in ``detail``) and FLOPs, decoded in a worker process (``ms_tvm``)
so that a workload TVM crashes on cannot take the import down. Job details carry
``metaschedule_database=<dir>``, which the best-record export reads.

Failed measurements are stored by MetaSchedule with a run time of 1e10 s (or none); they are
imported as errors of class "other", since the database keeps no error message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from collectors.events import (
    Event,
    EventError,
    JobEvent,
    TaskEvent,
    mean_secs_of,
)
from collectors.importers import parallel
from collectors.importers._common import (
    BadLine,
    ImportContext,
    UniqueNames,
    display_path,
    is_text,
    iter_json_lines,
    parse_json,
    scan_json,
    shape_text,
)
from collectors.importers.ms_database import (
    FAILED_AT,
    DatabasePaths,
    database_detail,
    looks_like_record,
    looks_like_workload,
    run_secs_of,
)
from collectors.importers.ms_targets import target_text
from collectors.importers.ms_trace import args_info_shapes, trace_text, workload_names
from collectors.importers.ms_tvm import TvmDecoder
from collectors.record_fields import DEFAULT_CLOCK

_WORKLOAD_START = re.compile(rb'^\[\s*"\d+"\s*,\s*"')
FAILED_ERROR = "no run time (MetaSchedule stores 1e10 s for a failed build or run)"
ORIGIN = "metaschedule"  # the origin of every imported record: its trace is MetaSchedule JSON

_NAN = float("nan")
_FAILED_AT = FAILED_AT


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
        f"imported from MetaSchedule database {display_path(paths.directory.resolve())}; no "
        f"timestamps: records in file order (ts is the record file's modification time)\n"
        f"{display_path(database_detail(paths.directory))}"
    )
    name = display_path(paths.directory.name)
    names = UniqueNames()
    counts: dict[int, int] = {}
    target: str | None = None
    started = False
    records = 0
    source, job, make_record = ctx.source, ctx.job, ctx.record
    tasks: dict[int, tuple[str, dict[str, Any]]] = {}  # workload index -> (task, info)
    for number, item in _record_lines(ctx, paths.record):
        if type(item) is str:
            text, quick = item, _msgspec_record(item)
        else:  # read by a worker
            text, quick = "", item[:3]
        if quick is not None and (known := tasks.get(quick[0])) is not None:
            # The usual line of a workload seen before: only its run times and trace.
            index, run_secs, trace = quick
            task, info = known
            candidate = counts[index]
            counts[index] = candidate + 1
            records += 1
            yield make_record(
                source, ctx.next_seq(), ts, DEFAULT_CLOCK, job, task, None, candidate,
                info["hash"], None if run_secs else FAILED_ERROR,
                None if run_secs else "other", None, ORIGIN, run_secs, trace,
                mean_secs_of(run_secs),
            )  # fmt: skip
            continue
        if not text:
            text = _whole_line(item)
        try:
            index, record, trace = _parse_record(text)
        except BadLine as exc:
            ctx.bad_line(number, str(exc), file=paths.record)
            continue
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
            if target is not None and not is_text(target):
                target = None
            yield JobEvent(
                source=source, seq=ctx.next_seq(), ts=ts, job=job, change="submitted",
                target=target, name=name, detail=detail,
            )  # fmt: skip
        task = names.get(str(index))
        if task is None:
            try:
                task_event = _task_event(ctx, ts, names, str(index), info, record)
            except EventError as exc:
                ctx.bad_line(
                    number, f"cannot describe the workload: {exc}"[:200], file=paths.record
                )
                continue
            task = task_event.task
            tasks[index] = task, info
            yield task_event
        candidate = counts.get(index, 0)
        counts[index] = candidate + 1
        records += 1
        run_secs = run_secs_of(record[1])
        yield make_record(
            source, ctx.next_seq(), ts, DEFAULT_CLOCK, job, task, None, candidate, info["hash"],
            None if run_secs else FAILED_ERROR, None if run_secs else "other", None, ORIGIN,
            run_secs, trace, mean_secs_of(run_secs),
        )  # fmt: skip
    if started:
        yield JobEvent(
            source=source, seq=ctx.next_seq(), ts=ts, job=job, change="finished",
            target=target, name=name, trials=records, tasks=tuple(names.names()),
            detail=detail,
        )  # fmt: skip


def _record_lines(ctx: ImportContext, path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, the line's text or ``worker_reading`` of it) of the record file, read
    by worker processes when ``ctx.workers`` asks for them or, when None, a big file and an
    idle core call for one (``parallel``), as AutoTVM and Ansor logs are."""
    report = _bad_line_in(ctx, path)
    workers = parallel.worker_count(path, ctx.workers)
    if workers:
        return parallel.read_lines(path, "metaschedule", workers, report)
    return iter_json_lines(path, report)


def worker_reading(text: str) -> str | tuple[Any, ...]:
    """A record line as a worker process hands it over: ``_msgspec_record``'s (index, run
    times, trace) followed by the text before and after the trace, or the text itself when
    the line is not in the usual layout."""
    found = _usual_record(text)
    if found is None:
        return text
    index, run_secs, trace, start = found
    return index, run_secs, trace, text[:start], text[start + len(trace) :]


def _whole_line(item: tuple[Any, ...]) -> str:
    """The text of a line that ``worker_reading`` split."""
    return f"{item[3]}{item[2]}{item[4]}"


def render_trace(trace: str) -> str:
    """A record's trace (MetaSchedule's JSON form, as stored) as ``Trace.as_python``-style
    lines, without TVM. Raises ValueError when it is not such a trace."""
    try:
        value = json.loads(trace)
    except json.JSONDecodeError as exc:
        raise ValueError(f"trace is not valid JSON ({exc.msg})") from None
    return trace_text(value)


# The usual layout of a record line, read piece by piece: [INDEX, [TRACE, RUN_SECS, ...]]
_RECORD_HEAD = re.compile(r"\[[ \t]*(-?(?:0|[1-9][0-9]*))[ \t]*,[ \t]*\[[ \t]*")
_COMMA = re.compile(r"[ \t]*,[ \t]*")
_RECORD_END = re.compile(r"[ \t]*\][ \t]*\]")


def _parse_record(text: str) -> tuple[int, list[Any], str]:
    """(workload index, record, trace text) of a record line; raises BadLine saying why
    it is not one."""
    parts = _fast_record(text)
    if parts is None:
        obj = parse_json(text)
        if not looks_like_record(obj):
            raise BadLine("not a tuning record [workload index, [trace, run_secs, ...]]")
        index, record = obj
        parts = index, record, json.dumps(record[0], separators=(",", ":"))
    return parts


class _UsualRecord(msgspec.Struct, array_like=True, gc=False):
    """A record as MetaSchedule writes it: ``[trace, run_secs, target, args_info]``, the
    trace kept as the JSON text written, the run times decoded as numbers in C."""

    trace: msgspec.Raw
    run_secs: list[float]
    target: msgspec.Raw = msgspec.Raw(b"null")
    args_info: msgspec.Raw = msgspec.Raw(b"null")


# [INDEX, [TRACE, RUN_SECS, ...]]: the usual record, or its items kept as the JSON text.
_DECODE_USUAL = msgspec.json.Decoder(tuple[int, _UsualRecord]).decode
_DECODE_RECORD = msgspec.json.Decoder(tuple[int, tuple[msgspec.Raw, ...]]).decode
_DECODE_ANY = msgspec.json.Decoder().decode


def _msgspec_record(text: str) -> tuple[int, tuple[float, ...] | None, str] | None:
    """(workload index, run times, trace text as written) of a record line in the usual
    layout, decoded by msgspec in C without building the trace; None for any other line or
    any doubt. Where it answers, ``_parse_record`` gives the same index, trace and
    ``run_secs_of(record[1])``."""
    found = _usual_record(text)
    return None if found is None else found[:3]


def _usual_record(text: str) -> tuple[int, tuple[float, ...] | None, str, int] | None:
    """``_msgspec_record``'s answer and where the trace starts in ``text``."""
    if (m := _RECORD_HEAD.match(text)) is None:
        return None
    try:
        index, usual = _DECODE_USUAL(text)
    except (msgspec.MsgspecError, RecursionError):
        usual = None
    if usual is not None:
        raw, secs = usual.trace, usual.run_secs
        # ``run_secs_of``: a finite mean means every time is finite; anything else is left
        # to the general reading.
        mean = sum(secs) / len(secs) if secs else _NAN
        if mean - mean != 0.0:
            return None
        run_secs = None if mean >= _FAILED_AT else tuple(secs)
    else:
        try:
            index, items = _DECODE_RECORD(text)
            if len(items) < 2:
                return None
            run_secs = run_secs_of(_DECODE_ANY(items[1]))
        except (msgspec.MsgspecError, RecursionError):
            return None
        raw = items[0]
    start = m.end()
    if text[start : start + 1] != "[":
        return None
    if text.isascii():  # the trace's text starts there, as many characters as bytes
        return index, run_secs, text[start : start + len(raw)], start
    trace = str(raw, "utf-8")
    if not text.startswith(trace, start):
        return None
    return index, run_secs, trace, start


def _fast_record(text: str) -> tuple[int, list[Any], str] | None:
    """(workload index, record, trace text as written) of a record line in the usual
    layout; None for any other line (read by the general path, which explains errors)."""
    if (m := _RECORD_HEAD.match(text)) is None:
        return None
    try:
        start = m.end()
        trace, at = scan_json(text, start)
        raw = text[start:at]
        record = [trace]
        while (c := _COMMA.match(text, at)) is not None:
            value, at = scan_json(text, c.end())
            record.append(value)
    except (StopIteration, ValueError, RecursionError):
        return None
    end = _RECORD_END.match(text, at)
    if end is None or end.end() != len(text) or len(record) < 2 or type(trace) is not list:
        return None
    return int(m.group(1)), record, raw


def _bad_line_in(ctx: ImportContext, path: Path) -> Callable[[int, str], None]:
    def report(number: int, reason: str) -> None:
        ctx.bad_line(number, reason, file=path)

    return report


def _task_event(
    ctx: ImportContext,
    ts: float,
    names: UniqueNames,
    key: str,
    info: dict[str, Any],
    record: list[Any],
) -> TaskEvent:
    """The task event of a workload seen for the first time (its name is reserved only when
    the event is valid; raises EventError otherwise)."""
    shapes, dtype = args_info_shapes(record[3] if len(record) > 3 else None)
    name = names.available(f"{info['op']}({', '.join(shape_text(s) for s in shapes)})")
    detail = f"structural hash {info['hash']}"
    if info.get("script"):
        detail += f"\n{info['script']}"
    elif "decode_error" in info:
        detail += f"\nTVM could not decode the workload: {info['decode_error']}"
    event = TaskEvent(
        source=ctx.source,
        seq=ctx.peek_seq(),
        ts=ts,
        job=ctx.job,
        task=name,
        op=info["op"],
        shapes=shapes,
        dtype=dtype,
        flops=info.get("flops"),
        workload_hash=info["hash"],
        detail=detail,
    )
    ctx.next_seq()
    names.add(key, name)
    return event
