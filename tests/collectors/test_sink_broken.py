"""A sink whose store refused a write writes nothing more: what a run stored stays an
unbroken prefix of what it emitted, which a resume relies on."""

from __future__ import annotations

import pytest

from collectors._base import StoreError
from collectors.events import JobEvent
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink, StoreWriteError


class RefusesOnce(MemoryStore):
    """Refuses the append of one given job name (a big event on a nearly full disk)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def append(self, events):  # type: ignore[no-untyped-def]
        batch = list(events)
        if any(e.job == self.refused for e in batch):
            raise StoreError("cannot append (database or disk is full)")
        return super().append(batch)


def test_after_a_refused_write_later_events_are_refused_too() -> None:
    store = RefusesOnce("j1")
    sink = EventSink(store, source="s")
    sink.emit(JobEvent, job="j0", change="submitted")
    with pytest.raises(StoreWriteError, match="disk is full"):
        sink.emit(JobEvent, job="j1", change="submitted")
    with pytest.raises(StoreWriteError, match="disk is full"):
        sink.emit(JobEvent, job="j2", change="submitted")  # would fit: still refused
    assert [s.event.job for s in store.read()] == ["j0"]
    assert sink.broken is not None and "disk is full" in sink.broken
