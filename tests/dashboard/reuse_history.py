"""A small made-up history of tuning reuse: a cold job, a warm-started job of the same model
and a reuse-only job, with the ``reused=`` task details the tuner writes. Nothing measured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collectors._base import BaseStore
from collectors.events import JobEvent, RecordEvent, TaskEvent
from collectors.reuse import ReusedSchedule
from collectors.sink import EventSink

T0 = 1_700_000_000.0
MOBILENET = "zoo:mobilenet/fused_conv2d_add_relu"
RESNET = "zoo:resnet/dense"


@dataclass(frozen=True)
class Job:
    """What one job of the history measures: per task, latencies in ms (None: failed), one a
    second from ``start``, and the reused schedules by candidate."""

    job: str
    start: float
    latencies: dict[str, Sequence[float | None]]
    reused: dict[str, Sequence[ReusedSchedule]]


COLD = Job(
    "job-1", 0.0,
    {"conv": [5.0, 4.0, 3.0, 2.5, 2.0], "dense": [8.0, 6.0, None, 4.0]},
    {},
)  # fmt: skip
WARM = Job(
    "job-2", 100.0,
    {"conv": [2.2, None, 2.4, 1.9], "dense": [3.0, 3.5, 3.0, 3.2]},
    {
        "conv": [ReusedSchedule(0, MOBILENET, "replay"),
                 ReusedSchedule(1, MOBILENET, "anchor-transfer", refitted=True)],
        "dense": [ReusedSchedule(0, RESNET, "replay")],
    },
)  # fmt: skip
ONLY = Job(
    "job-3", 200.0,
    {"conv": [2.1, 2.6], "dense": [4.5, 9.0]},
    {
        "conv": [ReusedSchedule(0, MOBILENET, "replay"), ReusedSchedule(1, "", "untuned")],
        "dense": [ReusedSchedule(0, RESNET, "replay"), ReusedSchedule(1, "", "untuned")],
    },
)  # fmt: skip


def emit_job(sink: EventSink, spec: Job, *, records: bool = True, tasks: bool = True) -> None:
    """The job's submission and task events (with ``reused=`` lines), then its records."""
    ts = T0 + spec.start
    if tasks:
        sink.emit(JobEvent, ts=ts, job=spec.job, change="submitted", name="mobilenet",
                  target="llvm", tasks=tuple(spec.latencies))  # fmt: skip
        for task in spec.latencies:
            lines = ["spec=" + task, *(r.detail_line() for r in spec.reused.get(task, ()))]
            sink.emit(TaskEvent, ts=ts, job=spec.job, task=task, op=task, weight=2.0,
                      flops=1e6, detail="\n".join(lines))  # fmt: skip
    if not records:
        return
    for task, values in spec.latencies.items():
        for candidate, ms in enumerate(values):
            common = {"ts": ts + 1.0 + candidate, "job": spec.job, "task": task,
                      "candidate": candidate, "origin": "metaschedule", "trace": "[]"}  # fmt: skip
            if ms is None:
                sink.emit(RecordEvent, error="made-up failure", error_class="run", **common)
            else:
                sink.emit(RecordEvent, run_secs=(ms / 1000,), **common)


def reuse_history(store: BaseStore, jobs: Sequence[Job] = (COLD, WARM, ONLY)) -> None:
    """Write the jobs into ``store``."""
    sink = EventSink(store, source="reuse-history")
    for spec in jobs:
        emit_job(sink, spec)
