"""MemoryStore: the store in process memory (tests, demos, ``open_store(":memory:")``).

Behaves exactly like SQLiteStore (the same test suite runs against both) but keeps
nothing after the process ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import pandas as pd

from collectors import _frames
from collectors._base import BaseStore, Stored
from collectors.events import EVENT_TYPES, Event, RecordEvent, StageEvent

_EVENT_CLASSES = frozenset(EVENT_TYPES.values())


class MemoryStore(BaseStore):
    """Events in a list; positions are 1, 2, 3, ... in append order. Thread-safe."""

    def __init__(self) -> None:
        self._events: list[Stored] = []
        self._by_kind: dict[str, list[Stored]] = {kind: [] for kind in EVENT_TYPES}
        self._keys: set[tuple[str, int]] = set()
        self._max_seq: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(self, events: Iterable[Event]) -> list[Stored]:
        """Store events; returns the newly stored ones (duplicates are skipped)."""
        batch = list(events)
        for e in batch:
            if type(e) not in _EVENT_CLASSES:
                raise TypeError(f"append takes events, got {type(e).__name__}")
        stored: list[Stored] = []
        with self._lock:
            for e in batch:
                key = (e.source, e.seq)
                if key in self._keys:
                    continue
                self._keys.add(key)
                item = Stored(len(self._events) + 1, e)
                self._events.append(item)
                self._by_kind[e.kind].append(item)
                if e.seq > self._max_seq.get(e.source, -1):
                    self._max_seq[e.source] = e.seq
                stored.append(item)
        return stored

    def read(
        self,
        after: int = 0,
        *,
        kinds: Sequence[str] | None = None,
        job: str | None = None,
        task: str | None = None,
        limit: int | None = None,
    ) -> list[Stored]:
        """Events with position > ``after`` in position order, optionally filtered."""
        with self._lock:
            tail = self._events[max(after, 0) :]
        wanted = None if kinds is None else frozenset(kinds)
        out: list[Stored] = []
        if limit is not None and limit <= 0:
            return out
        for item in tail:
            e = item.event
            if wanted is not None and e.kind not in wanted:
                continue
            if job is not None and e.job != job:
                continue
            if task is not None and getattr(e, "task", None) != task:
                continue
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out

    def last_pos(self) -> int:
        """Position of the newest stored event, 0 when empty."""
        return len(self._events)

    def max_seq(self, source: str) -> int:
        """Highest ``seq`` stored for ``source``, -1 when it has none."""
        return self._max_seq.get(source, -1)

    def stage_intervals(
        self,
        *,
        job: str | Sequence[str] | None = None,
        task: str | None = None,
        resource: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Stage events as intervals; ``start``/``end`` keep those overlapping the window.

        An interval overlaps when ``interval.end >= start`` and ``interval.start <= end``.
        """
        jobs = _frames.job_filter(job)
        rows = []
        for item in self._kind("stage"):
            e = item.event
            assert isinstance(e, StageEvent)
            if (
                (jobs is None or e.job in jobs)
                and (task is None or e.task == task)
                and (resource is None or e.resource == resource)
                and (start is None or e.end >= start)
                and (end is None or e.start <= end)
            ):
                rows.append(_frames.stage_row(item.pos, e))
        return _frames.stage_frame(rows)

    def records(
        self, *, job: str | Sequence[str] | None = None, task: str | None = None
    ) -> pd.DataFrame:
        """Measured candidates in position order, without trace text."""
        jobs = _frames.job_filter(job)
        rows = []
        for item in self._kind("record"):
            e = item.event
            assert isinstance(e, RecordEvent)
            if (jobs is None or e.job in jobs) and (task is None or e.task == task):
                rows.append(_frames.record_row(item.pos, e))
        return _frames.record_frame(rows)

    def record(self, pos: int) -> Event | None:
        """The full event at a position, or None."""
        with self._lock:
            if 1 <= pos <= len(self._events):
                return self._events[pos - 1].event
        return None

    def jobs(self) -> pd.DataFrame:
        """Current state of each job, replayed from its job events."""
        return _frames.jobs_frame(self._kind("job"))

    def tasks(self, *, job: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Registered tasks; the latest task event per (job, task)."""
        jobs = _frames.job_filter(job)
        items = self._kind("task")
        return _frames.tasks_frame(s for s in items if jobs is None or s.event.job in jobs)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._events)} events)"

    def _kind(self, kind: str) -> list[Stored]:
        with self._lock:
            return list(self._by_kind[kind])
