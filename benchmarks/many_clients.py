"""Many browsers on one dashboard: 50 Socket.IO clients and 2 headless chromium pages.

One dashboard server (its own process, so that its memory can be read) stores and pushes
**synthetic** events in the mix of a tuning run (``dashboard_bench``'s live part) at a fixed
rate through the real ``EventSink`` -> SQLite store -> ``Hub`` -> Socket.IO path. Watching:
``--clients`` python-socketio clients (in ``--procs`` processes) that follow the live
protocol like the browser client (resume, acknowledge, resume from the store after a gap),
one more such client that is **frozen** (its process stopped with SIGSTOP for ``--freeze``
seconds at a time, then continued) during the middle third of the run, and two chromium
pages (Timeline, Convergence) measuring emit-to-painted latency. The pages' losses count the
Convergence page's records, and the Timeline's stages while it draws each one (past the
dashboard's 5,000 exact bars it shows an aggregated view instead, as it should).

Before the run the server stores ``--prefill`` events (150,000 by default), so that its store
is larger than its SQLite page caches (the writer's 8 MiB, each reader's ``--reader-cache-kib``),
as on a server that has run for a while: from an empty store (``--prefill 0``) anonymous
memory grows until those caches are full (about 100,000 events), then stays flat.

Printed: events lost and duplicated per client (each must be 0, the frozen one's included),
the gap markers the frozen client got, the server's resident memory at the start and end,
and the p95 emit-to-received latency of the other clients (and emit-to-painted of the pages)
before, during and after the freeze: one frozen client must not slow the others.

    python benchmarks/many_clients.py --seconds 600 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

NAMESPACE = "/live"
ACK_SECONDS = 0.25  # as often as the browser client acknowledges


# --- the server process ----------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """Serve the dashboard on a fresh SQLite store; on "go" emit, then report and wait."""
    from dashboard_bench import _emit, _plan

    import collectors.sqlite_store
    from collectors.events import JobEvent
    from collectors.hub import Hub
    from collectors.sink import EventSink
    from collectors.sqlite_store import SQLiteStore
    from dashboard.app import create_app, parts
    from dashboard.server import start

    # The store's reading connections cache up to 64 MiB of pages each: the file's growth
    # would show as memory. A small cache leaves what the live path itself holds.
    collectors.sqlite_store._READER_CACHE_KIB = args.reader_cache_kib
    with tempfile.TemporaryDirectory() as tmp:
        store, hub = SQLiteStore(Path(tmp) / "live.db"), Hub()
        sink = EventSink(store, hub=hub, source="synthetic-many")
        jobs = [f"j{i + 1}-many" for i in range(3)]
        for job in jobs:
            sink.emit(JobEvent, job=job, change="submitted", name=job, target="llvm")
        plan = _plan(jobs)
        emitted = EmitLog()
        for _ in range(3 * len(jobs) * 10):  # every series exists before anyone watches
            _emit(sink, next(plan), store, emitted)
        with sink.batched():  # a store larger than its page caches, as after a while
            for _ in range(args.prefill):
                _emit(sink, next(plan), store, emitted)
        emitted.clear()
        app = create_app(store, live=hub)
        bridge = parts(app).bridge
        bridge.window = args.window
        running = start(app)
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # clients closing at the end
        print(json.dumps({"url": running.url, "pos": store.last_pos()}), flush=True)
        sys.stdin.readline()  # "go"
        first = store.last_pos() + 1
        total = int(args.seconds * args.rate)
        begin = time.perf_counter()
        for k in range(total):
            delay = begin + k / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            _emit(sink, next(plan), store, emitted)
        elapsed = time.perf_counter() - begin
        report = {
            "first": first, "last": store.last_pos(), "rate_hz": round(total / elapsed, 2),
            "sent": bridge.sent, "gaps": bridge.gaps, "clients": bridge.clients,
            "emitted": {p: v for p, v in emitted.items() if p >= first},
            "prefill": args.prefill,
            "store_mb": round(sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20, 1),
        }  # fmt: skip
        print(json.dumps(report), flush=True)
        sys.stdin.readline()  # "stop"
        running.stop()
        store.close()
    return 0


class EmitLog:
    """Position -> (kind, emit time) of the events emitted, in arrays (about 17 bytes an
    event, not a dict's ~200), so that the server's own memory is what is measured."""

    def __init__(self) -> None:
        self._pos, self._ts, self._kind = array("q"), array("d"), bytearray()
        self._kinds: list[str] = []

    def __setitem__(self, pos: int, value: tuple[str, float]) -> None:
        kind, ts = value
        if kind not in self._kinds:
            self._kinds.append(kind)
        self._pos.append(pos)
        self._ts.append(ts)
        self._kind.append(self._kinds.index(kind))

    def clear(self) -> None:
        del self._pos[:], self._ts[:], self._kind[:]

    def items(self) -> Iterator[tuple[int, tuple[str, float]]]:
        for pos, ts, code in zip(self._pos, self._ts, self._kind, strict=True):
            yield pos, (self._kinds[code], ts)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process, MiB: all of it (``VmRSS``), or its heap and other
    anonymous memory (``RssAnon``) apart from mapped files (``RssFile``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- Socket.IO clients -----------------------------------------------------------------------


class Follower:
    """One client following the live protocol as the browser client does: events strictly
    after its mark are taken, a gap marker or a reconnection resumes from the store."""

    def __init__(self, url: str, after: int) -> None:
        import socketio

        self.url = url
        self.mark = after
        self.waiting: Any = None
        self.token = 0
        self.acked = after
        self.taken: dict[int, float] = {}  # position -> emit-to-received seconds (stream)
        self.caught: set[int] = set()  # positions taken from catch-ups (read from the store)
        self.duplicated = 0  # positions the server sent again outside a resume's overlap
        self.gaps = 0
        self.reloads = 0
        self.connects = 0
        self.io = socketio.Client(reconnection=True, reconnection_delay=0.2)
        _in_order(self.io)
        self.io.on("connect", self._on_connect, namespace=NAMESPACE)
        self.io.on("events", self._on_events, namespace=NAMESPACE)
        self.io.on("catchup", self._on_catchup, namespace=NAMESPACE)
        self.io.on("gap", self._on_gap, namespace=NAMESPACE)
        self.io.on("reload", self._on_reload, namespace=NAMESPACE)

    def connect(self) -> None:
        self.io.connect(self.url, namespaces=[NAMESPACE], transports=["websocket"])

    def _resume(self) -> None:
        self.token += 1
        self.waiting = self.token
        self.io.emit("resume", {"after": self.mark, "token": self.token}, namespace=NAMESPACE)

    def _on_connect(self) -> None:
        self.connects += 1
        self._resume()

    def _take(self, events: list[dict[str, Any]], stream: bool) -> None:
        now = time.time()
        for e in events:
            p = e["p"]
            if p <= self.mark:
                self.duplicated += 1
                continue
            self.mark = p
            if stream:
                self.taken[p] = now - e["ts"]
            else:
                self.caught.add(p)

    def _on_events(self, msg: dict[str, Any]) -> None:
        if self.waiting is None:
            self._take(msg["events"], True)

    def _on_catchup(self, msg: dict[str, Any]) -> None:
        if msg.get("token") != self.waiting:
            return
        self.waiting = None
        events = msg["events"]
        self._take([e for e in events if e["p"] > self.mark], False)

    def _on_gap(self, msg: dict[str, Any]) -> None:
        self.gaps += 1
        self._resume()

    def _on_reload(self, msg: dict[str, Any]) -> None:
        self.reloads += 1  # a browser would rebuild its figures from the store

    def ack(self) -> None:
        if self.mark > self.acked and self.io.connected:
            self.acked = self.mark
            with contextlib.suppress(Exception):  # reconnecting: the next one goes out later
                self.io.emit("ack", {"p": self.mark}, namespace=NAMESPACE)

    def summary(self, first: int, last: int, phases: list[float]) -> dict[str, Any]:
        got = set(self.taken) | self.caught
        latencies: list[list[float]] = [[] for _ in phases[:-1]]
        return {
            "lost": sum(1 for p in range(first, last + 1) if p not in got),
            "duplicated": self.duplicated,
            "from_store": len([p for p in self.caught if first <= p <= last]),
            "gaps": self.gaps,
            "reloads": self.reloads,
            "connects": self.connects,
            "latencies": latencies,
        }


def _in_order(client: Any) -> None:
    """Handle messages on the read loop, in arrival order (python-engineio would start a
    thread per message, which may run them out of order)."""
    trigger = client.eio._trigger_event

    def in_order(event: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("run_async", None)
        return trigger(event, *args, **kwargs)

    client.eio._trigger_event = in_order


def clients_process(url: str, after: int, count: int, conn: Any) -> None:
    """``count`` followers in one process; answers the parent's commands over ``conn``."""
    followers = [Follower(url, after) for _ in range(count)]
    for f in followers:
        f.connect()
    stop = threading.Event()

    def acks() -> None:
        while not stop.wait(ACK_SECONDS):
            for f in followers:
                f.ack()

    threading.Thread(target=acks, daemon=True).start()
    conn.send("ready")
    while True:
        command, arg = conn.recv()
        if command == "wait":  # until every follower has taken everything up to arg
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and any(f.mark < arg for f in followers):
                time.sleep(0.1)
            conn.send([f.mark for f in followers])
        elif command == "report":
            first, last, emit_ts, phases = arg
            out = []
            for f in followers:
                s = f.summary(first, last, phases)
                for p, lat in f.taken.items():
                    ts = emit_ts.get(p)
                    if ts is None:
                        continue
                    for i in range(len(phases) - 1):
                        if phases[i] <= ts < phases[i + 1]:
                            s["latencies"][i].append(lat * 1000)
                out.append(s)
            conn.send(out)
        elif command == "stop":  # the server stops next: no goodbyes
            stop.set()
            conn.send("stopped")
            os._exit(0)


# --- chromium pages ------------------------------------------------------------------------


def open_pages(browser: Any, url: str) -> list[Any]:
    from dashboard_bench import PAINT_HOOK

    pages = []
    for path, graph in (("/", "timeline-graph"), ("/convergence", "convergence-graph")):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(PAINT_HOOK)
        page = context.new_page()
        page.goto(url + path)
        page.wait_for_selector("#live-status.tl-live-on", timeout=60_000)
        page.wait_for_function(
            f"() => {{ const g = window.tuneloomLive.graphs['{graph}'];"
            " return g && g.waiting === null; }"
        )
        pages.append(page)
    return pages


def page_results(pages: list[Any], stages: set[int], records: set[int]) -> dict[str, Any]:
    """Paint times, and events lost or drawn twice: records on the Convergence page, stages on
    the Timeline while it draws each stage (past the dashboard's limit of exact bars it shows
    an aggregated view instead: then its stages are not counted)."""
    from dashboard_bench import _drawn

    timeline, convergence = pages
    exact = "window.tuneloomLive.graphs['timeline-graph'].base.mode === 'bars'"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        bars_mode = timeline.evaluate(exact)
        bars = _drawn(timeline, "timeline-graph", ["stages"]) if bars_mode else []
        lines = convergence.evaluate("window.tuneloomLive.drawnRecords('convergence-graph')")
        if (not bars_mode or stages <= set(bars)) and records <= set(lines):
            break
        time.sleep(0.2)
    painted: dict[int, float] = {}
    for page in pages:
        for pos, t in page.evaluate("window.tuneloomLive.stats.painted").items():
            painted[int(pos)] = min(t, painted.get(int(pos), t))
    checked = (stages if bars_mode else set()) | records
    drawn_all = [p for p in bars if p in stages] + [p for p in lines if p in records]
    return {
        "painted": painted,
        "timeline_aggregated": not bars_mode,
        "checked": len(checked),
        "lost": len(checked - set(drawn_all)),
        "duplicated": len(drawn_all) - len(set(drawn_all)),
    }


# --- the run ---------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from dashboard_bench import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--seconds", str(args.seconds),
         "--rate", str(args.rate), "--window", str(args.window),
         "--reader-cache-kib", str(args.reader_cache_kib), "--prefill", str(args.prefill)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    result: dict[str, Any] = {"clients": args.clients, "rate": args.rate}
    workers: list[tuple[Any, Any]] = []
    try:
        hello = json.loads(server.stdout.readline())
        url, after = hello["url"], hello["pos"]
        ctx = mp.get_context("spawn")
        sizes = [
            args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
            for i in range(args.procs)
        ] + [1]  # fmt: skip  (the last: the frozen one)
        for size in sizes:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=clients_process, args=(url, after, size, theirs))
            proc.start()
            workers.append((proc, mine))
        for _, conn in workers:
            assert conn.recv() == "ready"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = open_pages(browser, url)
            time.sleep(2)  # let the server settle before its memory is read
            result["server_rss_start_mb"] = round(rss_mb(server.pid), 1)
            result["server_anon_start_mb"] = round(rss_mb(server.pid, "RssAnon"), 1)
            samples: list[tuple[float, float]] = []
            begin = time.time()
            phases = [begin, begin + args.seconds / 3, begin + 2 * args.seconds / 3]
            phases.append(begin + args.seconds + 3600)
            server.stdin.write("go\n")
            server.stdin.flush()
            frozen = workers[-1][0]
            freezes = 0
            reader: dict[str, Any] = {}
            done = threading.Thread(
                target=lambda: reader.update(json.loads(server.stdout.readline())), daemon=True
            )
            done.start()
            while done.is_alive():
                now = time.time()
                in_middle = phases[1] <= now < phases[2]
                samples.append((now - begin, rss_mb(server.pid, "RssAnon")))
                if in_middle and now + args.freeze <= phases[2]:
                    os.kill(frozen.pid, signal.SIGSTOP)
                    freezes += 1
                    done.join(args.freeze)
                    os.kill(frozen.pid, signal.SIGCONT)
                    done.join(args.freeze)  # as long awake as frozen
                else:
                    done.join(1.0)
            first, last = reader["first"], reader["last"]
            result["server_rss_end_mb"] = round(rss_mb(server.pid), 1)
            result["server_anon_end_mb"] = round(rss_mb(server.pid, "RssAnon"), 1)
            result["server_anon_mb_every_30s"] = [
                round(next(r for t, r in samples if t >= mark), 1)
                for mark in range(0, int(samples[-1][0]) + 1, 30)
            ]
            result["store_file_mb"] = reader["store_mb"]
            result["reader_cache_kib"] = args.reader_cache_kib
            result["prefill_events"] = reader["prefill"]
            result["events"] = last - first + 1
            result["rate_hz"] = reader["rate_hz"]
            result["freezes"] = freezes
            result["server_gap_markers"] = reader["gaps"]
            for _, conn in workers:
                conn.send(("wait", last))
            marks = [conn.recv() for _, conn in workers]
            # position -> (kind, emit time): the pages' and the clients' latencies by phase
            emitted = {int(p): tuple(v) for p, v in reader["emitted"].items()}
            stages = {p for p, (kind, _) in emitted.items() if kind == "stage"}
            records = {p for p, (kind, _) in emitted.items() if kind == "record"}
            shown = page_results(pages, stages, records)
            emit_ts = {p: ts for p, (_, ts) in emitted.items()}
            reports = []
            for _, conn in workers:
                conn.send(("report", (first, last, emit_ts, phases)))
                reports.extend(conn.recv())
            browser.close()
        normal, frozen_report = reports[:-1], reports[-1]
        names = ("before", "during", "after")
        result["clients_lost"] = [r["lost"] for r in normal]
        result["clients_duplicated"] = [r["duplicated"] for r in normal]
        result["clients_gaps"] = sum(r["gaps"] for r in normal)
        for i, name in enumerate(names):
            values = [v for r in normal for v in r["latencies"][i]]
            result[f"clients_p95_ms_{name}_freeze"] = quantile(values, 0.95)
            result[f"clients_p50_ms_{name}_freeze"] = quantile(values, 0.5)
            per_client = [quantile(r["latencies"][i], 0.95) for r in normal]
            result[f"clients_worst_p95_ms_{name}_freeze"] = max(
                (v for v in per_client if v is not None), default=None
            )
        result["frozen_lost"] = frozen_report["lost"]
        result["frozen_duplicated"] = frozen_report["duplicated"]
        result["frozen_gap_markers"] = frozen_report["gaps"]
        result["frozen_from_store"] = frozen_report["from_store"]
        result["frozen_reconnects"] = frozen_report["connects"] - 1
        result["frozen_reloads"] = frozen_report["reloads"]
        result["caught_up"] = all(m >= last for ms in marks for m in ms)
        for i, name in enumerate(names):
            values = [
                t - emit_ts[p] * 1000
                for p, t in shown["painted"].items()
                if p in emit_ts and phases[i] <= emit_ts[p] < phases[i + 1]
            ]
            result[f"pages_p95_ms_{name}_freeze"] = quantile(values, 0.95)
        result["pages_events_checked"] = shown["checked"]
        result["pages_timeline_aggregated"] = shown["timeline_aggregated"]
        result["pages_lost"] = shown["lost"]
        result["pages_duplicated"] = shown["duplicated"]
        result["seconds"] = args.seconds
    finally:
        for proc, conn in workers:
            try:
                os.kill(proc.pid, signal.SIGCONT)
                conn.send(("stop", None))
                conn.recv()
            except Exception:
                pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        if server.poll() is None:
            try:
                server.stdin.write("stop\n")
                server.stdin.flush()
                server.wait(timeout=20)
            except Exception:
                server.kill()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--clients", type=int, default=50, help="Socket.IO clients")
    parser.add_argument("--procs", type=int, default=5, help="processes the clients run in")
    parser.add_argument("--freeze", type=float, default=15.0,
                        help="seconds the frozen client stays stopped each time")  # fmt: skip
    parser.add_argument("--window", type=int, default=300,
                        help="events a client may leave unacknowledged before a gap")  # fmt: skip
    parser.add_argument("--reader-cache-kib", type=int, default=2048,
                        help="page cache of the server's store readers, KiB")  # fmt: skip
    parser.add_argument("--prefill", type=int, default=150_000,
                        help="events stored before the run, so that the store is larger "
                        "than its page caches (0: start from an empty store)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36s} {value}")
    ok = (
        not any(result["clients_lost"]) and not any(result["clients_duplicated"])
        and result["frozen_lost"] == 0 and result["frozen_duplicated"] == 0
        and result["pages_lost"] == 0 and result["pages_duplicated"] == 0
    )  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
