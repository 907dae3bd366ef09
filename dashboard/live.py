"""Live push: stored events reach every browser over Socket.IO, in order, each exactly once.

One background task owns the stream. It drains a feed (a Hub subscription, or a poll of the
store when there is no hub), fills any hole in positions from the store (the source of
truth), converts events to compact payloads and sends each connected browser the events
past that browser's cursor (browsers at the same cursor share one encoded message). A
browser that connects late, or whose figure was rebuilt from the store at position P, asks
to ``resume`` after P: it first gets everything after P read from the store (``catchup``),
then the stream continues. Nothing is lost or sent twice.

Every browser's backlog is bounded: it acknowledges what it has handled (``ack``), and one
with more than ``window`` events sent but not acknowledged (a frozen or very slow tab) gets
no more of the stream. Once it acknowledges everything it was sent, it gets one ``gap``
marker naming the positions it missed and re-reads them from the store with ``resume``
(or rebuilds its figures when they are too many). Other browsers never wait for it.

Messages (namespace ``/live``):
- client -> server ``resume {after, token}``, ``ack {p}`` (handled everything up to ``p``)
- server -> client ``events {events}``, ``catchup {token, after, events}``,
  ``reload {token}`` (too much to catch up: rebuild from the store instead),
  ``gap {first, last}`` (positions not sent: resume from the store).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from flask import request
from flask_socketio import SocketIO

from collectors._base import BaseStore, Stored
from collectors.events import JobEvent, RecordEvent, StageEvent, TaskEvent
from dashboard.colors import color_of
from dashboard.data import StoreView
from dashboard.figures.timeline import STAGE_OPACITY, lane_label, stage_hovertext

log = logging.getLogger(__name__)

NAMESPACE = "/live"
CATCHUP_LIMIT = 20_000  # beyond this a browser rebuilds its figures from the store
READ_CHUNK = 5_000
WINDOW = 2_000  # events sent to a browser and not yet acknowledged before it gets a gap


_stamps = itertools.count(1)


def new_stamp() -> str:
    """A fresh name for a figure about to be sent to a browser."""
    return f"f{next(_stamps)}"


def stamp_figure(figure: Any, stamp: str) -> Any:
    """``figure`` (a ``go.Figure`` or a plain dict) with ``stamp`` in its ``layout.meta``.

    The live client extends a drawn figure only while its stamp is the one its base names,
    so events never land on a figure built for another base.
    """
    if isinstance(figure, dict):
        layout = figure.setdefault("layout", {})
        meta = layout.get("meta")
        layout["meta"] = {**(meta if isinstance(meta, dict) else {}), "live": stamp}
        return figure
    meta = figure.layout.meta
    figure.update_layout(meta={**(meta if isinstance(meta, dict) else {}), "live": stamp})
    return figure


class Feed(Protocol):
    """Where new events come from: ``drain`` returns stored events in position order."""

    def drain(self, timeout: float) -> list[Stored]: ...

    def close(self) -> None: ...


class HubFeed:
    """Events published to a ``collectors.hub.Hub``; dropped ranges are re-read."""

    def __init__(self, hub: Any, store: BaseStore) -> None:
        self.store = store
        self._sub = hub.subscribe()

    def drain(self, timeout: float) -> list[Stored]:
        return self._sub.drain(timeout).resolve(self.store)

    def close(self) -> None:
        self._sub.close()


class PollingFeed:
    """Tails the store itself (another process may be writing it)."""

    def __init__(self, store: BaseStore, interval: float = 0.25) -> None:
        self.store = store
        self.interval = interval
        self._after = store.last_pos()
        self._closed = threading.Event()

    def drain(self, timeout: float) -> list[Stored]:
        new = self.store.read(self._after, limit=READ_CHUNK)
        if not new:
            self._closed.wait(min(timeout, self.interval))
            new = self.store.read(self._after, limit=READ_CHUNK)
        if new:
            self._after = new[-1].pos
        return new

    def close(self) -> None:
        self._closed.set()


class Payloads:
    """Turns stored events into the compact dicts the browser client reads."""

    def __init__(self, view: StoreView) -> None:
        self.view = view
        self._colors: dict[str, str] = {}
        self._labels: dict[str, str] = {}

    def _know(self, job: str) -> None:
        if job not in self._colors:
            snap = self.view.snapshot()
            self._colors, self._labels = snap.colors, snap.labels

    def convert(self, stored: list[Stored]) -> list[dict[str, Any]]:
        out = []
        for item in stored:
            payload = self.one(item)
            if payload is not None:
                out.append(payload)
        return out

    def one(self, item: Stored) -> dict[str, Any] | None:
        e = item.event
        base = {"p": item.pos, "j": e.job, "ts": e.ts, "c": e.clock}
        if isinstance(e, StageEvent):
            self._know(e.job)
            base.update(
                k="s", t=e.task, i=e.iteration, g=e.stage, r=e.resource,
                l=lane_label(e.resource, e.clock, e.source), a=e.start, b=e.end, st=e.status,
                co=color_of(self._colors, e.job), op=STAGE_OPACITY.get(e.stage, 1.0),
                h=stage_hovertext(
                    self._labels.get(e.job, e.job), e.task, e.iteration, e.stage, e.resource,
                    e.end - e.start, e.status, e.error,
                ),
            )  # fmt: skip
        elif isinstance(e, RecordEvent):
            self._know(e.job)
            mean = e.mean_secs
            base.update(
                k="r", t=e.task, ms=None if mean is None else mean * 1000.0,
                e=e.error_class, co=color_of(self._colors, e.job),
            )  # fmt: skip
        elif isinstance(e, JobEvent):
            if e.change == "submitted":
                self._colors = {}  # a new job: learn its colour on its first stage
            base.update(k="j", ch=e.change, pr=e.priority)
        elif isinstance(e, TaskEvent):
            base.update(k="t", t=e.task)
        else:
            return None
        return base


class LiveBridge:
    """The Socket.IO side of the dashboard: per-browser ordered delivery of stored events."""

    def __init__(
        self,
        socketio: SocketIO,
        view: StoreView,
        feed_factory: Callable[[], Feed],
        *,
        drain_timeout: float = 0.02,
        window: int = WINDOW,
    ) -> None:
        self.socketio = socketio
        self.view = view
        self.store = view.store
        self.feed_factory = feed_factory
        self.drain_timeout = drain_timeout
        self.window = window
        self.payloads = Payloads(view)
        self._requests: queue.SimpleQueue[tuple[str, str, int, Any]] = queue.SimpleQueue()
        self._cursors: dict[str, int] = {}  # last position sent (or caught up) per browser
        self._acked: dict[str, int] = {}  # last position each browser acknowledged
        self._behind: dict[str, int] = {}  # first position not sent to a browser past its window
        self._head = 0
        self._started = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread_done = threading.Event()
        self.sent = 0  # events sent to browsers (all of them together)
        self.gaps = 0  # gap markers sent
        socketio.on_event("connect", self._on_connect, namespace=NAMESPACE)
        socketio.on_event("resume", self._on_resume, namespace=NAMESPACE)
        socketio.on_event("ack", self._on_ack, namespace=NAMESPACE)
        socketio.on_event("disconnect", self._on_disconnect, namespace=NAMESPACE)

    # --- socket handlers (Socket.IO threads) -------------------------------------------

    def _on_connect(self, *args: Any) -> None:
        self.start()

    def _on_resume(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        after, token = message.get("after"), message.get("token")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            return
        self._requests.put(("resume", request.sid, after, token))  # type: ignore[attr-defined]

    def _on_ack(self, message: Any) -> None:
        pos = message.get("p") if isinstance(message, dict) else None
        if isinstance(pos, int) and not isinstance(pos, bool) and pos >= 0:
            self._requests.put(("ack", request.sid, pos, None))  # type: ignore[attr-defined]

    def _on_disconnect(self, *args: Any) -> None:
        self._requests.put(("drop", request.sid, 0, None))  # type: ignore[attr-defined]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task once (on the first browser connection)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self.socketio.start_background_task(self._run)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the background task."""
        self._stop.set()
        if self._started:
            self._thread_done.wait(timeout)

    @property
    def clients(self) -> int:
        return len(self._cursors)

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            feed = self.feed_factory()
            self._head = self.store.last_pos()
        except Exception:
            log.exception("live feed could not start")
            self._thread_done.set()
            return
        try:
            while not self._stop.is_set():
                try:
                    new = feed.drain(self.drain_timeout)
                    self._serve_requests()  # acknowledgements that came while waiting count
                    if new:
                        self._broadcast(self._in_order(new))
                except Exception:  # keep streaming: one bad batch must not end live updates
                    log.exception("live stream error")
                    time.sleep(0.2)
        finally:
            feed.close()
            self._thread_done.set()

    def _in_order(self, new: list[Stored]) -> list[Stored]:
        """Events after the head, in position order, holes filled from the store."""
        new = [s for s in new if s.pos > self._head]
        if not new:
            return []
        new.sort(key=lambda s: s.pos)
        if new[0].pos > self._head + 1 or any(
            b.pos != a.pos + 1 for a, b in itertools.pairwise(new)
        ):
            top = new[-1].pos
            filled: list[Stored] = []
            after = self._head
            while after < top:
                chunk = self.store.read(after, limit=READ_CHUNK)
                if not chunk:
                    break
                filled += [s for s in chunk if s.pos <= top]
                after = chunk[-1].pos
            known = {s.pos for s in filled}
            new = sorted(filled + [s for s in new if s.pos not in known], key=lambda s: s.pos)
        return new

    def _broadcast(self, events: list[Stored]) -> None:
        if not events:
            return
        self._head = events[-1].pos
        if not self._cursors:
            return
        payloads = self.payloads.convert(events)
        groups: dict[int, list[str]] = {}  # browsers at the same cursor get the same message
        for sid, cursor in self._cursors.items():
            if sid in self._behind:
                continue
            if cursor - self._acked.get(sid, cursor) > self.window:
                self._behind[sid] = cursor + 1
                continue
            groups.setdefault(cursor, []).append(sid)
        for cursor, sids in groups.items():
            fresh = [p for p in payloads if p["p"] > cursor]
            if fresh:
                self.socketio.emit("events", {"events": fresh}, to=sids, namespace=NAMESPACE)
                self.sent += len(fresh) * len(sids)
            for sid in sids:
                self._cursors[sid] = max(cursor, self._head)

    def _serve_requests(self) -> None:
        while True:
            try:
                kind, sid, pos, token = self._requests.get_nowait()
            except queue.Empty:
                return
            if kind == "drop":
                self._cursors.pop(sid, None)
                self._acked.pop(sid, None)
                self._behind.pop(sid, None)
            elif kind == "ack":
                self._on_acked(sid, pos)
            else:
                self._catch_up(sid, pos, token)

    def _on_acked(self, sid: str, pos: int) -> None:
        """Record an acknowledgement; a browser past its window that has now handled all it
        was sent gets a gap marker for what it missed, and the stream again."""
        if sid not in self._cursors:
            return
        self._acked[sid] = max(self._acked.get(sid, 0), pos)
        first = self._behind.get(sid)
        if first is None or self._acked[sid] < first - 1:
            return
        del self._behind[sid]
        last = self._head
        self._cursors[sid] = max(self._cursors[sid], last)
        if last >= first:
            self.socketio.emit("gap", {"first": first, "last": last}, to=sid, namespace=NAMESPACE)
            self.gaps += 1

    def _catch_up(self, sid: str, after: int, token: Any) -> None:
        events = self.store.read(after, limit=CATCHUP_LIMIT + 1)
        if len(events) > CATCHUP_LIMIT:
            self.socketio.emit("reload", {"token": token}, to=sid, namespace=NAMESPACE)
            self._cursors[sid] = max(self._cursors.get(sid, 0), self.store.last_pos())
            self._acked[sid] = max(self._acked.get(sid, 0), self._cursors[sid])
            return
        payloads = self.payloads.convert(events)
        top = events[-1].pos if events else after
        self.socketio.emit(
            "catchup",
            {"token": token, "after": after, "events": payloads},
            to=sid,
            namespace=NAMESPACE,
        )
        self.sent += len(payloads)
        self._cursors[sid] = max(self._cursors.get(sid, 0), top, after)
        # A catch-up is bounded by CATCHUP_LIMIT on its own; the window bounds the stream.
        self._acked[sid] = max(self._acked.get(sid, 0), self._cursors[sid])
