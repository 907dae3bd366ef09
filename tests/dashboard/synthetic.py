"""A synthetic multi-job tuning history for dashboard tests and screenshots.

Everything here is made up (labelled ``origin="synthetic"``): wall-clock-looking stages of a
few jobs sharing one client and two devices, records whose latencies improve over the
iterations with a few failed candidates, task events with weights and FLOPs. Nothing is
measured.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from collectors._base import BaseStore
from collectors.events import JobEvent, RecordEvent, StageEvent, TaskEvent
from collectors.sink import EventSink

START = 1_700_000_000.0
STAGE_MEANS = {"select": 0.9, "build": 1.2, "profile": 1.6, "update": 0.15}


@dataclass
class History:
    """What ``synthetic_history`` wrote."""

    jobs: list[str] = field(default_factory=list)
    tasks: dict[str, list[str]] = field(default_factory=dict)
    stages: int = 0
    records: int = 0
    errors: int = 0


def synthetic_history(
    store: BaseStore,
    *,
    jobs: int = 3,
    tasks: int = 3,
    iterations: int = 4,
    candidates: int = 8,
    devices: int = 2,
    seed: int = 0,
    source: str | None = None,
) -> History:
    """Write a synthetic wall-clock history of ``jobs`` jobs into ``store``."""
    rng = random.Random(seed)
    sink = EventSink(store, source=source or f"synthetic-{seed}")
    out = History()
    free = {"client:0": START}
    free.update({f"device:llvm:{d}": START for d in range(devices)})
    names = [f"j{j + 1}-syn{seed}" for j in range(jobs)]
    ops = ["matmul:64", "dense:1x256x128", "conv2d:1x3x32x32,8x3x3,pad=1", "matmul:128"]
    job_tasks = {
        job: [ops[(j + t) % len(ops)] for t in range(tasks)] for j, job in enumerate(names)
    }
    ready = dict.fromkeys(names, START)
    for j, job in enumerate(names):
        sink.emit(
            JobEvent, ts=START + j * 0.5, job=job, change="submitted", name=f"model-{j + 1}",
            target="llvm", policy="interleaved", trials=tasks * iterations * candidates,
            tasks=tuple(job_tasks[job]), priority=j % 2, model=f"model-{j + 1}.onnx",
        )  # fmt: skip
        for t, task in enumerate(job_tasks[job]):
            sink.emit(
                TaskEvent, ts=START + j * 0.5, job=job, task=task, op=task.split(":")[0],
                weight=float(1 + t), flops=2.0 * 64**3 * (t + 1),
            )  # fmt: skip
        sink.emit(JobEvent, ts=START + j * 0.5 + 0.1, job=job, change="started")
        out.jobs.append(job)
        out.tasks[job] = job_tasks[job]
    best = {(job, task): 3.0 + rng.random() for job in names for task in job_tasks[job]}
    for it in range(iterations):
        for job in names:
            for task in job_tasks[job]:
                for stage in ("select", "build", "profile", "update"):
                    if stage == "profile":
                        resource = min((r for r in free if r.startswith("device")), key=free.get)
                    else:
                        resource = "client:0"
                    start = max(free[resource], ready[job])
                    end = start + STAGE_MEANS[stage] * rng.uniform(0.6, 1.4)
                    failed = stage == "build" and rng.random() < 0.05
                    sink.emit(
                        StageEvent, ts=end, job=job, task=task, iteration=it, stage=stage,
                        resource=resource, start=start, end=end, candidates=candidates,
                        status="error" if failed else "ok",
                        error="synthetic build failure" if failed else None,
                    )  # fmt: skip
                    free[resource] = ready[job] = end
                    out.stages += 1
                    if stage == "update":
                        _records(sink, rng, out, job, task, it, candidates, end, best)
    for job in names:
        sink.emit(JobEvent, ts=ready[job], job=job, change="finished")
    return out


def _records(sink, rng, out, job, task, it, candidates, ts, best) -> None:
    for c in range(candidates):
        common = {
            "ts": ts, "job": job, "task": task, "iteration": it, "candidate": it * candidates + c,
            "origin": "synthetic", "predicted": round(rng.random(), 4),
            "trace": f"# synthetic trace\nsch.split(l{c % 3}, [None, {2 ** (c % 5 + 1)}])\n"
                     f"sch.vectorize(l{c % 4})",
        }  # fmt: skip
        out.records += 1
        if rng.random() < 0.08:
            out.errors += 1
            sink.emit(RecordEvent, error="synthetic run error", error_class="run", **common)
            continue
        ms = best[(job, task)] * (0.6 + 0.4 * 0.7**it) * rng.uniform(0.9, 1.6)
        sink.emit(RecordEvent, run_secs=(ms / 1000, ms / 1000 * 1.01), **common)
