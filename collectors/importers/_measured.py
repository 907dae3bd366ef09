"""Events from logs of timestamped measurements (AutoTVM, Ansor), shared by both importers.

A format module parses each line into a ``Measurement`` and describes each new workload with a
``WorkloadInfo``; ``measured_log_events`` turns them into job, task, record and reconstructed
stage events, one line at a time.

Record and stage events, one or more per line, are built without re-validation
(``trusted_constructor``; records by ``ImportContext.record``): every value is checked here
or built from checked values (finite timestamps and costs, counters, names already
validated in a task event). A line whose values could not make valid events (text with a
lone surrogate, a timestamp out of range, integers beyond 64 bits in a workload) is counted
as bad; it never stops the import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from collectors.events import (
    Event,
    EventError,
    JobEvent,
    StageEvent,
    TaskEvent,
    mean_secs_of,
    trusted_constructor,
)
from collectors.importers import parallel
from collectors.importers._common import (
    BadLine,
    ImportContext,
    UniqueNames,
    as_float_tuple,
    display_path,
    is_text,
    iter_json_lines,
    measure_error,
)
from collectors.importers._lines import LineFormat, Measurement
from collectors.importers.timeline import Batch, BatchTimeline, imported_resource
from collectors.record_fields import DEFAULT_CLOCK

_stage = trusted_constructor(StageEvent)
_isfinite = math.isfinite


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What a task event says about a workload; ``name`` is the wanted task name (made
    unique when it is taken)."""

    name: str
    op: str
    workload_hash: str
    shapes: tuple[tuple[int, ...], ...] = ()
    dtype: str | None = None
    flops: float | None = None
    detail: str | None = None


def json_line_measurements(
    ctx: ImportContext, lines: LineFormat
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(line number, measurement) of a JSON-lines log; a line that is not one is counted as
    bad, not fatal. A big file is parsed by worker processes when ``ctx.workers`` allows
    (``parallel``): the same results, their fields as a plain tuple."""
    workers = parallel.worker_count(ctx.path, ctx.workers)
    if workers:
        yield from parallel.measurements(ctx, lines.name, workers)
        return
    quick, measure = lines.quick, lines.measure
    for number, text in iter_json_lines(ctx.path, ctx.bad_line):
        item = None if quick is None else quick(text)
        if item is None:
            try:
                item = measure(text)
            except BadLine as exc:
                ctx.bad_line(number, str(exc))
                continue
        yield number, item


def measured_log_events(
    ctx: ImportContext,
    label: str,
    origin: str,
    measurements: Iterator[tuple[int, tuple[Any, ...]]],
    describe: Callable[[Measurement], WorkloadInfo],
) -> Iterator[Event]:
    """Job, task, record and stage events for a stream of measurements.

    ``label`` names the tool in the job's detail ("AutoTVM log"); ``origin`` is every
    record's origin. Costs of a measurement without error that are not a list of finite
    numbers make its line a bad line.
    """
    names = UniqueNames()
    hashes: dict[str, str] = {}
    tasks: dict[str, str] = {}
    counts: dict[str, int] = {}
    timeline = BatchTimeline(ctx.gap_s)
    source, job = ctx.source, ctx.job
    resource = imported_resource(source)
    detail = _detail(ctx, label)
    file_name = display_path(ctx.path.name)
    next_seq, record = ctx.next_seq, ctx.record
    target: str | None = None
    first_ts: float | None = None
    last_ts = -math.inf
    records = 0
    for line, m in measurements:
        key, line_target, costs, error_no, all_cost, ts, trace = m
        if error_no == 0:
            run_secs = costs if type(costs) is tuple else as_float_tuple(costs)
            if run_secs is None:
                ctx.bad_line(line, "measurement without error has no list of finite costs")
                continue
            error = error_class = None
            mean = mean_secs_of(run_secs)
        else:
            run_secs = mean = None
            error, error_class = measure_error(error_no)
        if all_cost is not None and all_cost > 0 and not _isfinite(ts - all_cost):
            ctx.bad_line(line, "timestamp minus all_cost is out of range")
            continue
        if not trace.isascii() and not is_text(trace):
            ctx.bad_line(line, "schedule text is not valid UTF-8 (a lone surrogate)")
            continue
        if first_ts is None:
            try:
                submitted = JobEvent(
                    source=source, seq=ctx.peek_seq(), ts=ts, job=job, change="submitted",
                    target=line_target, name=file_name, detail=detail,
                )  # fmt: skip
            except EventError as exc:
                ctx.bad_line(line, f"cannot describe the job: {exc}")
                continue
            next_seq()
            first_ts, target, last_ts = ts, line_target, ts
            yield submitted
        task = tasks.get(key)
        if task is None:
            try:
                info = describe(m if type(m) is Measurement else Measurement(*m))
                name = names.available(info.name)
                task_event = TaskEvent(
                    source=source, seq=ctx.peek_seq(), ts=ts, job=job, task=name, op=info.op,
                    shapes=info.shapes, dtype=info.dtype, flops=info.flops,
                    workload_hash=info.workload_hash, detail=info.detail,
                )  # fmt: skip
            except ValueError as exc:  # EventError, BadLine, UnicodeEncodeError
                ctx.bad_line(line, f"cannot describe the workload: {exc}"[:200])
                continue
            next_seq()
            task = tasks[key] = names.add(key, name)
            hashes[key] = info.workload_hash
            yield task_event
        iteration, closed = timeline.add(task, ts, all_cost)
        if closed is not None:
            yield _stage_event(source, next_seq(), job, resource, closed)
        candidate = counts.get(key, 0)
        counts[key] = candidate + 1
        records += 1
        if ts > last_ts:
            last_ts = ts
        yield record(
            source, next_seq(), ts, DEFAULT_CLOCK, job, task, iteration, candidate, hashes[key],
            error, error_class, None, origin, run_secs, trace, mean,
        )  # fmt: skip
    closed = timeline.finish()
    if closed is not None:
        yield _stage_event(source, next_seq(), job, resource, closed)
    if first_ts is not None:
        yield JobEvent(
            source=source, seq=next_seq(), ts=last_ts, job=job, change="finished",
            target=target, name=file_name, trials=records, tasks=tuple(names.names()),
            detail=detail,
        )  # fmt: skip


def _detail(ctx: ImportContext, label: str) -> str:
    return (
        f"imported from {label} {display_path(ctx.path)}; timeline reconstructed from "
        f"timestamps and all_cost (batches split at gaps over {ctx.gap_s:g} s; build and run "
        "not separated)"
    )


def _stage_event(source: str, seq: int, job: str, resource: str, batch: Batch) -> StageEvent:
    return _stage(
        source=source, seq=seq, ts=batch.end, job=job, task=batch.task,
        iteration=batch.iteration, stage="profile", resource=resource, start=batch.start,
        end=batch.end, status="ok", candidates=batch.count,
    )  # fmt: skip
