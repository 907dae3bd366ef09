"""Shared by the scheduler tests: a scripted driver with fixed stage times, event readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from collectors.events import JobEvent, StageEvent
from collectors.jobs import STAGE_ORDER, StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from tuner._base import JobDriver, StageResult
from tuner.clock import Clock

# select 3 s, build 1 s, profile 4 s, update 2 s: distinct, small, easy to add up by hand.
SCRIPT_TIMES: Mapping[StageKind, float] = {
    StageKind.SELECT: 3.0,
    StageKind.BUILD: 1.0,
    StageKind.PROFILE: 4.0,
    StageKind.UPDATE: 2.0,
}

ABBREV = {
    StageKind.SELECT: "S",
    StageKind.BUILD: "B",
    StageKind.PROFILE: "P",
    StageKind.UPDATE: "U",
}


class ScriptedDriver(JobDriver):
    """A job of ``tasks`` x ``iterations`` rounds with fixed stage times.

    On a simulated clock ``run`` returns the time as ``duration``; with ``sleep`` it sleeps
    it instead (wall clock). ``fail_runs``/``raise_runs`` are run indexes (0-based) that
    return ok=False or raise. Every ``run`` call is appended to ``log`` (shared between
    drivers, so tests can see the global order of stage starts and control actions).
    With ``quiet`` every iteration's profile is followed by a second one that the driver
    wants quiet (``JobDriver.wants_quiet``), as a would-be best timed again.
    """

    def __init__(
        self,
        label: str,
        *,
        tasks: Sequence[str] = ("t",),
        iterations: int = 1,
        times: Mapping[StageKind, float] = SCRIPT_TIMES,
        sleep: bool = False,
        fail_runs: Sequence[int] = (),
        raise_runs: Sequence[int] = (),
        raise_on_next: int | None = None,
        log: list[tuple[Any, ...]] | None = None,
        candidates: int = 1,
        quiet: bool = False,
    ) -> None:
        self.label = label
        kinds = list(STAGE_ORDER)
        if quiet:
            kinds.insert(kinds.index(StageKind.PROFILE), StageKind.PROFILE)
        self.steps = [(t, it, k) for it in range(iterations) for t in tasks for k in kinds]
        self.rounds = iterations * len(tasks)
        self.offered: dict[str, int] = {}  # task -> index in ``steps`` of its step offered last
        self.times = times
        self.sleep = sleep
        self.fail_runs = set(fail_runs)
        self.raise_runs = set(raise_runs)
        self.raise_on_next = raise_on_next
        self.log = log if log is not None else []
        self.candidates = candidates
        self.fetched = 0
        self.runs: list[tuple[str, int, StageKind, str]] = []
        self.threads: set[str] = set()
        self.measured = 0
        self.closed: list[bool] = []

    def next_stage(self) -> tuple[str, int, StageKind] | None:
        if self.raise_on_next is not None and self.fetched == self.raise_on_next:
            raise RuntimeError(f"{self.label} cannot plan its next stage")
        if self.fetched >= len(self.steps):
            return None
        step = self.steps[self.fetched]
        self.offered[step[0]] = self.fetched
        self.fetched += 1
        return step

    def wants_quiet(self, task: str) -> bool:
        """The second profile of an iteration (only with ``quiet``)."""
        return self.is_quiet(self.offered.get(task, 0))

    def is_quiet(self, index: int) -> bool:
        """Whether ``steps[index]`` is a quiet profile: a profile right after a profile."""
        here, before = self.steps[index], self.steps[index - 1] if index else None
        return here[2] is StageKind.PROFILE and before == here

    def run(self, task: str, iteration: int, kind: StageKind, resource: str) -> StageResult:
        index = len(self.runs)
        self.runs.append((task, iteration, kind, resource))
        self.threads.add(threading.current_thread().name)
        self.log.append(("start", self.label, task, iteration, kind, resource))
        if index in self.raise_runs:
            raise RuntimeError(f"{self.label} crashed in {kind}")
        seconds = self.times[kind]
        if self.sleep:
            time.sleep(seconds)
        if kind is StageKind.UPDATE:
            self.measured += self.candidates
        ok = index not in self.fail_runs
        return StageResult(
            ok=ok,
            error=None if ok else f"{kind} failed",
            duration=None if self.sleep else seconds,
            candidates=self.candidates,
        )

    def trials(self) -> tuple[int, int]:
        return (self.measured, self.rounds * self.candidates)

    def close(self, cancelled: bool = False) -> None:
        self.closed.append(cancelled)


def make_sink(clock: Clock, store: MemoryStore | None = None) -> EventSink:
    """A sink writing to a MemoryStore, on ``clock``'s time and label."""
    return EventSink(store or MemoryStore(), now=clock.now, clock=clock.kind)


def stage_events(sink: EventSink) -> list[StageEvent]:
    """Every stage event, ordered by start time, then resource."""
    events = [s.event for s in sink.store.read(kinds=["stage"])]
    return sorted(events, key=lambda e: (e.start, e.resource))  # type: ignore[attr-defined]


def job_events(sink: EventSink, job: str | None = None) -> list[JobEvent]:
    """Job events in emission order (optionally of one job)."""
    return [s.event for s in sink.store.read(kinds=["job"], job=job)]  # type: ignore[misc]


def changes(sink: EventSink, job: str) -> list[str]:
    """The ``change`` of each of a job's events, in order."""
    return [e.change for e in job_events(sink, job)]


def starts(sink: EventSink, names: Mapping[str, str]) -> list[tuple[float, str, str, str]]:
    """(start, job label, stage letter, resource) of every stage, by start then resource."""
    return [
        (e.start, names[e.job], ABBREV[StageKind(e.stage)], e.resource) for e in stage_events(sink)
    ]


class TaskParallelDriver(ScriptedDriver):
    """A scripted job whose tasks run side by side: each task walks its own iterations of
    select, build, profile, update; ``ready`` offers the next stage of every task not busy,
    at most ``parallel`` tasks in the middle of an iteration at once."""

    def __init__(self, label: str, *, parallel: int = 8, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.parallel = parallel
        self.todo: dict[str, list[int]] = {}  # task -> indexes of its steps still to run
        for index, step in enumerate(self.steps):
            self.todo.setdefault(step[0], []).append(index)

    def ready(self, busy: frozenset[str]) -> list[tuple[str, int, StageKind]] | None:
        mid = {
            task for task, todo in self.todo.items() if todo and self.steps[todo[0]][2] != "select"
        }
        slots = self.parallel - len(mid | busy)
        out = []
        for task, todo in self.todo.items():
            if not todo or task in busy:
                continue
            if self.steps[todo[0]][2] == StageKind.SELECT:
                if slots <= 0:
                    continue
                slots -= 1
            self.offered[task] = todo[0]
            out.append(self.steps[todo[0]])
        if out or busy or any(self.todo.values()):
            return out
        return None

    def run(self, task: str, iteration: int, kind: StageKind, resource: str) -> StageResult:
        expected = self.steps[self.todo[task][0]]
        assert expected == (task, iteration, kind), f"ran {(task, iteration, kind)}, not {expected}"
        self.todo[task].pop(0)
        return super().run(task, iteration, kind, resource)
