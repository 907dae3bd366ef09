"""Dashboard speed in headless chromium: the 100k-stage timeline and live push.

Timeline: a fresh SQLite store holds 100,000 **synthetic** stages (32 resources, 8 jobs). The
dashboard is served from it (``dashboard.start``: the store is read once at start) and a fresh
browser context opens the Timeline page. First paint is the time from navigation start to the
moment the timeline figure is drawn (the Plotly promise resolved, then one animation frame).
Zoom is the time from a zoom (``Plotly.relayout`` of the x range, what a drag does) to the
redrawn figure: once into a window that still aggregates and once into a window of ~4,000
stages drawn as exact bars. For comparison, the same 100,000 stages drawn as plain Plotly bars
(one ``go.Bar`` trace, the naive figure) in a blank page of the same browser.

Live: **synthetic** events are emitted through the real ``EventSink`` -> store -> ``Hub`` ->
Socket.IO path at a fixed rate for a fixed time (default 50 events/s for 60 s), in the mix of
a tuning run (per iteration: select, build, profile, six measured candidates, update). Two
pages watch: the Timeline (stage events become bars) and the Convergence page with every
measurement shown (record events become points or error crosses). Latency is from the event's
``ts`` (stamped when emitted) to its first paint in either page; lost are emitted events no page
drew, duplicated are positions drawn twice. The browser and the server share one clock.

    python benchmarks/dashboard_bench.py --json
    python benchmarks/dashboard_bench.py --live-only --compare --json   # live push only
    python benchmarks/dashboard_bench.py --db sim.db --no-live --json   # a given store's timeline

With ``--db`` the timeline part measures the given store instead of the synthetic one (e.g.
one written by ``tuneloom simulate --jobs 1000 --clients 64 --devices 16 --db sim.db``: 80
resource lanes, 128,000 simulated stages); its figures are named ``gantt_store_*``.

Live batches are drawn as an overlay over the figure (see assets/tuneloom_overlay.js);
``--compare`` first runs the same live part with every batch redrawing the whole figure
(Plotly.extendTraces), the way it was drawn before, and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import plotly

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from collectors.events import JobEvent, RecordEvent, StageEvent  # noqa: E402
from collectors.hub import Hub  # noqa: E402
from collectors.memory_store import MemoryStore  # noqa: E402
from collectors.sink import EventSink  # noqa: E402
from collectors.sqlite_store import SQLiteStore  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.context import BARS_LIMIT  # noqa: E402
from dashboard.server import start  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]
LIMIT = BARS_LIMIT  # the dashboard draws exact bars up to this many visible stages
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

# Records when each graph finished drawing (Plotly's promise, then one animation frame).
PAINT_HOOK = """
window.tuneloomMeasure = true;
window.__paints = [];
(function () {
  function graphId(gd) {
    var el = gd.parentElement;
    while (el && !el.id) el = el.parentElement;
    return el ? el.id : null;
  }
  function record(gd) {
    requestAnimationFrame(function () {
      var d = gd.data && gd.data[0];
      window.__paints.push({
        t: performance.now(), id: graphId(gd), type: d ? d.type : null,
        x0: !d ? null : d.x0 !== undefined ? Number(d.x0)
          : d.x && d.x.length ? Number(d.x[0]) : null,
        n: d && d.x ? d.x.length : 0,
      });
    });
  }
  function wrap(P) {
    ["react", "newPlot"].forEach(function (name) {
      var orig = P[name];
      if (!orig || orig.__wrapped) return;
      P[name] = function (gd) {
        var out = orig.apply(this, arguments);
        var el = typeof gd === "string" ? document.getElementById(gd) : gd;
        Promise.resolve(out).then(function () { record(el); });
        return out;
      };
      P[name].__wrapped = true;
    });
  }
  var current;
  Object.defineProperty(window, "Plotly", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = value; if (value) wrap(value); },
  });
})();
"""


# --- synthetic data ------------------------------------------------------------------------


def big_store(path: Path, stages: int, *, lanes: int = 32, jobs: int = 8, seed: int = 0):
    """A SQLite store of ``stages`` synthetic stages on ``lanes`` resources (4 clients).

    Every lane runs stages back to back with short idle gaps over the same span; a lane works
    for one job for a while, then switches, so colours come in stretches.
    """
    rng = random.Random(seed)
    store = SQLiteStore(path)
    source, t0 = "synthetic-bench", 1_700_000_000.0
    resources = [f"client:{i}" for i in range(4)]
    resources += [f"device:rpc:cpu:{i}" for i in range(lanes - 4)]
    events: list[Any] = []
    seq = 0
    for j in range(jobs):
        events.append(
            JobEvent(source=source, seq=seq, ts=t0, job=f"j{j + 1}-bench", change="submitted",
                     name=f"model-{j + 1}", target="llvm")
        )  # fmt: skip
        seq += 1
    per_lane = stages // len(resources)
    end = t0
    for index, resource in enumerate(resources):
        t = t0 + rng.uniform(0.0, 2.0)
        job = rng.randrange(jobs)
        client = resource.startswith("client")
        for i in range(per_lane + (1 if index < stages % len(resources) else 0)):
            if rng.random() < 0.02:
                job = rng.randrange(jobs)
            kind = ("select", "build", "update")[i % 3] if client else "profile"
            start = t + rng.expovariate(2.0)
            finish = start + rng.uniform(0.2, 3.0)
            t = finish
            events.append(StageEvent(
                source=source, seq=seq, ts=finish, job=f"j{job + 1}-bench",
                task=f"task-{rng.randrange(24)}", iteration=i // 24, stage=kind,
                resource=resource, start=start, end=finish,
            ))  # fmt: skip
            seq += 1
            if len(events) >= 20_000:
                store.append(events)
                events = []
        end = max(end, t)
    store.append(events)
    return store, end - t0


# --- browser measurements ------------------------------------------------------------------


def _paint_after(page: Any, graph: str, since: float, check: str, timeout: float) -> float:
    """ms from ``since`` to the first paint of ``graph`` after it that satisfies ``check``."""
    js = "([g, since]) => window.__paints.find(p => p.id === g && p.t > since && (" + check + "))"
    page.wait_for_function(js, arg=[graph, since], timeout=timeout * 1000)
    found = page.evaluate(js, [graph, since])
    return float(found["t"]) - since


def gantt(
    browser: Any, url: str, store: Any, repeats: int, name: str = "gantt_100k"
) -> dict[str, Any]:
    """Median first paint and zoom times of the Timeline page over ``repeats`` fresh loads
    (figures named ``name``_...)."""
    df = store.stage_intervals()
    x0 = (df["start"] - df["start"].min()).to_numpy()
    x1 = (df["end"] - df["start"].min()).to_numpy()
    span = float(x1.max())

    def count(lo: float, hi: float) -> int:
        return int(((x1 >= lo) & (x0 <= hi)).sum())

    # Zoom 1: an eighth of the run. Zoom 2: a window of about 4,000 stages (exact bars).
    wide = (span * 0.4, span * 0.525)
    width = span * 4000 / len(df)
    narrow = (span * 0.5, span * 0.5 + width)
    first: list[float] = []
    warm: list[float] = []
    zooms: dict[tuple[float, float], list[float]] = {wide: [], narrow: []}
    full = "'heatmap'" if len(df) > LIMIT else "'bar'"
    failed_zooms = 0
    for _ in range(repeats):
        # Cold: a fresh browser profile (no cached scripts), as on a first visit.
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(PAINT_HOOK)
        page = context.new_page()
        page.goto(url + "/")
        first.append(_paint_after(page, "timeline-graph", 0.0, f"p.type === {full}", 60) / 1e3)
        for lo, hi in zooms:
            n = count(lo, hi)
            check = f"p.type === 'heatmap' && p.x0 >= {lo}" if n > LIMIT else f"p.n === {n}"
            try:
                zooms[(lo, hi)].append(_zoom(page, lo, hi, check) / 1e3)
            except PlaywrightTimeout:  # counted and reported, never hidden
                failed_zooms += 1
                zooms[(lo, hi)].append(_zoom(page, lo, hi, check) / 1e3)
        # Warm: the same browser loads the page again (scripts cached, as on a reload).
        page.goto(url + "/")
        warm.append(_paint_after(page, "timeline-graph", 0.0, f"p.type === {full}", 60) / 1e3)
        context.close()
    medians = {key: statistics.median(values) for key, values in zooms.items()}
    figures = {
        "first_paint_s": round(statistics.median(first), 3),
        "first_paint_warm_s": round(statistics.median(warm), 3),
        "zoom_s": round(max(medians.values()), 3),
        "zoom_wide_s": round(medians[wide], 3),
        "zoom_wide_stages": count(*wide),
        "zoom_narrow_s": round(medians[narrow], 3),
        "zoom_narrow_stages": count(*narrow),
        "first_paint_all_s": [round(v, 3) for v in first],
        "zoom_redrawn_late": failed_zooms,  # zooms not redrawn within 30 s, redone
    }
    return {f"{name}_{key}": value for key, value in figures.items()}


def _zoom(page: Any, lo: float, hi: float, check: str) -> float:
    """ms from a zoom to the x range [lo, hi] to the redrawn figure passing ``check``."""
    since = page.evaluate(
        """([lo, hi]) => {
            const gd = document.querySelector('#timeline-graph .js-plotly-plot');
            const t = performance.now();
            window.Plotly.relayout(gd, {'xaxis.range[0]': lo, 'xaxis.range[1]': hi});
            return t;
        }""",
        [lo, hi],
    )
    return _paint_after(page, "timeline-graph", since, check, 30)


def plain_bars(browser: Any, store: SQLiteStore) -> float:
    """Seconds to draw every stage as one plain Plotly bar trace (the naive figure)."""
    df = store.stage_intervals()
    fig = {
        "data": [{
            "type": "bar", "orientation": "h", "y": df["resource"].tolist(),
            "x": (df["end"] - df["start"]).round(4).tolist(),
            "base": (df["start"] - df["start"].min()).round(4).tolist(),
            "hovertext": (df["job"] + " " + df["task"] + " " + df["stage"]).tolist(),
            "hoverinfo": "text",
        }],
        "layout": {"barmode": "overlay", "height": 900},
    }  # fmt: skip
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_content("<div id='g'></div>")
    page.add_script_tag(path=str(PLOTLY_JS))
    ms = page.evaluate(
        """async (text) => {
            const fig = JSON.parse(text);
            const t = performance.now();
            await Plotly.newPlot('g', fig.data, fig.layout);
            await new Promise(r => requestAnimationFrame(() => r()));
            return performance.now() - t;
        }""",
        json.dumps(fig),
    )
    context.close()
    return ms / 1000


def live(browser: Any, seconds: float, rate: float, *, full_redraws: bool = False) -> dict:
    """Latency, losses and duplicates of live push into two pages (see the module text).

    ``full_redraws``: the pages redraw the whole figure for every batch (no overlay), the
    way live updates were drawn before, for a side-by-side comparison.
    """
    store, hub = MemoryStore(), Hub()
    sink = EventSink(store, hub=hub, source="synthetic-live")
    jobs = [f"j{i + 1}-live" for i in range(3)]
    for job in jobs:
        sink.emit(JobEvent, job=job, change="submitted", name=job, target="llvm")
    # Three iterations first, so that every series exists before the pages open.
    emitted: dict[int, tuple[str, float]] = {}
    plan = _plan(jobs)
    for _ in range(3 * len(jobs) * 10):
        _emit(sink, next(plan), store, emitted)
    emitted.clear()
    running = start(create_app(store, live=hub))
    pages = []
    try:
        for path in ("/", "/convergence"):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(PAINT_HOOK)
            if full_redraws:
                context.add_init_script("window.tuneloomFullRedraws = true;")
            page = context.new_page()
            page.goto(running.url + path)
            page.wait_for_selector("#live-status.tl-live-on", timeout=60_000)
            pages.append((context, page))
        pages[1][1].wait_for_function(
            "() => { const g = window.tuneloomLive.graphs['convergence-graph'];"
            " return g && g.base.mode === 'patch' && g.waiting === null; }"
        )
        pages[0][1].wait_for_function(
            "() => { const g = window.tuneloomLive.graphs['timeline-graph'];"
            " return g && g.waiting === null; }"
        )
        total = int(seconds * rate)
        begin = time.perf_counter()
        for k in range(total):
            delay = begin + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            _emit(sink, next(plan), store, emitted)
        elapsed = time.perf_counter() - begin
        stages = {p for p, (kind, _) in emitted.items() if kind == "stage"}
        records = {p for p, (kind, _) in emitted.items() if kind == "record"}
        timeline, convergence = pages[0][1], pages[1][1]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            drawn_stages = _drawn(timeline, "timeline-graph", ["stages"])
            drawn_records = convergence.evaluate(
                "window.tuneloomLive.drawnRecords('convergence-graph')"
            )
            if stages <= set(drawn_stages) and records <= set(drawn_records):
                break
            time.sleep(0.2)
        painted: dict[int, float] = {}
        received: dict[int, float] = {}
        for _, page in pages:  # times are unix milliseconds (the page's clock)
            for pos, t in page.evaluate("window.tuneloomLive.stats.painted").items():
                painted[int(pos)] = min(t, painted.get(int(pos), t))
            for pos, t in page.evaluate("window.tuneloomLive.stats.seen").items():
                received[int(pos)] = min(t, received.get(int(pos), t))
        stats = "window.tuneloomLive.stats"
        counts = {
            name: page.evaluate(f"(s => ({{extends: s.extends, overlays: s.overlays,"
                                f" settles: s.settles, gaps: s.gaps}}))({stats})")
            for name, (_, page) in zip(("timeline", "convergence"), pages, strict=True)
        }  # fmt: skip
        arrivals = sorted(
            received[p] - ts * 1000 for p, (_, ts) in emitted.items() if p in received
        )
        latencies = sorted(painted[p] - ts * 1000 for p, (_, ts) in emitted.items() if p in painted)
        drawn_all = [p for p in drawn_stages if p in stages] + [
            p for p in drawn_records if p in records
        ]
        return {
            "live_p50_ms": round(_quantile(latencies, 0.5), 1),
            "live_p95_ms": round(_quantile(latencies, 0.95), 1),
            "live_max_ms": round(latencies[-1], 1) if latencies else None,
            "live_stage_p95_ms": round(_kind_quantile(painted, emitted, "stage", 0.95), 1),
            "live_record_p95_ms": round(_kind_quantile(painted, emitted, "record", 0.95), 1),
            "live_received_p50_ms": round(_quantile(arrivals, 0.5), 1),
            "live_received_p95_ms": round(_quantile(arrivals, 0.95), 1),
            "live_lost": len((stages | records) - set(drawn_all)),
            "live_duplicated": len(drawn_all) - len(set(drawn_all)),
            "live_events": len(emitted),
            "live_stage_events": len(stages),
            "live_record_events": len(records),
            "live_rate_hz": round(len(emitted) / elapsed, 2),
            # per page: batches drawn over the figure, redraws (new axes range, lanes...)
            "live_timeline_overlays": counts["timeline"]["overlays"],
            "live_timeline_redraws": counts["timeline"]["extends"] + counts["timeline"]["settles"],
            "live_convergence_overlays": counts["convergence"]["overlays"],
            "live_convergence_redraws": (
                counts["convergence"]["extends"] + counts["convergence"]["settles"]
            ),
            "live_gaps": counts["timeline"]["gaps"] + counts["convergence"]["gaps"],
            "live_seconds": round(elapsed, 1),
        }
    finally:
        for context, _ in pages:
            context.close()
        running.stop()


def _plan(jobs: list[str]):
    """The event mix of a tuning run, forever: per iteration 4 stages and 6 candidates."""
    rng = random.Random(1)
    iteration = 0
    while True:
        for job in jobs:
            task = f"task-{iteration % 3}"
            for kind in ("select", "build", "profile"):
                yield ("stage", job, task, iteration, kind, rng)
            for c in range(6):
                yield ("record", job, task, iteration, c, rng)
            yield ("stage", job, task, iteration, "update", rng)
        iteration += 1


def _emit(sink: EventSink, step: tuple, store: Any, emitted: dict[int, tuple[str, float]]):
    kind, job, task, iteration, what, rng = step
    now = time.time()
    if kind == "stage":
        resource = "device:llvm:0" if what == "profile" else "client:0"
        event = sink.emit(StageEvent, ts=now, job=job, task=task, iteration=iteration,
                          stage=what, resource=resource, start=now - 0.015, end=now)  # fmt: skip
    elif rng.random() < 0.05:
        event = sink.emit(
            RecordEvent, ts=now, job=job, task=task, iteration=iteration,
            candidate=iteration * 6 + what, error="synthetic", error_class="run",
        )  # fmt: skip
    else:
        secs = 1e-3 * (1 + 3 * 0.9**iteration) * rng.uniform(0.8, 1.5)
        event = sink.emit(RecordEvent, ts=now, job=job, task=task, iteration=iteration,
                          candidate=iteration * 6 + what, run_secs=(secs,))  # fmt: skip
    emitted[store.last_pos()] = (kind, event.ts)


def _drawn(page: Any, graph: str, traces: list[str]) -> list[int]:
    return page.evaluate("([g, t]) => window.tuneloomLive.drawn(g, t)", [graph, traces])


def _kind_quantile(painted: dict[int, float], emitted: dict, kind: str, q: float) -> float:
    values = sorted(
        painted[p] - ts * 1000 for p, (k, ts) in emitted.items() if k == kind and p in painted
    )
    return _quantile(values, q)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def timeline(browser: Any, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """First paint and zoom of the big timeline, and the plain-bars comparison."""
    result: dict[str, Any] = {}
    if args.db:
        return given_store(browser, Path(args.db), args.repeats)
    started = time.perf_counter()
    store, _ = big_store(tmp / "big.db", args.stages)
    result["store_build_s"] = round(time.perf_counter() - started, 1)
    running = start(create_app(store, live=False))
    try:
        result.update(gantt(browser, running.url, store, args.repeats))
    finally:
        running.stop()
    if not args.no_plain:
        plain = plain_bars(browser, store)
        result["plain_bars_100k_paint_s"] = round(plain, 2)
        result["plain_over_gantt_first_paint"] = round(
            plain / result["gantt_100k_first_paint_s"], 1
        )
    store.close()
    return result


def given_store(browser: Any, path: Path, repeats: int) -> dict[str, Any]:
    """First paint and zoom of the timeline of a store on disk (opened read-only)."""
    from collectors.stores import open_store

    store = open_store(str(path), read_only=True)
    try:
        df = store.stage_intervals()
        result: dict[str, Any] = {
            "store": str(path),
            "store_stages": len(df),
            "store_lanes": int(df["resource"].nunique()),
            "store_clock": sorted(set(store.jobs()["clock"])),
        }
        running = start(create_app(store, live=False))
        try:
            result.update(gantt(browser, running.url, store, repeats, name="gantt_store"))
        finally:
            running.stop()
    finally:
        store.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--stages", type=int, default=100_000, help="stages in the timeline store")
    parser.add_argument("--repeats", type=int, default=3, help="page loads to take the median of")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="length of the live run")
    parser.add_argument("--rate", type=float, default=50.0, help="live events per second")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-bars comparison")
    parser.add_argument("--live-only", action="store_true", help="measure live push only")
    parser.add_argument("--no-live", action="store_true", help="measure the timeline only")
    parser.add_argument(
        "--db", metavar="PATH", help="measure this store's timeline instead of the synthetic one"
    )
    parser.add_argument(
        "--compare", action="store_true",
        help="first run live push redrawing whole figures per batch, for the ratio",
    )  # fmt: skip
    args = parser.parse_args(argv)

    result: dict[str, Any] = {} if args.db else {"stages": args.stages}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if not args.live_only:
            result.update(timeline(browser, Path(tmp), args))
        if args.compare and not args.no_live:
            full = live(browser, args.live_seconds, args.rate, full_redraws=True)
            result.update({k.replace("live_", "live_full_redraw_", 1): v for k, v in full.items()})
        if not args.no_live:
            result.update(live(browser, args.live_seconds, args.rate))
        if args.compare and not args.no_live:
            for q in ("p50", "p95"):
                result[f"live_full_redraw_over_overlay_{q}"] = round(
                    result[f"live_full_redraw_{q}_ms"] / result[f"live_{q}_ms"], 1
                )
        browser.close()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
