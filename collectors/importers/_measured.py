"""Events from logs of timestamped measurements (AutoTVM, Ansor), shared by both importers.

A format module parses each line into a ``Measurement`` and describes each new workload with a
``WorkloadInfo``; ``measured_log_events`` turns them into job, task, record and reconstructed
stage events, one line at a time: one job per target the log names (targets written with
their options in another order are one target).

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
from dataclasses import dataclass, field
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


# Distinct targets one log may hold (one job each); lines of any further target are bad.
MAX_TARGETS = 256


@dataclass(slots=True)
class _TargetJob:
    """The job of one target of a log: its tasks, counters and reconstructed timeline."""

    job: str
    target: str | None
    resource: str
    timeline: BatchTimeline
    names: UniqueNames = field(default_factory=UniqueNames)
    tasks: dict[str, str] = field(default_factory=dict)  # workload key -> task name
    hashes: dict[str, str] = field(default_factory=dict)  # workload key -> workload hash
    counts: dict[str, int] = field(default_factory=dict)  # workload key -> candidates
    last_ts: float = -math.inf
    records: int = 0


def shown_target(target: str | None) -> str | None:
    """A log's target string as shown: whitespace runs collapsed, none at the ends."""
    return None if target is None else " ".join(target.split())


def same_target_key(target: str | None) -> str | None:
    """What two target strings share when they name one target: the kind, then the
    options sorted (``opencl -model=rk3399 -device=mali`` is ``opencl -device=mali
    -model=rk3399``)."""
    if target is None:
        return None
    kind, *options = target.split() or [""]
    return " ".join([kind, *sorted(options)])


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
    numbers make its line a bad line. Each target of the log is one job (tophub's packages
    hold one workload tuned on several devices): the first keeps ``ctx.job``, the n-th is
    ``<ctx.job>-t<n>`` on its own imported device; with several, job names say the target.
    """
    by_target: dict[str | None, _TargetJob] = {}  # by ``same_target_key``
    by_text: dict[str | None, _TargetJob] = {}  # the same, by the target as written
    detail = _detail(ctx, label)
    file_name = display_path(ctx.path.name)
    next_seq, record = ctx.next_seq, ctx.record
    source = ctx.source
    current_text: Any = _NO_TARGET
    job: _TargetJob | None = None
    # The current job's id, tables and timeline, bound when the target changes.
    job_id = ""
    tasks: dict[str, str] = {}
    counts: dict[str, int] = {}
    hashes: dict[str, str] = {}
    add_to_timeline = BatchTimeline(ctx.gap_s).add
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
        if line_target is not current_text and line_target != current_text:
            found = by_text.get(line_target)
            if found is None:
                try:
                    found, submitted = _job_of(ctx, by_target, line_target, ts, file_name, detail)
                except (EventError, BadLine) as exc:
                    ctx.bad_line(line, f"cannot describe the job: {exc}"[:200])
                    continue
                if submitted is not None:
                    next_seq()
                    yield submitted
                if len(by_text) < 4 * MAX_TARGETS:
                    by_text[line_target] = found
            current_text, job = line_target, found
            job_id, tasks, counts, hashes = job.job, job.tasks, job.counts, job.hashes
            add_to_timeline = job.timeline.add
        assert job is not None
        task = tasks.get(key)
        if task is None:
            try:
                task_event = _task_event(ctx, job, m, ts, describe)
            except ValueError as exc:  # EventError, BadLine, UnicodeEncodeError
                ctx.bad_line(line, f"cannot describe the workload: {exc}"[:200])
                continue
            task = task_event.task
            yield task_event
        iteration, closed = add_to_timeline(task, ts, all_cost)
        if closed is not None:
            yield _stage_event(ctx.source, next_seq(), job_id, job.resource, closed)
        candidate = counts.get(key, 0)
        counts[key] = candidate + 1
        job.records += 1
        if ts > job.last_ts:
            job.last_ts = ts
        yield record(
            source, next_seq(), ts, DEFAULT_CLOCK, job_id, task, iteration, candidate,
            hashes[key], error, error_class, None, origin, run_secs, trace, mean,
        )  # fmt: skip
    yield from _finish(ctx, list(by_target.values()), file_name, detail)


_NO_TARGET = object()  # no line read yet


def _job_of(
    ctx: ImportContext,
    by_target: dict[str | None, _TargetJob],
    target: str | None,
    ts: float,
    file_name: str,
    detail: str,
) -> tuple[_TargetJob, JobEvent | None]:
    """The job of ``target`` and, when it is new, its "submitted" event (at the seq
    ``ctx`` gives next, not yet taken). Raises EventError when the event is invalid and
    BadLine when the log already has ``MAX_TARGETS`` targets."""
    same = same_target_key(target)
    found = by_target.get(same)
    if found is not None:
        return found, None
    if len(by_target) >= MAX_TARGETS:
        raise BadLine(f"more than {MAX_TARGETS} targets in one log")
    n = len(by_target)
    shown = shown_target(target)
    found = _TargetJob(
        job=ctx.job if n == 0 else f"{ctx.job}-t{n + 1}",
        target=shown,
        resource=imported_resource(ctx.source, n),
        timeline=BatchTimeline(ctx.gap_s),
        last_ts=ts,
    )
    name = file_name if n == 0 else f"{file_name} [{shown}]"
    submitted = JobEvent(
        source=ctx.source, seq=ctx.peek_seq(), ts=ts, job=found.job, change="submitted",
        target=shown, name=name, detail=detail,
    )  # fmt: skip
    by_target[same] = found
    return found, submitted


def _task_event(
    ctx: ImportContext,
    job: _TargetJob,
    m: tuple[Any, ...],
    ts: float,
    describe: Callable[[Measurement], WorkloadInfo],
) -> TaskEvent:
    """The task event of a workload new to ``job``, its name reserved and seq taken;
    raises ValueError when the workload cannot make a valid event."""
    info = describe(m if type(m) is Measurement else Measurement(*m))
    name = job.names.available(info.name)
    event = TaskEvent(
        source=ctx.source, seq=ctx.peek_seq(), ts=ts, job=job.job, task=name, op=info.op,
        shapes=info.shapes, dtype=info.dtype, flops=info.flops,
        workload_hash=info.workload_hash, detail=info.detail,
    )  # fmt: skip
    ctx.next_seq()
    key = m[0]
    job.tasks[key] = job.names.add(key, name)
    job.hashes[key] = info.workload_hash
    return event


def _finish(
    ctx: ImportContext, found: list[_TargetJob], file_name: str, detail: str
) -> Iterator[Event]:
    """Each job's last stage and its "finished" event (named by target when the log has
    several)."""
    several = len(found) > 1
    if several:
        detail += f"\nthe log holds {len(found)} targets: one job each"
    for job in found:
        closed = job.timeline.finish()
        if closed is not None:
            yield _stage_event(ctx.source, ctx.next_seq(), job.job, job.resource, closed)
    for job in found:
        yield JobEvent(
            source=ctx.source, seq=ctx.next_seq(), ts=job.last_ts, job=job.job,
            change="finished", target=job.target,
            name=f"{file_name} [{job.target}]" if several else file_name,
            trials=job.records, tasks=tuple(job.names.names()), detail=detail,
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
