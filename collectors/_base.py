"""Interfaces of the collectors package: the store every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from collectors.events import Event, GraphEvent, MemoryEvent, ProfileEvent
from collectors.record_fields import as_events


class StoreError(RuntimeError):
    """A store cannot be opened or written (not a tuneloom store, newer schema, ...)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event with its position in one store (a store-wide, increasing cursor)."""

    pos: int
    event: Event


class RecordTrace(NamedTuple):
    """A measured candidate with its trace: ``mean_secs`` is None when it failed."""

    pos: int
    mean_secs: float | None
    error: str | None
    origin: str | None
    trace: str | None


# Columns of the typed query results; every backend returns exactly these, in this order.
STAGE_COLUMNS = (
    "pos", "source", "clock", "job", "task", "iteration", "stage", "resource",
    "start", "end", "status", "error", "candidates",
)  # fmt: skip
RECORD_COLUMNS = (
    "pos", "source", "clock", "ts", "job", "task", "iteration", "candidate", "workload_hash",
    "mean_secs", "error", "error_class", "predicted", "origin",
)  # fmt: skip
JOB_COLUMNS = (
    "job", "state", "priority", "model", "target", "name", "policy", "trials", "tasks",
    "submitted_ts", "updated_ts", "detail", "clock",
)  # fmt: skip
TASK_COLUMNS = (
    "job", "task", "op", "shapes", "dtype", "weight", "flops", "workload_hash", "tunable",
    "detail",
)  # fmt: skip


class BaseStore(abc.ABC):
    """Append-only event journal with typed queries.

    ``append`` is idempotent by ``(source, seq)``. Positions are assigned by the store in
    append order and never reused, so ``read(after=pos)`` tails the journal.
    """

    @abc.abstractmethod
    def append(self, events: Iterable[Event]) -> list[Stored]:
        """Store events; returns the newly stored ones (duplicates are skipped) with positions."""

    def append_counting(self, events: Iterable[Event]) -> int:
        """``append`` that returns only how many events were new (a store may skip making
        the ``Stored`` items)."""
        return len(self.append(events))

    def append_imported(self, items: Iterable[Event | tuple[Any, ...]]) -> int:
        """``append_counting`` of an importer's batch: events, and records as tuples of
        their fields (``collectors.record_fields``), stored as those records' events."""
        return self.append_counting(as_events(list(items)))

    @abc.abstractmethod
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

    @abc.abstractmethod
    def last_pos(self) -> int:
        """Position of the newest stored event, 0 when empty."""

    @abc.abstractmethod
    def max_seq(self, source: str) -> int:
        """Highest ``seq`` stored for ``source``, -1 when it has none."""

    @abc.abstractmethod
    def stage_intervals(
        self,
        *,
        job: str | Sequence[str] | None = None,
        task: str | None = None,
        resource: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Stage events as intervals (``STAGE_COLUMNS``); ``start``/``end`` keep overlaps."""

    @abc.abstractmethod
    def records(
        self, *, job: str | Sequence[str] | None = None, task: str | None = None
    ) -> pd.DataFrame:
        """Measured candidates (``RECORD_COLUMNS``), in position order, without trace text."""

    @abc.abstractmethod
    def record(self, pos: int) -> Event | None:
        """The full event at a position (trace text included), or None."""

    @abc.abstractmethod
    def jobs(self) -> pd.DataFrame:
        """Current state of each job (``JOB_COLUMNS``), replayed from its job events."""

    @abc.abstractmethod
    def tasks(self, *, job: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Registered tasks (``TASK_COLUMNS``); the latest task event per (job, task)."""

    def profiles(self, job: str) -> list[ProfileEvent]:
        """The job's per-kernel profiles, oldest first (any variant)."""
        return [s.event for s in self.read(kinds=["profile"], job=job)]  # type: ignore[misc]

    def graph(self, job: str) -> GraphEvent | None:
        """The newest model graph stored for the job, or None."""
        found = self.read(kinds=["graph"], job=job)
        return found[-1].event if found else None  # type: ignore[return-value]

    def record_traces(self, job: str, task: str, after: int = 0) -> list[RecordTrace]:
        """The task's measured candidates in one job after position ``after``, in position
        order, with their traces (what decoding the candidates' decisions reads)."""
        found = []
        for stored in self.read(after, kinds=["record"], job=job, task=task):
            e: Any = stored.event
            found.append(RecordTrace(stored.pos, e.mean_secs, e.error, e.origin, e.trace))
        return found

    def memory_plans(self, job: str | None = None) -> list[MemoryEvent]:
        """The memory plans stored for the job (every job's when None), oldest first."""
        return [s.event for s in self.read(kinds=["memory"], job=job)]  # type: ignore[misc]

    def appending_in_bulk(self) -> AbstractContextManager[None]:
        """A context for a long run of large appends (an import): a store may write them
        faster inside it, storing the same. The default changes nothing."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; the default does nothing."""

    def __enter__(self) -> BaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
