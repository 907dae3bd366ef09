"""EventSink.batched: events written a batch at a time, nothing lost when the block raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors._base import Stored
from collectors.events import JobEvent
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore


class Counting(MemoryStore):
    """A memory store that counts append calls (transactions)."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[int] = []

    def append(self, events):  # type: ignore[no-untyped-def]
        batch = list(events)
        self.appends.append(len(batch))
        return super().append(batch)


class Recorder:
    def __init__(self) -> None:
        self.published: list[Stored] = []

    def publish(self, stored: list[Stored]) -> None:
        self.published += stored


def _emit(sink: EventSink, n: int) -> None:
    for i in range(n):
        sink.emit(JobEvent, job=f"j{i}", change="submitted")


def test_batched_writes_whole_batches_then_the_rest_in_order() -> None:
    store, hub = Counting(), Recorder()
    sink = EventSink(store, source="s", hub=hub)
    with sink.batched(size=4):
        _emit(sink, 10)
        assert store.appends == [4, 4]  # the last 2 wait for the block's end
    assert store.appends == [4, 4, 2]
    assert [s.event.seq for s in store.read(0)] == list(range(10))
    assert [s.event.job for s in hub.published] == [f"j{i}" for i in range(10)]
    _emit(sink, 1)  # one at a time again
    assert store.appends[-1] == 1 and store.read(0)[-1].event.seq == 10


def test_what_was_emitted_is_stored_when_the_block_raises(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sink = EventSink(store, source="s")
    with pytest.raises(RuntimeError, match="stop"), sink.batched(size=100):
        _emit(sink, 7)
        raise RuntimeError("stop")
    assert [s.event.job for s in store.read(0)] == [f"j{i}" for i in range(7)]
    store.close()


def test_batches_do_not_nest_and_must_be_positive() -> None:
    sink = EventSink(MemoryStore(), source="s")
    with pytest.raises(ValueError, match="positive"), sink.batched(size=0):
        pass
    with sink.batched(), pytest.raises(RuntimeError, match="already batching"), sink.batched():
        pass
