"""Hub: bounded live fan-out; slow subscribers get gaps to re-read, never a blocked writer."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from collectors._base import BaseStore, Stored
from collectors.events import StageEvent
from collectors.hub import Batch, Gap, Hub
from collectors.sink import EventSink
from tests.collectors.storekit import EventFactory


def stored_events(positions: range | list[int]) -> list[Stored]:
    make = EventFactory()
    return [Stored(pos, make.stage(float(pos), float(pos) + 1.0)) for pos in positions]


def positions(batch: Batch) -> list[int]:
    return [s.pos for s in batch.events]


def test_a_fast_subscriber_gets_everything_in_order_coalesced() -> None:
    hub = Hub()
    sub = hub.subscribe()
    hub.publish(stored_events(range(1, 4)))
    hub.publish(stored_events(range(4, 6)))
    batch = sub.drain(timeout=0)
    assert positions(batch) == [1, 2, 3, 4, 5]  # two publishes, one batch
    assert batch.gaps == () and batch.missed == 0
    assert not sub.drain(timeout=0)
    assert sub.delivered == 5 and sub.dropped == 0


def test_only_events_published_after_subscribing_arrive() -> None:
    hub = Hub()
    hub.publish(stored_events([1]))
    sub = hub.subscribe()
    hub.publish(stored_events([2]))
    assert positions(sub.drain(timeout=0)) == [2]


def test_every_subscriber_gets_its_own_copy() -> None:
    hub = Hub()
    slow, fast = hub.subscribe(maxsize=2), hub.subscribe(maxsize=100)
    hub.publish(stored_events(range(1, 11)))
    assert positions(fast.drain(timeout=0)) == list(range(1, 11))
    late = slow.drain(timeout=0)
    assert positions(late) == [1, 2] and late.gaps == (Gap(3, 10),)


def test_a_full_buffer_turns_the_rest_into_one_exact_gap() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=100)
    for pos in range(1, 1001):
        hub.publish(stored_events([pos]))
    assert sub.pending == 1000
    batch = sub.drain(timeout=0)
    assert positions(batch) == list(range(1, 101))
    assert batch.gaps == (Gap(101, 1000),)
    assert batch.missed == 900 and sub.dropped == 900
    # Drained: the buffer takes events again, with no gap.
    hub.publish(stored_events([1001, 1002]))
    again = sub.drain(timeout=0)
    assert positions(again) == [1001, 1002] and again.gaps == ()


def test_a_batch_that_does_not_fit_is_split_between_buffer_and_gap() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=10)
    hub.publish(stored_events(range(1, 8)))
    hub.publish(stored_events(range(8, 26)))
    batch = sub.drain(timeout=0)
    assert positions(batch) == list(range(1, 11))
    assert batch.gaps == (Gap(11, 25),)


def test_nothing_is_buffered_after_a_gap_until_the_next_drain() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=3)
    hub.publish(stored_events(range(1, 6)))  # 1-3 buffered, 4-5 dropped
    hub.publish(stored_events([6]))  # the buffer has room for none while a gap is open
    batch = sub.drain(timeout=0)
    assert positions(batch) == [1, 2, 3] and batch.gaps == (Gap(4, 6),)


def test_out_of_order_publishes_give_exact_gaps() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=1)
    hub.publish(stored_events([2]))  # buffered
    hub.publish(stored_events([1]))  # dropped
    hub.publish(stored_events([3]))  # dropped
    batch = sub.drain(timeout=0)
    assert positions(batch) == [2]
    assert batch.gaps == (Gap(1, 1), Gap(3, 3))  # 2 is not read again
    hub.publish(stored_events([5]))
    hub.publish(stored_events([4]))
    assert positions(sub.drain(timeout=0)) == [5]
    sub2 = hub.subscribe(maxsize=5)
    hub.publish(stored_events([9]))
    hub.publish(stored_events([8]))
    assert positions(sub2.drain(timeout=0)) == [8, 9]  # a batch is in position order


def test_drain_waits_for_events_or_times_out() -> None:
    hub = Hub()
    sub = hub.subscribe()
    assert sub.drain(timeout=0.01) == Batch()
    waiting = threading.Event()
    got: list[Batch] = []

    def consume() -> None:
        waiting.set()
        got.append(sub.drain())  # no timeout: waits for the publish

    reader = threading.Thread(target=consume)
    reader.start()
    waiting.wait()
    hub.publish(stored_events([1]))
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert positions(got[0]) == [1]


def test_close_wakes_a_waiting_drain_and_unsubscribes() -> None:
    hub = Hub()
    sub = hub.subscribe()
    other = hub.subscribe()
    assert hub.subscribers == 2
    got: list[Batch] = []
    reader = threading.Thread(target=lambda: got.append(sub.drain()))
    reader.start()
    sub.close()
    reader.join(timeout=10)
    assert not reader.is_alive() and got == [Batch()]
    assert sub.closed and hub.subscribers == 1
    hub.publish(stored_events([1]))
    assert sub.drain(timeout=0) == Batch()
    assert positions(other.drain(timeout=0)) == [1]
    with hub.subscribe() as third:
        assert hub.subscribers == 2
    assert third.closed and hub.subscribers == 1
    hub.close()
    assert other.closed and hub.subscribers == 0


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize: must be >= 1"):
        Hub().subscribe(maxsize=0)


def test_a_subscriber_that_never_reads_does_not_block_or_grow() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=1000)
    events = stored_events(range(1, 100_001))
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for item in events:  # one publish per event, as the sink does
            hub.publish([item])
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256 * 1024  # 1000 buffered references and two integers
    assert sub.pending == 100_000
    batch = sub.drain(timeout=0)
    assert len(batch.events) == 1000 and batch.gaps == (Gap(1001, 100_000),)


def test_resolve_fills_gaps_from_the_store(store: BaseStore) -> None:
    make = EventFactory()
    stored = store.append(make.stage(float(i), float(i) + 1) for i in range(20))
    hub = Hub()
    sub = hub.subscribe(maxsize=5)
    hub.publish(stored[:12])
    hub.publish(stored[12:])
    batch = sub.drain(timeout=0)
    assert len(batch.events) == 5 and batch.missed == 15
    assert batch.resolve(store) == stored


def test_a_slow_subscriber_sees_every_event_exactly_once(store: BaseStore) -> None:
    hub = Hub()
    sink = EventSink(store, hub=hub, source="live")
    sub = hub.subscribe(maxsize=7)
    rounds, per_round = 12, 50  # the producer outruns the 7-event buffer every round
    meet = threading.Barrier(2, timeout=30)
    seen: list[int] = []
    gaps = 0

    def produce() -> None:
        for r in range(rounds):
            for i in range(per_round):
                sink.emit(StageEvent, job="j", task="t", iteration=r * per_round + i,
                          stage="build", resource="client:0", start=0.0, end=1.0)  # fmt: skip
            meet.wait()  # the consumer drains while the next round is emitted

    producer = threading.Thread(target=produce)
    producer.start()
    for _ in range(rounds):
        meet.wait()
        batch = sub.drain(timeout=0)
        gaps += len(batch.gaps)
        seen += [s.pos for s in batch.resolve(store)]
    producer.join()
    last = sub.drain(timeout=0)
    seen += [s.pos for s in last.resolve(store)]
    assert gaps > 0 and sub.dropped > 0
    assert sorted(seen) == [s.pos for s in store.read()]
    assert len(seen) == len(set(seen)) == rounds * per_round
    assert sub.delivered + sub.dropped == rounds * per_round


def test_publishers_on_many_threads_lose_nothing() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=50)
    per_thread, threads = 2000, 4

    def publish(first: int) -> None:
        for pos in range(first, first + per_thread):
            hub.publish(stored_events([pos]))

    workers = [threading.Thread(target=publish, args=(1 + n * per_thread,)) for n in range(threads)]
    for w in workers:
        w.start()
    covered: list[int] = []
    while any(w.is_alive() for w in workers) or sub.pending:
        batch = sub.drain(timeout=0.01)
        covered += positions(batch)
        for gap in batch.gaps:
            covered += range(gap.first, gap.last + 1)
    for w in workers:
        w.join()
    assert sorted(covered) == list(range(1, per_thread * threads + 1))
