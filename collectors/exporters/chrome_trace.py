"""Stage events as a Chrome trace (JSON object format; opens in Perfetto and chrome://tracing).

Layout: one process per resource pool (``device:llvm``, ``client``, ``device:rpc:<key>``), one
thread per resource (``device:llvm:0``), one complete event (``"ph": "X"``, microseconds) per
stage. Events are named ``<job> <stage>`` so Perfetto colours each job apart, and carry the job
as ``cat`` plus a per-job ``cname`` for chrome://tracing; ``args`` hold job, task, iteration,
stage, status, candidates and error. The file is written while the store is read, a page at a
time, so memory does not grow with the number of stages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from collectors._base import BaseStore
from collectors.events import StageEvent

PAGE = 5_000
# Reserved colour names of the trace viewer (chrome://tracing); Perfetto colours by name.
JOB_COLOURS = (
    "thread_state_running", "rail_response", "rail_animation", "rail_load", "startup",
    "thread_state_iowait", "cq_build_passed", "olive", "yellow", "rail_idle", "generic_work",
    "thread_state_runnable", "good", "grey",
)  # fmt: skip
ERROR_COLOUR = "terrible"
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True)
class TraceSummary:
    """What an export wrote."""

    path: str
    stages: int
    resources: int
    pools: int
    jobs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "stages": self.stages,
            "resources": self.resources,
            "pools": self.pools,
            "jobs": self.jobs,
        }


def pool_of(resource: str) -> str:
    """``device:llvm:0`` -> ``device:llvm``; a resource without a numeric suffix is its pool."""
    head, _, tail = resource.rpartition(":")
    return head if head and tail.isdigit() else resource


def export_chrome_trace(
    store: BaseStore, path: str | os.PathLike[str], *, jobs: Sequence[str] | None = None
) -> TraceSummary:
    """Write the stages of ``store`` (optionally only ``jobs``) to ``path``.

    The file is written beside the target and renamed when complete, so an interrupted
    export never leaves a truncated trace under the final name.
    """
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as stream:
            counts = write_chrome_trace(stages_of(store, jobs), stream)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return TraceSummary(str(target), *counts)


def stages_of(store: BaseStore, jobs: Sequence[str] | None = None) -> Iterator[StageEvent]:
    """Stages in position order, read a page at a time (up to the last position now)."""
    upto = store.last_pos()
    wanted = None if jobs is None else frozenset(jobs)
    after = 0
    while after < upto:
        page = store.read(after, kinds=("stage",), limit=PAGE)
        if not page:
            return
        for stored in page:
            if stored.pos > upto:
                return
            event = stored.event
            if isinstance(event, StageEvent) and (wanted is None or event.job in wanted):
                yield event
        after = page[-1].pos


def write_chrome_trace(stages: Iterable[StageEvent], stream: IO[str]) -> tuple[int, int, int, int]:
    """Write a whole trace document for ``stages``; returns (stages, resources, pools, jobs)."""
    pools: dict[str, int] = {}
    threads: dict[str, int] = {}
    colours: dict[str, str] = {}
    count = 0
    stream.write('{"displayTimeUnit":"ms","traceEvents":[\n')
    first = True
    for stage in stages:
        lines = []
        pool = pool_of(stage.resource)
        pid = pools.get(pool)
        if pid is None:
            pid = pools[pool] = len(pools) + 1
            lines.append(_meta("process_name", pid, 0, {"name": pool}))
            lines.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
        tid = threads.get(stage.resource)
        if tid is None:
            tid = threads[stage.resource] = len(threads) + 1
            lines.append(_meta("thread_name", pid, tid, {"name": stage.resource}))
            lines.append(_meta("thread_sort_index", pid, tid, {"sort_index": tid}))
        colour = colours.get(stage.job)
        if colour is None:
            colour = colours[stage.job] = JOB_COLOURS[len(colours) % len(JOB_COLOURS)]
        lines.append(_complete(stage, pid, tid, colour))
        count += 1
        stream.write(("" if first else ",\n") + ",\n".join(lines))
        first = False
    other = json.dumps({"producer": "tuneloom", "stages": count}, separators=(",", ":"))
    stream.write(f'\n],"otherData":{other}}}\n')
    return count, len(threads), len(pools), len(colours)


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> str:
    return json.dumps({"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args})


def _complete(stage: StageEvent, pid: int, tid: int, colour: str) -> str:
    args: dict[str, Any] = {
        "job": stage.job,
        "task": stage.task,
        "iteration": stage.iteration,
        "stage": stage.stage,
        "status": stage.status,
    }
    if stage.candidates is not None:
        args["candidates"] = stage.candidates
    if stage.error is not None:
        args["error"] = stage.error
    if stage.clock != "wall":
        args["clock"] = stage.clock
    return _ENCODE(
        {
            "name": f"{stage.job} {stage.stage}",
            "cat": stage.job,
            "ph": "X",
            "ts": round(stage.start * 1e6, 3),
            "dur": round((stage.end - stage.start) * 1e6, 3),
            "pid": pid,
            "tid": tid,
            "cname": colour if stage.status == "ok" else ERROR_COLOUR,
            "args": args,
        }
    )
