"""Helpers of the collectors tests: backends by name, an event factory, generated events."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from collectors._base import BaseStore
from collectors.events import (
    CLOCKS,
    ERROR_CLASSES,
    JOB_CHANGES,
    STAGE_KINDS,
    STAGE_STATUSES,
    Event,
    JobEvent,
    RecordEvent,
    StageEvent,
    TaskEvent,
)
from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore

BACKENDS = ("memory", "sqlite")


def open_backend(name: str, path: Path) -> BaseStore:
    """A fresh store of the named backend (``path`` is used by file-backed ones)."""
    if name == "memory":
        return MemoryStore()
    return SQLiteStore(path)


class EventFactory:
    """Valid events with small defaults; ``seq`` counts up per factory (one source)."""

    def __init__(self, source: str = "test-run") -> None:
        self.source = source
        self._seq = itertools.count()
        self._clock = itertools.count(1)

    def _envelope(self, kw: dict[str, Any]) -> dict[str, Any]:
        kw.setdefault("source", self.source)
        kw.setdefault("seq", next(self._seq))
        kw.setdefault("ts", 1_700_000_000.0 + next(self._clock))
        kw.setdefault("job", "job-a")
        return kw

    def job(self, change: str = "submitted", **kw: Any) -> JobEvent:
        return JobEvent(change=change, **self._envelope(kw))

    def task(self, task: str = "matmul-64", **kw: Any) -> TaskEvent:
        kw.setdefault("op", "matmul")
        kw.setdefault("shapes", ((64, 64), (64, 64)))
        return TaskEvent(task=task, **self._envelope(kw))

    def stage(self, start: float, end: float, **kw: Any) -> StageEvent:
        kw.setdefault("task", "matmul-64")
        kw.setdefault("iteration", 0)
        kw.setdefault("stage", "build")
        kw.setdefault("resource", "client:0")
        return StageEvent(start=start, end=end, **self._envelope(kw))

    def record(self, **kw: Any) -> RecordEvent:
        kw.setdefault("task", "matmul-64")
        kw.setdefault("candidate", 0)
        if "error_class" not in kw:
            kw.setdefault("run_secs", (1.0e-3, 2.0e-3))
        return RecordEvent(**self._envelope(kw))


# --- generated events (hypothesis) ---------------------------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # no lone surrogates
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def event_strategy() -> st.SearchStrategy[Event]:
    """Any valid event of any kind; integers fit in 64 bits (an SQLite INTEGER)."""
    envelope = {
        "source": _TEXT.filter(bool),
        "seq": st.integers(min_value=0, max_value=2**63 - 1),
        "ts": _FLOAT,
        "clock": st.sampled_from(CLOCKS),
        "job": _TEXT,
    }
    jobs = st.builds(
        JobEvent, change=st.sampled_from(JOB_CHANGES), priority=_INT64, model=_maybe(_TEXT),
        target=_maybe(_TEXT), name=_maybe(_TEXT), policy=_maybe(_TEXT),
        trials=_maybe(_INT64), tasks=_maybe(st.lists(_TEXT, max_size=3).map(tuple)),
        detail=_maybe(_TEXT), **envelope,
    )  # fmt: skip
    tasks = st.builds(
        TaskEvent, task=_TEXT, op=_TEXT,
        shapes=st.lists(st.lists(_INT64, max_size=4).map(tuple), max_size=3).map(tuple),
        dtype=_maybe(_TEXT), weight=_FLOAT, flops=_maybe(_FLOAT),
        workload_hash=_maybe(_TEXT), tunable=st.booleans(), detail=_maybe(_TEXT), **envelope,
    )  # fmt: skip
    stages = st.builds(
        _stage, task=_TEXT, iteration=_INT64, stage=st.sampled_from(STAGE_KINDS),
        resource=_TEXT, start=_FLOAT, length=st.floats(0, 1e6),
        status=st.sampled_from(STAGE_STATUSES), error=_maybe(_TEXT),
        candidates=_maybe(_INT64), **envelope,
    )  # fmt: skip
    records = st.builds(
        RecordEvent, task=_TEXT, candidate=_INT64, iteration=_maybe(_INT64),
        workload_hash=_maybe(_TEXT), trace=_maybe(st.text(max_size=200)),
        run_secs=_maybe(st.lists(st.floats(0, 1e3), max_size=4).map(tuple)),
        error=_maybe(_TEXT), error_class=_maybe(st.sampled_from(ERROR_CLASSES)),
        predicted=_maybe(_FLOAT), origin=_maybe(_TEXT), **envelope,
    )  # fmt: skip
    return st.one_of(jobs, tasks, stages, records)


def _stage(*, start: float, length: float, **kw: Any) -> StageEvent:
    end = start + length
    if not math.isfinite(end) or end < start:
        end = start
    return StageEvent(start=start, end=end, **kw)


def append_from_process(
    path: str, source: str, count: int, batch: int, start: Any, times: Any
) -> None:
    """Wait at ``start`` (a multiprocessing Barrier shared with the other writers), then
    append ``count`` stage events of ``source`` to ``path`` in batches, sending every batch
    twice (a retry adds nothing) and pausing 1 ms between batches; puts (first, last)
    perf_counter times on ``times``."""
    make = EventFactory(source)
    events = [make.stage(float(i), float(i) + 0.5, iteration=i) for i in range(count)]
    start.wait()
    first = time.perf_counter()
    store = SQLiteStore(path)
    try:
        for i in range(0, count, batch):
            store.append(events[i : i + batch])
            store.append(events[i : i + batch])
            time.sleep(0.001)  # a producer does other work between its batches
    finally:
        store.close()
    times.put((first, time.perf_counter()))
