"""Browser tests: headless chromium on a served dashboard (waits, never sleeps)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from collectors.events import JobEvent, RecordEvent, TaskEvent
from collectors.hub import Hub
from collectors.jobs import TERMINAL_STATES, JobState, StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard.access import Access
from dashboard.app import create_app
from dashboard.figures.convergence import REUSED_NAME
from tests.dashboard.browser import drawn, served
from tests.dashboard.reuse_history import reuse_history
from tuner.clock import WallClock
from tuner.scheduler import Scheduler
from tuner.simulation import SimulatedDriver, StageTimes

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def fast_times(seconds: float) -> StageTimes:
    return StageTimes({kind: seconds for kind in StageKind}, "fixed", 0.0)


def wall_scheduler(store: MemoryStore, hub: Hub) -> tuple[Scheduler, EventSink]:
    sink = EventSink(store, hub=hub, source="browser-run")
    sched = Scheduler(
        ["client:0", "device:sim:0", "device:sim:1"], "interleaved", clock=WallClock(), sink=sink
    )
    return sched, sink


def submit(sched: Scheduler, sink: EventSink, name: str, *, iterations: int, seconds: float):
    tasks = ["t0", "t1"]

    def build(job_id: str) -> SimulatedDriver:
        return SimulatedDriver(
            job_id, tasks=tasks, iterations=iterations, times=fast_times(seconds), seed=1,
            candidates=4, sink=sink, records=True, sleep=True,
        )  # fmt: skip

    return sched.submit_job(
        build, name=name, target="sim", device_pool="device:sim", tasks=tasks,
        trials_total=len(tasks) * iterations * 4,
    )  # fmt: skip


def test_each_page_loads_on_a_sample_store(sample_store: MemoryStore, page) -> None:
    tab, console = page
    reuse_history(sample_store)  # a warm-started job and a reuse-only one as well
    stages = len(sample_store.stage_intervals())
    with served(create_app(sample_store)) as running:
        tab.goto(running.url + "/")
        tab.wait_for_function(f"window.tuneloomLive.drawn('timeline-graph', ['stages']).length"
                              f" === {stages}")  # fmt: skip
        tab.wait_for_selector("#utilization-graph .bars")
        for path, selector in [
            ("/convergence", "#convergence-graph .scatterlayer .trace"),
            ("/inspector", "#inspector-summary dl"),
            ("/records", "#records-table .ag-row .ag-cell"),
            ("/jobs", "#jobs-table .ag-row .ag-cell"),
        ]:
            tab.click(f"a[href='{path}']")
            tab.wait_for_selector(selector)
            if path == "/convergence":
                see_reuse_on_the_convergence_page(tab)
        tab.wait_for_selector("#live-status.tl-live-on")
    assert console.errors == []


def see_reuse_on_the_convergence_page(tab: Any) -> None:
    """Reused records are stars on the graph; the summary names each best schedule's origin."""
    tab.wait_for_function(
        "document.querySelector('#convergence-graph .js-plotly-plot').data"
        f".some(t => t.name === '{REUSED_NAME}' && t.customdata.length > 0)"
    )
    origin = "#convergence-summary .ag-header-cell[col-id='origin'] .ag-header-cell-label"
    tab.click(origin)  # sorted: "reused from ..." before "tuned here"
    cell = tab.locator("#convergence-summary .ag-row[row-index='0'] .ag-cell[col-id='origin']")
    expect(cell).to_contain_text("reused from zoo:")


def test_the_timeline_aggregates_and_zooming_in_brings_back_exact_bars(
    sample_store: MemoryStore, page
) -> None:
    tab, console = page
    with served(create_app(sample_store, bars_limit=40)) as running:
        tab.goto(running.url + "/")
        expect(tab.locator("#timeline-notice")).to_contain_text("Aggregated view")
        tab.wait_for_selector("#timeline-graph .heatmaplayer")
        # What a drag across the chart does: a relayout of the x range.
        tab.evaluate(
            "() => window.Plotly.relayout(document.querySelector("
            "'#timeline-graph .js-plotly-plot'), {'xaxis.range[0]': 0, 'xaxis.range[1]': 4})"
        )
        expect(tab.locator("#timeline-notice")).to_contain_text("each drawn exactly")
        expect(tab.locator("#filter-to")).to_have_value("4")
        bars = tab.evaluate("window.tuneloomLive.drawn('timeline-graph', ['stages']).length")
        assert 0 < bars <= 40
        tab.click("#filter-reset")
        expect(tab.locator("#timeline-notice")).to_contain_text("Aggregated view")
    assert console.errors == []


def test_a_live_runs_stages_appear_and_match_the_store(page) -> None:
    tab, console = page
    store, hub = MemoryStore(), Hub()
    sched, sink = wall_scheduler(store, hub)
    with served(create_app(store, sched, live=hub)) as running:
        tab.goto(running.url + "/")
        tab.wait_for_selector("#live-status.tl-live-on")
        tab.wait_for_function("window.tuneloomLive.graphs['timeline-graph']")
        sched.start_background()
        try:
            jobs = [submit(sched, sink, f"live-{i}", iterations=4, seconds=0.01) for i in range(2)]
            tab.wait_for_function(
                "() => { const g = window.tuneloomLive.graphs['timeline-graph'];"
                " return g && g.count >= 64; }"
            )
            assert all(info.state in TERMINAL_STATES for info in sched.list())
        finally:
            sched.stop()
        stored = sorted(store.stage_intervals()["pos"])
        assert len(stored) == 2 * 2 * 4 * 4 and len(jobs) == 2
        tab.wait_for_function(
            f"window.tuneloomLive.drawn('timeline-graph', ['stages']).length >= {len(stored)}"
        )
        bars = drawn(tab, "timeline-graph", ["stages"])
    assert sorted(bars) == stored  # every stage once: none lost, none twice
    assert console.errors == []


def _long_job(store: MemoryStore, hub: Hub) -> tuple[Scheduler, str]:
    sched, sink = wall_scheduler(store, hub)
    job = submit(sched, sink, "long", iterations=500, seconds=0.05)
    sched.start_background()
    return sched, job


def _select_job(tab: Any, job: str) -> None:
    """Tick the job's row. The table refreshes while the job runs, and a click that lands as
    the row's cells are redrawn can miss the box: tick again (a few times at most)."""
    row = tab.locator("#jobs-table .ag-row", has_text=job)
    for attempt in range(3):
        try:
            row.locator("input[type=checkbox]").check(timeout=10_000)
            break
        except PlaywrightError:
            if attempt == 2:
                raise
    expect(row).to_have_class(re.compile("ag-row-selected"))


def test_pause_and_reprioritize_from_the_page_change_the_job_in_the_tuner(page) -> None:
    tab, console = page
    store, hub = MemoryStore(), Hub()
    sched, job = _long_job(store, hub)
    try:
        with served(create_app(store, sched, live=hub)) as running:
            tab.goto(running.url + "/jobs")
            tab.wait_for_selector(f"#jobs-table .ag-cell:has-text('{job}')")
            _select_job(tab, job)
            tab.click("#jobs-pause")
            tab.wait_for_selector(f"#jobs-message:has-text('Paused {job}.')")
            assert sched.list()[0].state == JobState.PAUSED
            tab.fill("#jobs-priority", "5")
            tab.click("#jobs-set-priority")
            tab.wait_for_selector(f"#jobs-message:has-text('priority of {job} to 5')")
            assert sched.list()[0].priority == 5
            row = tab.locator("#jobs-table .ag-row", has_text=job)
            expect(row).to_contain_text("paused")
            tab.click("#jobs-resume")
            tab.wait_for_selector(f"#jobs-message:has-text('Resumed {job}.')")
            assert sched.list()[0].state == JobState.RUNNING
    finally:
        sched.cancel(job)
        sched.stop()
    assert console.errors == []


def test_controls_are_refused_without_the_token_off_loopback(page) -> None:
    tab, console = page
    store, hub = MemoryStore(), Hub()
    sched, job = _long_job(store, hub)
    # The server listens on 127.0.0.1 but is configured as bound to all interfaces.
    access = Access(host="0.0.0.0", token="s3cret-token")
    try:
        with served(create_app(store, sched, live=hub, access=access)) as running:
            tab.goto(running.url + "/jobs")
            tab.wait_for_selector(f"#jobs-table .ag-cell:has-text('{job}')")
            _select_job(tab, job)
            tab.click("#jobs-pause")
            tab.wait_for_selector("#jobs-message:has-text('need the access token')")
            tab.fill("#submit-workloads", "matmul:64")
            tab.click("#submit-job")
            tab.wait_for_selector("#submit-message:has-text('need the access token')")
            assert [i.state for i in sched.list()] == [JobState.RUNNING]
            tab.fill("#token-input", "wrong")
            tab.click("#token-apply")
            tab.wait_for_selector("#token-status:has-text('not valid')")
            tab.click("#jobs-pause")
            tab.wait_for_selector("#jobs-message:has-text('not valid')")
            assert sched.list()[0].state == JobState.RUNNING
            tab.fill("#token-input", "s3cret-token")
            tab.click("#token-apply")
            tab.wait_for_selector("#token-status:has-text('accepted')")
            tab.click("#jobs-pause")
            tab.wait_for_selector(f"#jobs-message:has-text('Paused {job}.')")
            assert sched.list()[0].state == JobState.PAUSED
    finally:
        sched.cancel(job)
        sched.stop()
    assert console.errors == []


def tvm_record_store() -> tuple[MemoryStore, int]:
    """A store with one job and one record whose MetaSchedule trace replays with TVM."""
    from tvm.s_tir.schedule import Schedule

    from tests.dashboard.tvm_records import plain_json
    from tuner.metaschedule.workloads import workload_module

    mod = workload_module("matmul:64")
    sch = Schedule(mod)
    block = sch.get_sblock("C")
    i, j, _ = sch.get_loops(block)
    io, _ = sch.split(i, [None, 8])
    _, ji = sch.split(j, [None, 16])
    sch.vectorize(ji)
    sch.parallel(io)
    store = MemoryStore()
    sink = EventSink(store, source="tvm")
    sink.emit(JobEvent, job="j1", change="submitted", name="matmul", target="llvm")
    sink.emit(TaskEvent, job="j1", task="matmul:64", op="matmul", flops=2.0 * 64**3)
    sink.emit(RecordEvent, job="j1", task="matmul:64", candidate=0, run_secs=(1e-4,),
              trace=json.dumps(plain_json(sch.trace.as_json())), origin="metaschedule")  # fmt: skip
    return store, store.last_pos()


def test_a_record_opens_in_the_inspector_with_tir_and_assembly(page) -> None:
    from tuner.metaschedule.inspector import MetaScheduleInspector

    tab, console = page
    store, pos = tvm_record_store()
    app = create_app(store, inspector=MetaScheduleInspector(store))
    with served(app) as running:
        tab.goto(running.url + "/records")
        tab.locator("#records-table .ag-cell[col-id='pos']", has_text=str(pos)).first.click()
        tab.click("#records-selection a:has-text('open in the inspector')")
        tab.wait_for_selector(f"#inspector-summary dd:has-text('{pos}')")
        expect(tab.locator("#inspector-content .tl-code")).to_contain_text("sch.split")
        tab.locator("#inspector-tab").get_by_text("Scheduled TIR", exact=True).click()
        expect(tab.locator("#inspector-content .tl-code")).to_contain_text(
            "T.prim_func", timeout=120_000
        )
        tab.locator("#inspector-tab").get_by_text("Assembly", exact=True).click()
        expect(tab.locator("#inspector-content .tl-code")).to_contain_text(".text", timeout=120_000)
    assert console.errors == []
