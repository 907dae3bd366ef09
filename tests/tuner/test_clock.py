"""Clocks: time order, deterministic ties, until/stop, and posting from other threads."""

from __future__ import annotations

import threading
import time

import pytest

from tuner.clock import SimClock, WallClock


def test_sim_clock_jumps_to_events_in_time_order() -> None:
    clock = SimClock()
    seen: list[tuple[str, float]] = []
    clock.call_at(5.0, lambda: seen.append(("b", clock.now())))
    clock.call_at(2.0, lambda: seen.append(("a", clock.now())))
    clock.call_later(9.5, lambda: seen.append(("c", clock.now())))
    assert clock.now() == 0.0
    clock.run()
    assert seen == [("a", 2.0), ("b", 5.0), ("c", 9.5)]
    assert clock.now() == 9.5
    assert clock.pending() == 0


def test_same_time_callbacks_run_in_scheduling_order() -> None:
    clock = SimClock()
    seen: list[int] = []
    for i in range(50):
        clock.call_at(1.0, lambda i=i: seen.append(i))
    clock.post(lambda: seen.append(-1))  # now (0.0) comes before 1.0
    clock.run()
    assert seen == [-1, *range(50)]


def test_callbacks_can_schedule_more_work() -> None:
    clock = SimClock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.now())
        if len(seen) < 4:
            clock.call_later(1.5, tick)

    clock.post(tick)
    clock.run()
    assert seen == [0.0, 1.5, 3.0, 4.5]


def test_sim_clock_refuses_the_past() -> None:
    clock = SimClock(start=10.0)
    with pytest.raises(ValueError, match=r"simulated clock is at 10\.0"):
        clock.call_at(9.0, lambda: None)
    with pytest.raises(ValueError, match="delay"):
        clock.call_later(-1.0, lambda: None)


def test_run_until_stops_before_later_events_and_resumes() -> None:
    clock = SimClock()
    seen: list[float] = []
    for t in (1.0, 3.0, 7.0):
        clock.call_at(t, lambda: seen.append(clock.now()))
    clock.run(until=5.0)
    assert seen == [1.0, 3.0]
    assert clock.now() == 5.0
    clock.run()
    assert seen == [1.0, 3.0, 7.0]


def test_run_stops_when_asked() -> None:
    clock = SimClock()
    seen: list[int] = []
    for i in range(5):
        clock.call_at(float(i), lambda i=i: seen.append(i))
    clock.run(stop=lambda: len(seen) >= 2)
    assert seen == [0, 1]
    assert clock.pending() == 3


def test_blocking_sim_loop_serves_posts_from_other_threads() -> None:
    clock = SimClock()
    seen: list[str] = []
    stop = threading.Event()
    loop = threading.Thread(target=lambda: clock.run(stop=stop.is_set, block=True))
    loop.start()
    try:
        done = threading.Event()
        clock.post(lambda: (seen.append("posted"), done.set()))
        assert done.wait(5)
    finally:
        stop.set()
        clock.wake()
        loop.join(5)
    assert not loop.is_alive()
    assert seen == ["posted"]


def test_wall_clock_waits_until_callbacks_are_due() -> None:
    clock = WallClock()
    seen: list[float] = []
    begin = time.monotonic()
    clock.call_later(0.05, lambda: seen.append(time.monotonic() - begin))
    clock.run(stop=lambda: bool(seen))
    assert seen[0] >= 0.05
    assert abs(clock.now() - time.time()) < 1.0


def test_wall_clock_post_wakes_a_sleeping_loop() -> None:
    clock = WallClock()
    clock.call_later(60.0, lambda: None)  # the loop would otherwise sleep a minute
    seen: list[str] = []
    poster = threading.Timer(0.05, lambda: clock.post(lambda: seen.append("woken")))
    begin = time.monotonic()
    poster.start()
    clock.run(stop=lambda: bool(seen))
    poster.join()
    assert seen == ["woken"]
    assert time.monotonic() - begin < 5.0


def test_wall_clock_run_until_returns_at_that_time() -> None:
    clock = WallClock()
    clock.call_later(60.0, lambda: None)
    deadline = clock.now() + 0.05
    clock.run(until=deadline)
    assert clock.now() >= deadline
    assert clock.pending() == 1


def test_clock_kinds_label_events() -> None:
    assert SimClock().kind == "sim"
    assert WallClock().kind == "wall"
