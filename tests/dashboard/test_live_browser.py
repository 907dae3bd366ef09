"""Live updates in headless chromium: every event drawn once, by extending the figure in
place, never by rebuilding it per batch; a frozen tab recovers what it missed from the store.

Events are emitted at a high rate while the page follows; the positions drawn in the graph
are counted against the positions stored, and Plotly's whole-figure calls are counted.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from collectors.events import JobEvent, RecordEvent, StageEvent
from collectors.hub import Hub
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard.app import create_app, parts
from tests.dashboard.browser import drawn, served

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Counts Plotly's whole-figure draws (react, newPlot) and extensions, and turns on the live
# client's measurements.
COUNT_CALLS = """
window.tuneloomMeasure = true;
window.__calls = {react: 0, newPlot: 0, extendTraces: 0, redraw: 0};
(function () {
  var current;
  Object.defineProperty(window, "Plotly", {
    configurable: true,
    get: function () { return current; },
    set: function (value) {
      current = value;
      if (!value || value.__counted) return;
      value.__counted = true;
      Object.keys(window.__calls).forEach(function (name) {
        var orig = value[name];
        value[name] = function () {
          window.__calls[name] += 1;
          return orig.apply(this, arguments);
        };
      });
    },
  });
})();
"""
JOBS = ("j1", "j2")


def seeded() -> tuple[MemoryStore, Hub, EventSink]:
    """A store with two jobs, each with a stage and a record per task already drawn."""
    store, hub = MemoryStore(), Hub()
    sink = EventSink(store, hub=hub, source="browser-live")
    for job in JOBS:
        sink.emit(JobEvent, job=job, change="submitted", name=job, target="llvm")
    emit_run(sink, iterations=1, pace=0.0)
    return store, hub, sink


def emit_run(sink: EventSink, *, iterations: int, pace: float, first: int = 0) -> None:
    """Per iteration, job and task: a build and a profile stage and three records (one
    failed), one event every ``pace`` seconds."""
    for i in range(first, first + iterations):
        for job in JOBS:
            for task in ("t0", "t1"):
                now = time.time()
                for stage, resource in (("build", "client:0"), ("profile", "device:llvm:0")):
                    sink.emit(StageEvent, job=job, task=task, iteration=i, stage=stage,
                              resource=resource, start=now - 0.01, end=now)  # fmt: skip
                    time.sleep(pace)
                for c in range(3):
                    if c == 2:
                        sink.emit(RecordEvent, job=job, task=task, iteration=i, candidate=c,
                                  error="x", error_class="run")  # fmt: skip
                    else:
                        secs = 1e-3 * (1 + 2 * 0.95**i) * (1 + 0.1 * c)
                        sink.emit(RecordEvent, job=job, task=task, iteration=i, candidate=c,
                                  run_secs=(secs,))  # fmt: skip
                    time.sleep(pace)


def open_page(browser: Any, url: str, graph: str, console: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(COUNT_CALLS)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    console.attach(tab)
    tab.goto(url)
    tab.wait_for_selector("#live-status.tl-live-on")
    ready = f"window.tuneloomLive.graphs['{graph}']"
    tab.wait_for_function(f"{ready} && {ready}.waiting === null")
    return tab


def calls(tab: Any) -> dict[str, int]:
    return tab.evaluate(
        "({...window.__calls, overlays: window.tuneloomLive.stats.overlays,"
        " extends: window.tuneloomLive.stats.extends})"
    )


def settle_for_hover(tab: Any, graph: str) -> None:
    """The pointer enters the graph: its overlaid shapes become Plotly points."""
    gd = f"document.querySelector('#{graph} .js-plotly-plot')"
    tab.evaluate(f"{gd}.dispatchEvent(new MouseEvent('mouseenter'))")
    tab.wait_for_function(
        f"window.tuneloomOverlay.count({gd}) === 0 && window.tuneloomOverlay.fresh({gd})"
    )


def test_timeline_bars_are_added_in_place_each_exactly_once(browser, page) -> None:
    _, console = page
    store, hub, sink = seeded()
    with served(create_app(store, live=hub)) as running:
        tab = open_page(browser, running.url + "/", "timeline-graph", console)
        before = calls(tab)
        emit_run(sink, iterations=12, pace=0.004, first=1)  # 240 stages among 600 events
        stages = sorted(store.stage_intervals()["pos"])
        tab.wait_for_function(
            f"window.tuneloomLive.drawn('timeline-graph', ['stages']).length >= {len(stages)}"
        )
        bars = drawn(tab, "timeline-graph", ["stages"])
        after = calls(tab)
        overlaid = tab.evaluate(
            "window.tuneloomOverlay.count(document.querySelector('#timeline-graph "
            ".js-plotly-plot'))"
        )
        settle_for_hover(tab, "timeline-graph")
        settled = drawn(tab, "timeline-graph", ["stages"])
    assert sorted(bars) == stages  # every stage once: none lost, none twice
    assert sorted(settled) == stages
    batches = (after["overlays"] - before["overlays"]) + (after["extends"] - before["extends"])
    rebuilt = (after["react"] - before["react"]) + (after["newPlot"] - before["newPlot"])
    assert batches >= 10 and rebuilt <= 1  # batches extend the figure; none rebuilds it
    assert after["overlays"] > before["overlays"] and overlaid > 0
    assert console.errors == []


def test_convergence_lines_and_points_are_extended_each_exactly_once(browser, page) -> None:
    _, console = page
    store, hub, sink = seeded()
    with served(create_app(store, live=hub)) as running:
        tab = open_page(browser, running.url + "/convergence", "convergence-graph", console)
        tab.get_by_text("every measurement").click()
        points = "window.tuneloomLive.graphs['convergence-graph'].base.points"
        tab.wait_for_function(f"{points} && window.tuneloomLive.graphs['convergence-graph']"
                              ".waiting === null")  # fmt: skip
        before = calls(tab)
        emit_run(sink, iterations=12, pace=0.004, first=1)  # 360 records among 600 events
        records = store.records()
        every = sorted(records["pos"])
        measured = sorted(records[records["mean_secs"].notna()]["pos"])
        failed = sorted(records[records["mean_secs"].isna()]["pos"])
        tab.wait_for_function(
            f"window.tuneloomLive.drawnRecords('convergence-graph').length >= {len(every)}"
        )
        on_lines = tab.evaluate("window.tuneloomLive.drawnRecords('convergence-graph')")
        after = calls(tab)
        settle_for_hover(tab, "convergence-graph")
        on_points = drawn(tab, "convergence-graph", ["measurements"])
        crosses = drawn(tab, "convergence-graph", ["failed candidates"])
    assert sorted(on_lines) == every  # each record extends its series' line once
    assert sorted(on_points) == measured and sorted(crosses) == failed
    batches = (after["overlays"] - before["overlays"]) + (after["extends"] - before["extends"])
    rebuilt = (after["react"] - before["react"]) + (after["newPlot"] - before["newPlot"])
    assert batches >= 10 and rebuilt <= 1
    assert console.errors == []


def test_a_frozen_tab_gets_a_gap_and_draws_what_it_missed_from_the_store(browser, page) -> None:
    _, console = page
    store, hub, sink = seeded()
    app = create_app(store, live=hub)
    parts(app).bridge.window = 20  # a tab 20 events behind stops getting the stream
    with served(app) as running:
        tab = open_page(browser, running.url + "/", "timeline-graph", console)
        emitter = threading.Thread(
            target=emit_run, args=(sink,), kwargs={"iterations": 10, "pace": 0.002, "first": 1}
        )
        emitter.start()
        # The page's main thread is busy for a second and a half: no event is handled.
        tab.evaluate("() => { const t = Date.now(); while (Date.now() - t < 1500) {} }")
        emitter.join()
        stages = sorted(store.stage_intervals()["pos"])
        tab.wait_for_function(
            f"window.tuneloomLive.drawn('timeline-graph', ['stages']).length >= {len(stages)}"
        )
        bars = drawn(tab, "timeline-graph", ["stages"])
        gaps = tab.evaluate("window.tuneloomLive.stats.gaps")
    assert gaps >= 1 and parts(app).bridge.gaps >= 1
    assert sorted(bars) == stages  # every stage once, those of the gap read from the store
    assert console.errors == []
