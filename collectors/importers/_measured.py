"""Events from logs of timestamped measurements (AutoTVM, Ansor), shared by both importers.

A format module parses each line into a ``Measurement`` and describes each new workload with a
``WorkloadInfo``; ``measured_log_events`` turns them into job, task, record and reconstructed
stage events, one line at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from collectors.events import Event, JobEvent, RecordEvent, StageEvent, TaskEvent
from collectors.importers._common import (
    BadLine,
    ImportContext,
    UniqueNames,
    as_float_list,
    iter_json_lines,
    measure_error,
    parse_json,
)
from collectors.importers.timeline import Batch, BatchTimeline, imported_resource


@dataclass(slots=True)
class Measurement:
    """One measured candidate as read from a log line."""

    line: int
    key: str
    target: str | None
    costs: object
    error_no: int
    all_cost: float | None
    ts: float
    trace: str


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What a task event says about a workload."""

    name: str
    op: str
    workload_hash: str
    shapes: tuple[tuple[int, ...], ...] = ()
    dtype: str | None = None
    flops: float | None = None
    detail: str | None = None


def json_line_measurements(
    ctx: ImportContext,
    looks_like: Callable[[object], bool],
    measurement: Callable[[int, dict], Measurement],
    not_this_format: str,
) -> Iterator[Measurement]:
    """Measurements of a JSON-lines log; a line that is not one is counted as bad, not fatal.

    ``not_this_format`` is the reason given for a JSON line of another shape.
    """
    for number, text in iter_json_lines(ctx.path):
        try:
            obj = parse_json(text)
            if not looks_like(obj):
                raise BadLine(not_this_format)
            item = measurement(number, obj)
        except BadLine as exc:
            ctx.bad_line(number, str(exc))
            continue
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            ctx.bad_line(number, f"unexpected structure ({type(exc).__name__}: {exc})"[:200])
            continue
        yield item


def measured_log_events(
    ctx: ImportContext,
    label: str,
    measurements: Iterator[Measurement],
    describe: Callable[[Measurement, UniqueNames], WorkloadInfo],
) -> Iterator[Event]:
    """Job, task, record and stage events for a stream of measurements.

    ``label`` names the tool in the job's detail ("AutoTVM log"). Costs of a measurement
    without error that are not a list of finite numbers make its line a bad line.
    """
    names = UniqueNames()
    hashes: dict[str, str] = {}
    counts: dict[str, int] = {}
    timeline = BatchTimeline(ctx.gap_s)
    target: str | None = None
    first_ts: float | None = None
    last_ts: float | None = None
    records = 0
    for m in measurements:
        run_secs: tuple[float, ...] | None = None
        error = error_class = None
        if m.error_no == 0:
            costs = as_float_list(m.costs)
            if costs is None:
                ctx.bad_line(m.line, "measurement without error has no list of finite costs")
                continue
            run_secs = tuple(costs)
        else:
            error, error_class = measure_error(m.error_no)
        if first_ts is None:
            first_ts = m.ts
            target = m.target
            yield JobEvent(
                source=ctx.source,
                seq=ctx.next_seq(),
                ts=m.ts,
                job=ctx.job,
                change="submitted",
                target=target,
                name=ctx.path.name,
                detail=_detail(ctx, label),
            )
        task = names.get(m.key)
        if task is None:
            info = describe(m, names)
            task = info.name
            hashes[m.key] = info.workload_hash
            yield TaskEvent(
                source=ctx.source,
                seq=ctx.next_seq(),
                ts=m.ts,
                job=ctx.job,
                task=task,
                op=info.op,
                shapes=info.shapes,
                dtype=info.dtype,
                flops=info.flops,
                workload_hash=info.workload_hash,
                detail=info.detail,
            )
        iteration, closed = timeline.add(task, m.ts, m.all_cost)
        if closed is not None:
            yield _stage(ctx, closed)
        candidate = counts.get(m.key, 0)
        counts[m.key] = candidate + 1
        records += 1
        last_ts = m.ts if last_ts is None else max(last_ts, m.ts)
        yield RecordEvent(
            source=ctx.source,
            seq=ctx.next_seq(),
            ts=m.ts,
            job=ctx.job,
            task=task,
            candidate=candidate,
            iteration=iteration,
            workload_hash=hashes[m.key],
            trace=m.trace,
            run_secs=run_secs,
            error=error,
            error_class=error_class,
        )
    closed = timeline.finish()
    if closed is not None:
        yield _stage(ctx, closed)
    if first_ts is not None and last_ts is not None:
        yield JobEvent(
            source=ctx.source,
            seq=ctx.next_seq(),
            ts=last_ts,
            job=ctx.job,
            change="finished",
            target=target,
            name=ctx.path.name,
            trials=records,
            tasks=tuple(names.names()),
            detail=_detail(ctx, label),
        )


def _detail(ctx: ImportContext, label: str) -> str:
    return (
        f"imported from {label} {ctx.path}; timeline reconstructed from timestamps and "
        f"all_cost (batches split at gaps over {ctx.gap_s:g} s; build and run not separated)"
    )


def _stage(ctx: ImportContext, batch: Batch) -> StageEvent:
    return StageEvent(
        source=ctx.source,
        seq=ctx.next_seq(),
        ts=batch.end,
        job=ctx.job,
        task=batch.task,
        iteration=batch.iteration,
        stage="profile",
        resource=imported_resource(ctx.source),
        start=batch.start,
        end=batch.end,
        status="ok",
        candidates=batch.count,
    )
