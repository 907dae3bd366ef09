"""Tuning reuse on the dashboard: where each task's best schedule came from, reused records
marked on the convergence figures, warm-started jobs told apart from cold ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.reuse import TUNED_HERE, UNTUNED, ReusedSchedule
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore
from dashboard.app import create_app, parts
from dashboard.context import AppContext
from dashboard.data import StoreView
from dashboard.figures import convergence as cf
from dashboard.pages import convergence, inspector, records
from tests.dashboard.reuse_history import (
    COLD,
    MOBILENET,
    ONLY,
    RESNET,
    WARM,
    Job,
    emit_job,
    reuse_history,
)

REPLAY = f"reused from {MOBILENET} (replay)"
REFITTED = f"reused from {MOBILENET} (anchor-transfer, refitted tiles)"
DENSE = f"reused from {RESNET} (replay)"


@pytest.fixture
def store(tmp_path: Path):
    opened = SQLiteStore(tmp_path / "reuse.db")
    reuse_history(opened)
    yield opened
    opened.close()


@pytest.fixture
def app_ctx(store: SQLiteStore) -> AppContext:
    return parts(create_app(store, live=False)).context


def positions(store: SQLiteStore, job: str, task: str, candidate: int) -> int:
    frame = store.records(job=job, task=task)
    return int(frame.loc[frame["candidate"] == candidate, "pos"].iloc[0])


def test_labels_say_how_a_job_started(app_ctx: AppContext) -> None:
    snap = app_ctx.view.snapshot()
    assert snap.labels["job-1"] == "mobilenet (job-1)"
    assert snap.labels["job-2"] == "mobilenet (job-2) · warm start"
    assert snap.labels["job-3"] == "mobilenet (job-3) · library schedules"
    assert set(snap.reused) == {("job-2", "conv"), ("job-2", "dense"), ("job-3", "conv"),
                                ("job-3", "dense")}  # fmt: skip


def test_task_summary_names_the_origin_of_each_best_schedule(app_ctx: AppContext) -> None:
    table = convergence.task_summary(app_ctx.view.snapshot(), [], [])
    rows = {(r["job"].split("(")[1].split(")")[0], r["task"]): r for r in
            table.to_dict("records")}  # fmt: skip
    assert rows[("job-1", "conv")]["origin"] == TUNED_HERE
    assert rows[("job-1", "conv")]["library"] == 0
    assert pd.isna(rows[("job-1", "conv")]["library_ms"])
    warm_conv = rows[("job-2", "conv")]
    assert warm_conv["origin"] == TUNED_HERE and warm_conv["best_ms"] == 1.9
    assert warm_conv["library"] == 2 and warm_conv["library_ms"] == 2.2
    assert rows[("job-2", "dense")]["origin"] == DENSE  # 3.0 reused; the later 3.0 ties
    assert rows[("job-2", "dense")]["best_pos"] == positions(app_ctx.view.store, "job-2",
                                                              "dense", 0)  # fmt: skip
    assert rows[("job-3", "conv")]["origin"] == REPLAY
    assert rows[("job-3", "dense")]["library"] == 1  # the untuned fallback is not counted


def test_task_summary_origin_follows_live_records(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "live.db") as store:
        sink = EventSink(store, source="live")
        emit_job(sink, WARM, records=False)
        view = StoreView(store)
        first = view.snapshot()
        assert convergence.task_summary(first, [], []).empty
        emit_job(sink, WARM, tasks=False)
        table = convergence.task_summary(view.snapshot(), [], []).set_index("task")
        assert table.loc["dense", "origin"] == DENSE and table.loc["conv", "origin"] == TUNED_HERE


def reused_traces(figure: dict) -> list[dict]:
    return [t for t in figure["data"] if t.get("name") == cf.REUSED_NAME]


def test_reused_records_are_stars_with_their_origin_in_the_hover(
    app_ctx: AppContext, store: SQLiteStore
) -> None:
    snap = app_ctx.view.snapshot()
    view = convergence.convergence_view(snap, ["job-1", "job-2"], [], None, show_points=True)
    left, right = reused_traces(view.figure)
    expected = [positions(store, "job-2", "conv", 0), positions(store, "job-2", "conv", 1),
                positions(store, "job-2", "dense", 0)]  # fmt: skip
    assert left["customdata"] == expected and right["customdata"] == expected
    assert left["text"] == [REPLAY, f"{REFITTED}: failed", DENSE]
    assert left["marker"]["symbol"] == ["star"] * 3
    assert left["x"] == [1, 2, 1] and left["y"][0] == 2.2 and left["y"][2] == 3.0
    assert right["xaxis"] == "x2" and right["x"] == [1.0, 2.0, 1.0]  # seconds since submitted
    assert left["showlegend"] and not right["showlegend"]
    # Drawn after every other trace: the live client's trace indexes do not move.
    index = view.figure["data"].index(left)
    assert index > max(view.base["errors"]) and index > max(view.base["points"])
    names = {t["name"] for t in view.figure["data"] if t["mode"] == "lines"}
    assert "mobilenet (job-2) · warm start · conv" in names
    assert "mobilenet (job-1) · conv" in names
    assert view.base["reused"] == 3 and "Stars: 3 record(s)" in view.notice


def test_the_untuned_fallback_is_a_square(app_ctx: AppContext) -> None:
    view = convergence.convergence_view(app_ctx.view.snapshot(), ["job-3"], [], None)
    left, _ = reused_traces(view.figure)
    assert left["marker"]["symbol"] == ["star", "square-open", "star", "square-open"]
    assert left["text"] == [REPLAY, UNTUNED, DENSE, UNTUNED]


def test_schedules_from_sibling_tasks_are_diamonds_and_no_warm_start(tmp_path: Path) -> None:
    conv = ReusedSchedule(2, "dense", "anchor-transfer", sibling=True)
    dense = ReusedSchedule(2, "conv", "replay", refitted=True, sibling=True)
    searched = Job("job-4", 0.0, {"conv": [5.0, 4.0, 3.5], "dense": [8.0, 6.0, 7.0]},
                   {"conv": [conv], "dense": [dense]})  # fmt: skip
    with SQLiteStore(tmp_path / "siblings.db") as opened:
        reuse_history(opened, [searched, WARM])
        snap = StoreView(opened).snapshot()
        assert snap.labels["job-4"] == "mobilenet (job-4)"  # its own search: no warm start
        view = convergence.convergence_view(snap, [], [], None)
        left, right = [t for t in view.figure["data"] if t.get("name") == cf.SIBLING_NAME]
        expected = [positions(opened, "job-4", "conv", 2), positions(opened, "job-4", "dense", 2)]
        assert left["customdata"] == expected == right["customdata"]
        assert left["text"] == [conv.text, dense.text]
        assert left["marker"]["symbol"] == ["diamond"] * 2
        assert len(reused_traces(view.figure)[0]["customdata"]) == 3  # job-2's library ones
        assert "Diamonds: 2 record(s)" in view.notice and "Stars: 3 record(s)" in view.notice
        table = convergence.task_summary(snap, ["job-4"], []).set_index("task")
        assert table.loc["conv", "origin"] == "from sibling dense (anchor-transfer)"
        assert table.loc["dense", "origin"] == TUNED_HERE and table.loc["conv", "library"] == 0


def test_cold_jobs_alone_draw_no_reuse_trace(app_ctx: AppContext) -> None:
    snap = app_ctx.view.snapshot()
    view = convergence.convergence_view(snap, ["job-1"], [], None, show_points=True)
    assert reused_traces(view.figure) == [] and view.base["reused"] == 0
    assert "Stars" not in view.notice
    per_job = convergence.convergence_view(snap, ["job-1"], [], None, per="job")
    assert not [t for t in per_job.figure.data if t.name == cf.REUSED_NAME]
    assert "Each job reached" not in per_job.notice


def test_warm_and_cold_end_to_end_estimates_say_which_reached_a_latency_first(
    app_ctx: AppContext,
) -> None:
    snap = app_ctx.view.snapshot()
    view = convergence.convergence_view(snap, ["job-1", "job-2"], [], None, per="job")
    names = [t.name for t in view.figure.data if t.mode == "lines" and t.showlegend is not False]
    assert names == ["mobilenet (job-1)", "mobilenet (job-2) · warm start"]
    stars = [t for t in view.figure.data if t.name == cf.REUSED_NAME]
    assert len(stars) == 2 and all(t.marker.symbol == ("star",) for t in stars)
    # The estimate is defined once both tasks have a valid record (conv's four come first):
    # from dense's reused one on.
    assert list(stars[0].y) == [2 * 1.9 + 2 * 3.0] and list(stars[0].text) == [DENSE]
    # job-1: 2 x 2.0 + 2 x 4.0 = 12 ms, its final estimate (the higher one), reached at its
    # ninth record, 4 s after submission; job-2 below that from its fifth record, at 1 s.
    assert "Each job reached 12 ms" in view.notice
    assert "mobilenet (job-1) after 9 trials, 4.0 s" in view.notice
    assert "mobilenet (job-2) · warm start after 5 trials, 1.0 s" in view.notice


def test_time_to_reach_is_a_pure_data_step() -> None:
    e2e = pd.DataFrame({
        "job": ["a", "a", "a", "b", "b"], "n": [1, 2, 3, 1, 2], "t": [1.0, 2.0, 3.0, 5.0, 9.0],
        "estimate_ms": [np.nan, 10.0, 6.0, 7.0, 7.0], "pos": [1, 2, 3, 4, 5],
    })  # fmt: skip
    reach = cf.time_to_reach(e2e)
    assert reach.to_dict("list") == {"job": ["a", "b"], "target_ms": [7.0, 7.0], "n": [3, 1],
                                     "t": [3.0, 5.0]}  # fmt: skip
    assert cf.time_to_reach(e2e[e2e["job"] == "x"]).empty


def test_many_reused_records_are_thinned_to_the_budget_and_say_so() -> None:
    n = 300
    recs = pd.DataFrame({
        "pos": np.arange(1, n + 1), "job": "j", "task": "t", "ts": np.arange(n, dtype=float),
        "mean_secs": np.linspace(3e-3, 1e-3, n),
    })  # fmt: skip
    best = cf.best_so_far(recs, {})
    reused = {int(p): REPLAY for p in recs["pos"]}
    spec, meta = cf.convergence_figure_dict(best, {}, {}, show_points=False, max_points=100,
                                            reused=reused)  # fmt: skip
    left = next(t for t in spec["data"] if t["name"] == cf.REUSED_NAME)
    assert len(left["customdata"]) == 100 and meta.downsampled
    assert left["customdata"][0] == 1 and left["customdata"][-1] == n
    plain, _ = cf.convergence_figure_dict(best, {}, {}, show_points=False, max_points=100,
                                          reused={})  # fmt: skip
    assert len(plain["data"]) == len(spec["data"]) - 2


def test_a_live_figure_is_redrawn_once_reused_records_arrive(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "live.db") as store:
        sink = EventSink(store, source="live")
        emit_job(sink, COLD)
        emit_job(sink, WARM, records=False)
        view = StoreView(store)
        drawn = convergence.convergence_view(view.snapshot(), [], [], None)
        assert drawn.base["mode"] == "patch" and drawn.base["reused"] == 0
        assert convergence.reuse_refresh(view.snapshot(), drawn.base) is None
        emit_job(sink, WARM, tasks=False)
        snap = view.snapshot()
        assert convergence.reuse_refresh(snap, drawn.base) == {"reused": 3, "pos": snap.pos}
        redrawn = convergence.convergence_view(snap, [], [], None)
        assert convergence.reuse_refresh(snap, redrawn.base) is None
        # A selection without the warm job, or a figure rebuilt on every change anyway,
        # needs no extra redraw.
        cold_only = convergence.convergence_view(snap, ["job-1"], [], None)
        assert convergence.reuse_refresh(snap, cold_only.base) is None
        per_job = convergence.convergence_view(snap, [], [], None, per="job")
        assert per_job.base["mode"] == "refresh"
        assert convergence.reuse_refresh(snap, per_job.base) is None
        assert convergence.reuse_refresh(snap, None) is None
        # The task details naming reused records may also come after the records.
        emit_job(sink, ONLY, tasks=False)
        before = convergence.convergence_view(view.snapshot(), [], [], None)
        assert before.base["reused"] == 3
        emit_job(sink, ONLY, records=False)
        assert convergence.reuse_refresh(view.snapshot(), before.base)["reused"] == 3 + 4


def test_the_inspector_says_where_a_records_schedule_came_from(
    app_ctx: AppContext, store: SQLiteStore
) -> None:
    cases = [(("job-2", "conv", 1), REFITTED), (("job-2", "conv", 3), TUNED_HERE),
             (("job-3", "dense", 1), UNTUNED), (("job-1", "conv", 0), TUNED_HERE)]  # fmt: skip
    for key, expected in cases:
        pos = positions(store, *key)
        head, _ = inspector.inspector_content(app_ctx, pos, "trace", "first", None, "trace")
        text = str(head)
        assert "'schedule'" in text and f"'{expected}'" in text, (key, text)


def test_the_records_table_has_a_filterable_schedule_column(app_ctx: AppContext) -> None:
    snap = app_ctx.view.snapshot()
    table = records.records_table(snap, [], [], None)
    assert (table["schedule"] == TUNED_HERE).sum() == 5 + 4 + 2 + 3
    found = records.table_page(table, {
        "startRow": 0, "endRow": 25,
        "filterModel": {"schedule": {"filterType": "text", "type": "contains", "filter": "resnet"}},
    })  # fmt: skip
    assert found.message == "" and found.matching == 2
    assert {r["schedule"] for r in found.rows} == {DENSE}
    untuned = table[table["schedule"] == UNTUNED]
    assert untuned["pos"].tolist() == [positions(app_ctx.view.store, "job-3", t, 1)
                                       for t in ("conv", "dense")]  # fmt: skip


def test_jobs_without_reuse_keep_their_labels_and_tables(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "cold.db") as store:
        reuse_history(store, jobs=(COLD,))
        snap = StoreView(store).snapshot()
        assert snap.reused == {} and snap.reuse_kinds == {}
        assert snap.labels == {"job-1": "mobilenet (job-1)"}
        summary = convergence.task_summary(snap, [], [])
        assert summary["origin"].tolist() == [TUNED_HERE, TUNED_HERE]
        assert summary["library"].tolist() == [0, 0]
        assert set(records.records_table(snap, [], [], None)["schedule"]) == {TUNED_HERE}


def test_reach_is_reported_between_reuse_jobs_too(app_ctx: AppContext) -> None:
    view = convergence.convergence_view(app_ctx.view.snapshot(), ["job-2", "job-3"], [], None,
                                        per="job")  # fmt: skip
    assert "Each job reached" in view.notice
    assert ONLY.job in str(view.notice) and WARM.job in str(view.notice)
