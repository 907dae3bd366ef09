"""Clocks the scheduler runs on: a tiny event-loop core, simulated or real time.

A ``Clock`` keeps a heap of ``(time, counter, callback)``; the counter breaks ties so that
callbacks due at the same time run in the order they were scheduled (deterministic, like
SimPy). ``SimClock`` jumps straight to the next event; ``WallClock`` sleeps until it is due and
lets other threads wake it with ``post``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

Callback = Callable[[], None]


class Clock:
    """Event-loop core shared by simulated and real time. Use a subclass."""

    #: Label stamped on events produced under this clock ("sim" or "wall").
    kind: str = ""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callback]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition(threading.Lock())

    def now(self) -> float:
        """Current time in seconds."""
        raise NotImplementedError

    def call_at(self, when: float, fn: Callback) -> None:
        """Run ``fn`` on the loop at time ``when`` (thread-safe)."""
        with self._cond:
            self._check_when(when)
            heapq.heappush(self._heap, (float(when), next(self._counter), fn))
            self._cond.notify_all()

    def call_later(self, delay: float, fn: Callback) -> None:
        """Run ``fn`` on the loop ``delay`` seconds from now."""
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        self.call_at(self.now() + delay, fn)

    def post(self, fn: Callback) -> None:
        """Run ``fn`` on the loop as soon as possible (thread-safe; wakes a waiting loop)."""
        with self._cond:
            heapq.heappush(self._heap, (self.now(), next(self._counter), fn))
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a waiting loop re-check its ``stop`` condition."""
        with self._cond:
            self._cond.notify_all()

    def pending(self) -> int:
        """How many callbacks are scheduled and not yet run."""
        with self._cond:
            return len(self._heap)

    def run(
        self,
        until: float | None = None,
        stop: Callable[[], bool] | None = None,
        *,
        block: bool = False,
    ) -> None:
        """Run callbacks in time order on the calling thread.

        Returns when ``stop()`` is true (checked before each callback and on every wake-up),
        when the clock reaches ``until`` (absolute clock time), or, unless ``block``, when no
        callback is left to run. ``block`` keeps waiting for ``post`` from other threads
        instead (a wall clock always does, since worker threads post their results).
        """
        while True:
            if stop is not None and stop():
                return
            fn = self._next(until, block)
            if fn is None:
                return
            fn()

    # --- subclass hooks ---------------------------------------------------------------------

    def _check_when(self, when: float) -> None:
        """Reject an impossible time (called with the lock held)."""

    def _next(self, until: float | None, block: bool) -> Callback | None:
        """Pop the next callback due, advancing or waiting for time; None means return."""
        raise NotImplementedError


class SimClock(Clock):
    """Discrete-event time: starts at ``start`` (0.0) and jumps to the next scheduled event."""

    kind = "sim"

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def _check_when(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"cannot schedule at {when}: the simulated clock is at {self._now}")

    def _next(self, until: float | None, block: bool) -> Callback | None:
        with self._cond:
            while not self._heap:
                if not block:
                    if until is not None and until > self._now:
                        self._now = float(until)
                    return None
                self._cond.wait()
                return _WAKE
            when, _, fn = self._heap[0]
            if until is not None and when > until:
                self._now = max(self._now, float(until))
                return None
            heapq.heappop(self._heap)
            self._now = max(self._now, when)
            return fn


class WallClock(Clock):
    """Real time (``time.time()``); the loop sleeps until the next callback is due or posted."""

    kind = "wall"

    def __init__(self, timer: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._timer = timer

    def now(self) -> float:
        return self._timer()

    def _next(self, until: float | None, block: bool) -> Callback | None:
        with self._cond:
            now = self._timer()
            if until is not None and now >= until:
                return None
            if self._heap and self._heap[0][0] <= now:
                return heapq.heappop(self._heap)[2]
            deadline = self._heap[0][0] if self._heap else None
            if until is not None:
                deadline = until if deadline is None else min(deadline, until)
            self._cond.wait(None if deadline is None else max(0.0, deadline - now))
            return _WAKE


def _wake() -> None:
    """Placeholder run after a wake-up so the loop re-checks ``stop`` and the heap."""


_WAKE: Callback = _wake
