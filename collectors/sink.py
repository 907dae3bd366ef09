"""EventSink: the one way producers emit events (stamps the envelope, stores, fans out)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from collectors._base import BaseStore, Stored, StoreError
from collectors.events import Event

E = TypeVar("E", bound=Event)


class Publisher(Protocol):
    """Anything that takes freshly stored events (the Hub)."""

    def publish(self, stored: list[Stored]) -> None: ...


class StoreWriteError(StoreError):
    """The store refused a write (disk full, read-only file...)."""


class EventSink:
    """Stamps ``source``, ``seq``, ``ts`` and ``clock`` on events and writes them through.

    Thread-safe: stages on different resources emit from different threads.
    ``now`` is the clock the producer runs on (wall time, or a simulated clock). A write the
    store refuses raises ``StoreWriteError`` and leaves the reason in ``broken``, so a
    producer can stop starting work it could not record. After that the sink writes nothing
    more (every later emit raises the same error), so what a run stored is always an unbroken
    prefix of what it emitted: a later, smaller event that would still fit cannot leave a
    gap that a resume would misread.
    """

    def __init__(
        self,
        store: BaseStore,
        *,
        source: str | None = None,
        hub: Publisher | None = None,
        now: Callable[[], float] = time.time,
        clock: str = "wall",
    ) -> None:
        self.store = store
        self.source = source or f"run-{uuid.uuid4().hex[:12]}"
        self.hub = hub
        self.now = now
        self.clock = clock
        self._seq = store.max_seq(self.source) + 1
        self._lock = threading.Lock()
        self.broken: str | None = None
        self._batch: list[Event] | None = None  # events held back by ``batched``
        self._batch_size = 0

    def emit(self, cls: type[E], **fields: Any) -> E:
        """Build, store and publish one event of kind ``cls``; returns it."""
        with self._lock:
            fields.setdefault("ts", self.now())
            event = cls(source=self.source, seq=self._seq, clock=self.clock, **fields)
            if self._batch is not None:
                self._batch.append(event)
                self._seq += 1
                if len(self._batch) >= self._batch_size:
                    stored = self._write_batch()
                else:
                    return event
            else:
                stored = self._write([event])
                self._seq += 1
        if self.hub is not None and stored:
            self.hub.publish(stored)
        return event

    @contextlib.contextmanager
    def batched(self, size: int = 2000) -> Iterator[None]:
        """Write events ``size`` at a time, in one transaction each, until the block ends
        (then the rest): for producers that emit many events with nobody watching live, such
        as a simulated run. Everything emitted is written when the block ends, even if it
        raises."""
        if size <= 0:
            raise ValueError(f"batch size must be positive, got {size}")
        with self._lock:
            if self._batch is not None:
                raise RuntimeError("the sink is already batching")
            self._batch, self._batch_size = [], size
        try:
            yield
        finally:
            with self._lock:
                try:
                    stored = self._write_batch()
                finally:
                    self._batch = None
            if self.hub is not None and stored:
                self.hub.publish(stored)

    def _write_batch(self) -> list[Stored]:
        """Write the held-back events (with the lock held)."""
        batch = self._batch or []
        if not batch:
            return []
        stored = self._write(batch)
        batch.clear()
        return stored

    def _write(self, events: list[Event]) -> list[Stored]:
        if self.broken is not None:
            raise StoreWriteError(self.broken)
        try:
            return self.store.append(events)
        except (OSError, StoreError, sqlite3.Error) as exc:
            self.broken = f"the store cannot be written: {type(exc).__name__}: {exc}"
            raise StoreWriteError(self.broken) from exc
