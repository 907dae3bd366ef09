"""Live push over Socket.IO: ordered, exactly-once delivery with late joiners and gaps.

Uses Flask-SocketIO's test client (no browser); the bridge's background task is real.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from collectors.events import JobEvent, RecordEvent, StageEvent
from collectors.hub import Hub
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard.app import create_app, parts
from dashboard.live import NAMESPACE
from tests.dashboard.synthetic import synthetic_history


class Client:
    """A Socket.IO test client that collects the events it was sent."""

    def __init__(self, app) -> None:
        self.io = parts(app).socketio.test_client(app.server, namespace=NAMESPACE)
        assert self.io.is_connected(NAMESPACE)
        self.events: list[dict] = []
        self.messages: list[tuple[str, dict]] = []

    def resume(self, after: int, token: object = 1) -> None:
        self.io.emit("resume", {"after": after, "token": token}, namespace=NAMESPACE)

    def pump(self) -> None:
        for message in self.io.get_received(NAMESPACE):
            (body,) = message["args"]
            self.messages.append((message["name"], body))
            if message["name"] in ("events", "catchup"):
                self.events.extend(body["events"])

    def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if check():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out; got {len(self.events)} events")

    @property
    def positions(self) -> list[int]:
        return [e["p"] for e in self.events]


def stage(sink: EventSink, i: int) -> None:
    sink.emit(StageEvent, job="j1", task="t", iteration=i, stage="build", resource="client:0",
              start=100.0 + i, end=100.5 + i)  # fmt: skip


@pytest.fixture
def live_app():
    store, hub = MemoryStore(), Hub()
    history = synthetic_history(store, jobs=2, iterations=1)
    app = create_app(store, live=hub)
    yield app, store, hub, history
    parts(app).bridge.stop()


def test_a_late_browser_catches_up_then_follows_the_stream_exactly_once(live_app) -> None:
    app, store, hub, _ = live_app
    sink = EventSink(store, source="live", hub=hub)
    for i in range(5):
        stage(sink, i)
    built_at = store.last_pos() - 3  # the figure was built before the last three events
    client = Client(app)
    client.resume(built_at, token=7)
    client.wait_for(lambda: len(client.events) == 3)
    assert client.messages[0][0] == "catchup" and client.messages[0][1]["token"] == 7
    for i in range(5, 60):
        stage(sink, i)
    client.wait_for(lambda: client.positions[-1:] == [store.last_pos()])
    assert client.positions == list(range(built_at + 1, store.last_pos() + 1))


def test_payloads_carry_what_the_figures_need(live_app) -> None:
    app, store, hub, history = live_app
    sink = EventSink(store, source="live", hub=hub)
    client = Client(app)
    client.resume(store.last_pos())
    client.wait_for(lambda: parts(app).bridge.clients == 1)
    job = history.jobs[0]
    sink.emit(
        StageEvent, job=job, task="t", iteration=2, stage="profile", resource="device:llvm:1",
        start=5.0, end=5.25, status="error", error="boom",
    )  # fmt: skip
    sink.emit(RecordEvent, job=job, task="t", candidate=1, run_secs=(0.002,))
    sink.emit(RecordEvent, job=job, task="t", candidate=2, error="x", error_class="run")
    sink.emit(JobEvent, job=job, change="paused")
    client.wait_for(lambda: len(client.events) == 4)
    s, ok, bad, paused = client.events
    snap = parts(app).context.view.snapshot()
    assert (s["k"], s["l"], s["a"], s["b"], s["st"]) == ("s", "device:llvm:1", 5.0, 5.25, "error")
    assert s["co"] == snap.colors[job] and "profile" in s["h"] and "boom" in s["h"]
    assert ok["k"] == "r" and ok["ms"] == pytest.approx(2.0) and ok["e"] is None
    assert bad["ms"] is None and bad["e"] == "run"
    assert paused == {**paused, "k": "j", "ch": "paused"}


def test_events_stored_but_not_yet_published_are_read_from_the_store(live_app) -> None:
    app, store, hub, _ = live_app
    client = Client(app)
    client.resume(store.last_pos())
    client.wait_for(lambda: parts(app).bridge.clients == 1)
    start = store.last_pos()
    quiet = EventSink(store, source="quiet")  # stores without publishing: a hole in the stream
    loud = EventSink(store, source="loud", hub=hub)
    stage(quiet, 0)
    stage(quiet, 1)
    stage(loud, 2)
    client.wait_for(lambda: len(client.events) == 3)
    assert client.positions == [start + 1, start + 2, start + 3]


def test_a_slow_subscription_that_overflows_loses_nothing() -> None:
    store, hub = MemoryStore(), Hub(maxsize=5)
    app = create_app(store, live=hub)
    try:
        client = Client(app)
        client.resume(0)
        client.wait_for(lambda: parts(app).bridge.clients == 1)
        sink = EventSink(store, source="burst", hub=hub)
        for i in range(300):
            stage(sink, i)
        client.wait_for(lambda: len(client.events) >= 300)
        assert client.positions == list(range(1, 301))
    finally:
        parts(app).bridge.stop()


def test_without_a_hub_the_store_is_tailed() -> None:
    store = MemoryStore()
    app = create_app(store)  # live=None: poll the store (another process may write it)
    try:
        client = Client(app)
        client.resume(0)
        sink = EventSink(store, source="elsewhere")
        for i in range(20):
            stage(sink, i)
        client.wait_for(lambda: len(client.events) == 20)
        assert client.positions == list(range(1, 21))
    finally:
        parts(app).bridge.stop()


def test_two_browsers_each_get_their_own_catch_up(live_app) -> None:
    app, store, hub, _ = live_app
    sink = EventSink(store, source="live", hub=hub)
    first, second = Client(app), Client(app)
    first.resume(store.last_pos())
    first.wait_for(lambda: parts(app).bridge.clients == 1)
    stage(sink, 0)
    stage(sink, 1)
    second.resume(store.last_pos() - 1)
    stage(sink, 2)
    top = store.last_pos()
    first.wait_for(lambda: first.positions[-1:] == [top])
    second.wait_for(lambda: second.positions[-1:] == [top])
    assert first.positions == [top - 2, top - 1, top]
    assert second.positions == [top - 1, top]
    first.io.disconnect(namespace=NAMESPACE)
    second.wait_for(lambda: parts(app).bridge.clients == 1)


def test_a_catch_up_that_is_too_long_asks_for_a_rebuild(live_app, monkeypatch) -> None:
    import dashboard.live

    app, _, _, _ = live_app
    monkeypatch.setattr(dashboard.live, "CATCHUP_LIMIT", 10)
    client = Client(app)
    client.resume(0, token="t")
    client.wait_for(lambda: bool(client.messages))
    assert client.messages[0] == ("reload", {"token": "t"})
    assert client.events == []


def test_bad_resume_messages_are_ignored(live_app) -> None:
    app, store, _, _ = live_app
    client = Client(app)
    for bad in ({"after": -1}, {"after": "x"}, "nonsense", {"after": True}):
        client.io.emit("resume", bad, namespace=NAMESPACE)
    client.resume(store.last_pos() - 1)
    client.wait_for(lambda: len(client.events) == 1)
    assert client.positions == [store.last_pos()]


def test_a_browser_that_stops_acknowledging_gets_a_gap_and_resumes_from_the_store(
    live_app,
) -> None:
    app, store, hub, _ = live_app
    bridge = parts(app).bridge
    bridge.window = 5
    sink = EventSink(store, source="live", hub=hub)
    keeping_up, frozen = Client(app), Client(app)
    start = store.last_pos()
    keeping_up.resume(start)
    frozen.resume(start)
    keeping_up.wait_for(lambda: bridge.clients == 2)
    for i in range(10):
        stage(sink, i)
    first_burst = store.last_pos()
    frozen.wait_for(lambda: frozen.positions[-1:] == [first_burst])
    keeping_up.wait_for(lambda: keeping_up.positions[-1:] == [first_burst])
    keeping_up.io.emit("ack", {"p": first_burst}, namespace=NAMESPACE)
    for i in range(10, 40):  # the frozen one has 10 unacknowledged events: more than 5
        stage(sink, i)
        keeping_up.wait_for(lambda: keeping_up.positions[-1:] == [store.last_pos()])
        keeping_up.io.emit("ack", {"p": store.last_pos()}, namespace=NAMESPACE)
    frozen.pump()
    assert frozen.positions[-1] == first_burst  # nothing more was queued for it
    frozen.io.emit("ack", {"p": first_burst}, namespace=NAMESPACE)  # it thaws
    frozen.wait_for(lambda: any(name == "gap" for name, _ in frozen.messages))
    gap = next(body for name, body in frozen.messages if name == "gap")
    assert gap == {"first": first_burst + 1, "last": store.last_pos()}
    frozen.resume(first_burst, token="after-gap")
    frozen.wait_for(lambda: frozen.positions[-1:] == [store.last_pos()])
    everything = list(range(start + 1, store.last_pos() + 1))
    assert frozen.positions == everything  # each once, the missed ones read from the store
    assert keeping_up.positions == everything
    assert not any(name == "gap" for name, _ in keeping_up.messages)
    assert bridge.gaps == 1


def test_bad_acknowledgements_are_ignored(live_app) -> None:
    app, store, hub, _ = live_app
    client = Client(app)
    client.resume(store.last_pos())
    for bad in ({"p": -1}, {"p": "x"}, "nonsense", {"p": True}, {}):
        client.io.emit("ack", bad, namespace=NAMESPACE)
    stage(EventSink(store, source="live", hub=hub), 0)
    client.wait_for(lambda: client.positions == [store.last_pos()])
