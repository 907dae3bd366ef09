"""Callback logic of every page, without a browser."""

from __future__ import annotations

import pandas as pd
import pytest

from collectors.events import RecordEvent
from collectors.jobs import JobState
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard.access import Access
from dashboard.app import create_app, parts
from dashboard.context import AppContext
from dashboard.pages import convergence, inspector, jobs, records, timeline
from dashboard.shell import job_options, task_options, window_from_inputs
from tests.dashboard.synthetic import synthetic_history
from tuner._base import PlannedJob
from tuner.clock import SimClock
from tuner.scheduler import Scheduler
from tuner.simulation import DISTRIBUTIONS, SimulatedDriver


def test_timeline_draws_exact_bars_up_to_the_limit_and_aggregates_above(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    total = len(snap.stages)
    exact = timeline.timeline_view(snap, [], [], None, limit=total, bins=50)
    assert not exact.aggregated and exact.base["mode"] == "bars"
    assert len(exact.figure.data[0].customdata) == total
    assert sorted(exact.figure.data[0].customdata) == sorted(snap.stages["pos"])
    assert exact.base["pos"] == snap.pos and exact.base["count"] == total
    assert "simulated" in exact.notice.lower()
    raster = timeline.timeline_view(snap, [], [], None, limit=total - 1, bins=50)
    assert raster.aggregated and raster.base["mode"] == "refresh"
    assert raster.figure.data[0].type == "heatmap"
    assert "Aggregated view" in raster.notice and f"{total:,} stages" in raster.notice


def test_timeline_zoom_window_brings_back_exact_bars(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    wall = snap.stages[snap.stages["clock"] == "wall"]
    window = (float(wall["x0"].min()), float(wall["x0"].min()) + 5.0)
    inside = timeline.timeline_view(snap, [], [], window, limit=40, bins=50)
    assert not inside.aggregated
    assert 0 < inside.count <= 40
    assert list(inside.figure.layout.xaxis.range) == list(window)
    assert inside.base["window"] == list(window)


def test_timeline_filters_jobs_and_names_the_empty_case(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    job = next(iter(snap.colors))
    view = timeline.timeline_view(snap, [job], [], None, limit=5000, bins=50)
    assert set(snap.stages.set_index("pos").loc[list(view.figure.data[0].customdata), "job"]) == {
        job
    }
    empty = timeline.timeline_view(snap, ["no-such-job"], [], None, limit=5000, bins=50)
    assert empty.count == 0 and "No stages" in empty.figure.layout.annotations[0].text


def test_utilization_view_has_one_bar_per_lane(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    fig = timeline.utilization_view(snap, [], [], None)
    assert len(fig.data[0].y) == snap.stages["lane"].nunique()
    assert all(0 <= x <= 100 for x in fig.data[0].x)


def test_convergence_view_patches_live_only_without_a_window(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    view = convergence.convergence_view(snap, [], [], None, show_points=True)
    assert view.base["mode"] == "patch" and view.base["series"]
    windowed = convergence.convergence_view(snap, [], [], (0.0, 5.0))
    assert windowed.base["mode"] == "refresh"
    per_job = convergence.convergence_view(snap, [], [], None, per="job")
    assert per_job.base["mode"] == "refresh"
    assert "end-to-end" in per_job.notice
    empty = convergence.convergence_view(snap, ["nobody"], [], None)
    assert "No measured candidates" in empty.figure.layout.annotations[0].text


def test_task_summary_reports_best_and_gflops(synthetic) -> None:
    store, history = synthetic
    ctx = parts(create_app(store, live=False)).context
    summary = convergence.task_summary(ctx.view.snapshot(), [history.jobs[0]], [])
    assert len(summary) == len(history.tasks[history.jobs[0]])
    row = summary.iloc[0]
    record = store.record(int(row["best_pos"]))
    assert row["best_ms"] == round(record.mean_secs * 1000, 5)
    assert row["gflops"] > 0


def test_task_summary_says_why_a_task_stopped_early(synthetic) -> None:
    from collectors.events import TaskEvent
    from collectors.sink import EventSink as Sink

    store, history = synthetic
    job = history.jobs[0]
    first, second = history.tasks[job][:2]
    why = "stopped early: 0.2% better over its last 3 batches (48 trials)"
    Sink(store, source="late").emit(
        TaskEvent, job=job, task=first, op="matmul", weight=1.0,
        detail=f"metaschedule_database=/db\nstopped={why}",
    )  # fmt: skip
    ctx = parts(create_app(store, live=False)).context
    summary = convergence.task_summary(ctx.view.snapshot(), [job], []).set_index("task")
    assert summary.loc[first, "stopped"] == why
    assert pd.isna(summary.loc[second, "stopped"])


def test_records_table_filters_sorts_and_pages(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    table = records.records_table(snap, [], [], None)
    assert len(table) == len(snap.records)
    positive = {"filterType": "number", "type": "greaterThan", "filter": 0}
    first = records.table_page(table, {
        "startRow": 0, "endRow": 10, "sortModel": [{"colId": "latency_ms", "sort": "asc"}],
        "filterModel": {"latency_ms": positive},
    })  # fmt: skip
    assert first.message == "" and len(first.rows) == 10
    latencies = [r["latency_ms"] for r in first.rows]
    assert latencies == sorted(latencies)
    assert first.matching == int(table["latency_ms"].notna().sum())
    assert first.response() == {"rowData": first.rows, "rowCount": first.matching}
    second = records.table_page(table, {
        "startRow": 10, "endRow": 20, "sortModel": [{"colId": "latency_ms", "sort": "asc"}],
        "filterModel": {"latency_ms": positive},
    })  # fmt: skip
    assert [r["latency_ms"] for r in second.rows] == sorted(table["latency_ms"].dropna())[10:20]
    bogus = records.table_page(table, {"startRow": 0, "endRow": 10, "filterModel": {
        "bogus": {"filterType": "number", "type": "greaterThan", "filter": 1}}})  # fmt: skip
    assert "unknown column 'bogus'" in bogus.message and bogus.matching == len(table)
    failed = table[table["error_class"].notna()]
    assert failed["latency_ms"].isna().all()


def test_a_selected_grid_row_names_its_record_or_job() -> None:
    from dashboard import grid

    assert grid.selected_position([{"pos": 12, "task": "t"}], "pos") == 12
    assert grid.selected_position([{"best_pos": None}], "best_pos") is None  # no valid record
    assert grid.selected_position([{"best_pos": float("nan")}], "best_pos") is None
    assert grid.selected_position([], "pos") is None and grid.selected_position(None, "pos") is None
    assert jobs.selected_job([{"id": "j1-abc", "state": "running"}]) == "j1-abc"
    assert jobs.selected_job([]) is None and jobs.selected_job(None) is None


def test_records_table_computes_gflops_from_task_flops(synthetic) -> None:
    store, _ = synthetic
    snap = parts(create_app(store, live=False)).context.view.snapshot()
    table = records.records_table(snap, [], [], None)
    row = table[table["latency_ms"].notna()].iloc[0]
    flops = snap.tasks.set_index("task")["flops"]
    task_flops = snap.tasks[snap.tasks["task"] == row["task"]]["flops"].iloc[0]
    assert row["gflops"] == round(task_flops / (row["latency_ms"] / 1000) / 1e9, 3)
    assert len(flops)


def _scheduler(store: MemoryStore) -> Scheduler:
    def factory(job_id: str, spec) -> PlannedJob:
        driver = SimulatedDriver(job_id, tasks=list(spec.workloads), iterations=2,
                                 times=DISTRIBUTIONS["thesis"], seed=1)  # fmt: skip
        return PlannedJob(driver, spec.label, "device:sim", spec.workloads, target="sim")

    return Scheduler(
        ["client:0", "device:sim:0"], "interleaved", clock=SimClock(),
        sink=EventSink(store, clock="sim"), job_factory=factory,
    )  # fmt: skip


def test_job_controls_act_through_the_scheduler() -> None:
    store = MemoryStore()
    sched = _scheduler(store)
    app_ctx = parts(create_app(store, sched, live=False)).context
    done, message = jobs.submit_job(
        app_ctx, None, workloads="matmul:64\nmatmul:32", zoo=None, trials=16, priority=2,
        target="sim", name="mine",
    )  # fmt: skip
    assert done, message
    (info,) = sched.list()
    assert message == f"Submitted {info.id}." and info.tasks == ("matmul:64", "matmul:32")
    assert jobs.control_action(app_ctx, "pause", info.id, None, None) == (
        True, f"Paused {info.id}.",
    )  # fmt: skip
    assert sched.list()[0].state == JobState.PAUSED
    assert app_ctx.view.snapshot().jobs.iloc[0]["detail"] == "paused from the dashboard"
    done, message = jobs.control_action(app_ctx, "reprioritize", info.id, 7, None)
    assert done and sched.list()[0].priority == 7
    done, message = jobs.control_action(app_ctx, "pause", info.id, None, None)
    assert not done and "already paused" in message
    done, message = jobs.control_action(app_ctx, "resume", "j99-none", None, None)
    assert not done and "j99-none" in message
    rows = jobs.jobs_rows(app_ctx.view.snapshot(), sched.list())
    assert rows[0]["state"] == "paused" and rows[0]["priority"] == 7
    live = sched.list()[0]
    assert rows[0]["progress"].startswith(f"{live.trials_done:,} / {live.trials_total:,} trials")


def test_job_controls_are_refused_without_the_token_off_loopback() -> None:
    store = MemoryStore()
    sched = _scheduler(store)
    job = sched.submit_job(
        SimulatedDriver("x", tasks=["t"], iterations=1, times=DISTRIBUTIONS["thesis"], seed=0),
        name="x", target="sim", device_pool="device:sim", tasks=["t"], trials_total=4,
    )  # fmt: skip
    access = Access(host="0.0.0.0", token="s3cret")
    app_ctx = parts(create_app(store, sched, live=False, access=access)).context
    done, message = jobs.control_action(app_ctx, "pause", job, None, None)
    assert not done and "token" in message
    done, message = jobs.control_action(app_ctx, "pause", job, None, "wrong")
    assert not done and "not valid" in message
    assert sched.list()[0].state == JobState.QUEUED
    done, _ = jobs.submit_job(app_ctx, None, workloads="matmul:8", zoo=None, trials=4,
                              priority=0, target="sim", name=None)  # fmt: skip
    assert not done and len(sched.list()) == 1
    assert jobs.control_action(app_ctx, "pause", job, None, "s3cret")[0]
    assert sched.list()[0].state == JobState.PAUSED


def test_read_only_dashboards_refuse_controls(ctx: AppContext) -> None:
    done, message = jobs.control_action(ctx, "pause", "j1", None, None)
    assert not done and "No tuner is attached" in message


def test_submission_form_is_validated_with_clear_messages() -> None:
    def error(**overrides) -> str:
        form = {"workloads": "matmul:64", "model": None, "trials": 8, "priority": 0,
                "target": "llvm", "name": None} | overrides  # fmt: skip
        try:
            jobs.parse_submission(**form)
        except jobs.FormError as exc:
            return str(exc)
        return ""

    assert error() == ""
    assert "at least one workload" in error(workloads="  \n ")
    assert "whole number" in error(trials=2.5)
    assert "between 1 and" in error(trials=0)
    assert error(trials=None) == "" and error(trials="") == ""  # the default budget
    assert "priority must be a whole number" in error(priority=0.5)
    assert "one word" in error(target="llvm -mcpu=x")
    spec = jobs.parse_submission("matmul:64\n dense:1x8x8;", "", 8.0, "3" and 3, "", " n ")
    assert spec.workloads == ("matmul:64", "dense:1x8x8") and spec.target == "llvm"
    conv = jobs.parse_submission("conv2d:1x3x8x8,4x3x3,pad=1, matmul:8", "", 2, 0, "", None)
    assert conv.workloads == ("conv2d:1x3x8x8,4x3x3,pad=1, matmul:8",)  # as tune reads it
    assert spec.trials == 8 and spec.name == "n"
    assert spec.warm_start is None and not spec.reuse_only


def test_a_submitted_job_can_start_from_the_dashboards_schedule_library() -> None:
    form = {"workloads": "matmul:64", "model": None, "trials": 8, "priority": 0,
            "target": "llvm", "name": None}  # fmt: skip
    warm = jobs.parse_submission(**form, start="warm", library="/lib")
    assert warm.warm_start == "/lib" and not warm.reuse_only
    only = jobs.parse_submission(**form, start="reuse", library="/lib")
    assert only.warm_start == "/lib" and only.reuse_only
    assert jobs.parse_submission(**form, start="cold", library="/lib").warm_start is None
    with pytest.raises(jobs.FormError, match="no schedule library"):
        jobs.parse_submission(**form, start="warm", library=None)
    with pytest.raises(jobs.FormError, match="Unknown start 'hot'"):
        jobs.parse_submission(**form, start="hot", library="/lib")


def test_a_submitted_job_carries_its_allocator_and_stop_rules() -> None:
    form = {"workloads": "", "model": "zoo:cnn", "trials": 64, "priority": 0,
            "target": "llvm", "name": None}  # fmt: skip
    spec = jobs.parse_submission(
        **form, allocator="gradient", time_budget="1h30m", target_latency=0.25
    )
    assert (spec.allocator, spec.time_budget, spec.target_latency) == ("gradient", 5400.0, 0.25)
    plain = jobs.parse_submission(**form, allocator=None, time_budget=" ", target_latency="")
    assert (plain.allocator, plain.time_budget, plain.target_latency) == ("gain", None, None)
    for overrides, why in [
        ({"allocator": "fastest"}, "Unknown allocator 'fastest'"),
        ({"time_budget": "soon"}, "Time budget: 'soon' is not a duration"),
        ({"time_budget": "0m"}, "the duration must be positive"),
        ({"target_latency": -1}, "positive number of ms"),
        ({"workloads": "matmul:8", "model": None, "target_latency": 1}, "needs a model"),
    ]:
        with pytest.raises(jobs.FormError, match=why):
            jobs.parse_submission(**(form | overrides))


def test_inspector_picks_partners_and_reports_missing_records(ctx: AppContext) -> None:
    snap = ctx.view.snapshot()
    pos = inspector.default_record(snap, [], [])
    record = ctx.codes.record(pos)
    assert record is not None and record.mean_secs == snap.records["mean_secs"].min()
    first = inspector.partner(snap, record, pos, "first")
    same = snap.records[(snap.records.job == record.job) & (snap.records.task == record.task)]
    assert first == int(same[same.mean_secs.notna() & (same.pos != pos)]["pos"].min())
    head, body = inspector.inspector_content(ctx, pos, "trace", "first", None, "trace")
    assert body is not None
    _, diff = inspector.inspector_content(ctx, pos, "diff", "first", None, "trace")
    assert "record" in str(diff)
    head, body = inspector.inspector_content(ctx, 10**9, "trace", "first", None, "trace")
    assert body is None and "holds no measured candidate" in str(head)
    head, body = inspector.inspector_content(ctx, -3, "trace", "first", None, "trace")
    assert "whole number" in str(head)


def test_inspector_diff_highlights_changes() -> None:
    store = MemoryStore()
    sink = EventSink(store)
    for c, factor in enumerate((8, 16)):
        sink.emit(RecordEvent, job="j", task="t", candidate=c, run_secs=(1e-3 * (c + 1),),
                  trace=f"b0 = get_block()\nsplit(l0, [None, {factor}])")  # fmt: skip
    app_ctx = parts(create_app(store, live=False)).context
    _, diff = inspector.inspector_content(app_ctx, 2, "diff", "first", None, "trace")
    text = str(diff)
    assert "1 changed line" in text and "Mark" in text and "'16'" in text


def test_filter_options_and_window_inputs(synthetic) -> None:
    store, history = synthetic
    app_ctx = parts(create_app(store, live=False)).context
    options = job_options(app_ctx)
    assert [o["value"] for o in options] == history.jobs
    tasks = task_options(app_ctx, [history.jobs[0]])
    assert [o["value"] for o in tasks] == history.tasks[history.jobs[0]]
    assert window_from_inputs(1, 5, None) == ((1.0, 5.0), "")
    assert window_from_inputs(5, 1, (0.0, 1.0))[0] == (0.0, 1.0)
    assert "end after it starts" in window_from_inputs(5, 1, None)[1]
    assert "both ends" in window_from_inputs(5, None, None)[1]
    assert window_from_inputs(None, None, (1.0, 2.0)) == (None, "")


def test_synthetic_history_counts(synthetic) -> None:
    store, history = synthetic
    more = synthetic_history(MemoryStore(), jobs=1, iterations=1)
    assert more.stages == 3 * 4  # three tasks x four stages
    assert len(store.stage_intervals()) == history.stages
