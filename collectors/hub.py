"""Hub: in-process fan-out of freshly stored events to live subscribers.

The sink publishes every batch it stores; each subscriber (a dashboard's push loop, say)
drains what arrived since its last drain as one coalesced ``Batch``. A subscriber that falls
behind never slows the writer and never holds more than ``maxsize`` events: what does not
fit is remembered only as ranges of positions (``Gap``), which the subscriber re-reads from
the store, the source of truth. ``Batch.resolve(store)`` does that re-read, so a slow
subscriber still sees every event exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from collectors._base import BaseStore, Stored

DEFAULT_MAXSIZE = 10_000
_by_pos = attrgetter("pos")


@dataclass(frozen=True, slots=True)
class Gap:
    """Positions ``first`` to ``last`` (inclusive) were dropped: read them from the store."""

    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything pending for a subscriber at drain time.

    ``events`` are the delivered events in position order; ``gaps`` the ranges dropped
    while the buffer was full (one range unless events were published out of position
    order). No position is in both.
    """

    events: tuple[Stored, ...] = ()
    gaps: tuple[Gap, ...] = ()

    @property
    def missed(self) -> int:
        """How many events the gaps stand for."""
        return sum(len(g) for g in self.gaps)

    def __bool__(self) -> bool:
        return bool(self.events or self.gaps)

    def resolve(self, store: BaseStore) -> list[Stored]:
        """The delivered events plus the gaps re-read from ``store``, in position order."""
        out = list(self.events)
        for gap in self.gaps:
            missed = store.read(after=gap.first - 1, limit=len(gap))
            out += [s for s in missed if s.pos <= gap.last]
        out.sort(key=_by_pos)
        return out


class Subscription:
    """One subscriber's bounded buffer. ``drain`` it; ``close`` it when done."""

    def __init__(self, hub: Hub, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize: must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._hub = hub
        self._cond = threading.Condition(threading.Lock())
        self._buffer: list[Stored] = []
        self._gaps: list[list[int]] = []  # [first, last] ranges of dropped positions
        self._closed = False
        self.delivered = 0  # events handed out by drain
        self.dropped = 0  # events turned into gaps

    @property
    def closed(self) -> bool:
        """True after ``close``."""
        return self._closed

    @property
    def pending(self) -> int:
        """Events buffered or in gaps, waiting for the next drain."""
        with self._cond:
            return len(self._buffer) + sum(last - first + 1 for first, last in self._gaps)

    def drain(self, timeout: float | None = None) -> Batch:
        """Take everything pending, waiting up to ``timeout`` seconds for something.

        ``timeout=None`` waits until something arrives or the subscription is closed;
        ``timeout=0`` never waits. Returns an empty batch when nothing came.
        """
        with self._cond:
            if not (self._buffer or self._gaps or self._closed):
                self._cond.wait_for(lambda: self._buffer or self._gaps or self._closed, timeout)
            events, self._buffer = self._buffer, []
            gaps, self._gaps = self._gaps, []
            self.delivered += len(events)
        events.sort(key=_by_pos)
        return Batch(tuple(events), _merged(gaps))

    def close(self) -> None:
        """Stop receiving; a ``drain`` waiting in another thread returns at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _offer(self, stored: Sequence[Stored]) -> None:
        """Called by the hub; never waits for the subscriber."""
        with self._cond:
            if self._closed:
                return
            room = 0 if self._gaps else self.maxsize - len(self._buffer)
            if room >= len(stored):
                self._buffer.extend(stored)
            else:
                if room > 0:
                    self._buffer.extend(stored[:room])
                self._drop(stored[max(room, 0) :])
            self._cond.notify_all()

    def _drop(self, stored: Sequence[Stored]) -> None:
        gaps = self._gaps
        for s in stored:
            pos = s.pos
            if gaps:
                last = gaps[-1]
                if last[1] + 1 == pos:
                    last[1] = pos
                    continue
                if last[0] <= pos <= last[1]:
                    continue
            gaps.append([pos, pos])
        self.dropped += len(stored)


class Hub:
    """Fans out published events to every open subscription. Thread-safe."""

    def __init__(self, *, maxsize: int = DEFAULT_MAXSIZE) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._subscriptions: tuple[Subscription, ...] = ()

    def subscribe(self, *, maxsize: int | None = None) -> Subscription:
        """A new subscription that receives events published from now on."""
        sub = Subscription(self, self.maxsize if maxsize is None else maxsize)
        with self._lock:
            self._subscriptions = (*self._subscriptions, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub`` (``Subscription.close`` calls this)."""
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not sub)

    def publish(self, stored: list[Stored]) -> None:
        """Offer freshly stored events to every subscription; never blocks on a reader."""
        if not stored:
            return
        for sub in self._subscriptions:  # a tuple: safe to iterate while others subscribe
            sub._offer(stored)

    @property
    def subscribers(self) -> int:
        """Number of open subscriptions."""
        return len(self._subscriptions)

    def close(self) -> None:
        """Close every subscription."""
        for sub in self._subscriptions:
            sub.close()


def _merged(ranges: list[list[int]]) -> tuple[Gap, ...]:
    """Sorted, non-overlapping gaps; touching ranges are joined."""
    if not ranges:
        return ()
    ranges.sort()
    out = [ranges[0][:]]
    for first, last in ranges[1:]:
        if first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return tuple(Gap(first, last) for first, last in out)
