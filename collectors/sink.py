"""EventSink: the one way producers emit events (stamps the envelope, stores, fans out)."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
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
    producer can stop starting work it could not record.
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

    def emit(self, cls: type[E], **fields: Any) -> E:
        """Build, store and publish one event of kind ``cls``; returns it."""
        with self._lock:
            fields.setdefault("ts", self.now())
            event = cls(source=self.source, seq=self._seq, clock=self.clock, **fields)
            try:
                stored = self.store.append([event])
            except (OSError, StoreError, sqlite3.Error) as exc:
                self.broken = f"the store cannot be written: {type(exc).__name__}: {exc}"
                raise StoreWriteError(self.broken) from exc
            self._seq += 1
        if self.hub is not None and stored:
            self.hub.publish(stored)
        return event
