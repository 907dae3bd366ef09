"""Search space: what a task's fastest schedules have in common, and which decisions matter.

Pick a job and a task (or open ``/searchspace?job=ID&task=NAME``; ``job2``/``task2`` add a
second side to compare): every measured candidate's decisions against its latency as
parallel coordinates drawn on a canvas (drag on an axis to brush, click it to clear; the
fastest 10 % start brushed), the decisions' importance for latency and a plain-words
summary of what the fastest share.
Each side's candidates are decoded once and then only the records stored since are read.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from dash import Dash, Input, Output, State, dcc, html, no_update

from collectors.decisions_analysis import Analysis, analyze
from collectors.decisions_table import Candidates, CandidateTable, refresh, task_loops
from dashboard.context import AppContext, read_filter
from dashboard.figures import searchspace as sf
from dashboard.pages.common import GRAPH_CONFIG, card, field, page_head

NAME = "searchspace"
PATH = "/searchspace"
TITLE = "Search space"
SIDES = ("a", "b")
CACHE_SIZE = 8
# Hands a side's lines to the canvas drawing (assets/tuneloom_parcoords.js).
DRAW_JS = """
function (data) {
  window.tuneloomParcoords.render("searchspace-parcoords-SIDE", data);
}
"""


@dataclass(frozen=True)
class TaskView:
    """What one side of the page shows for a (job, task), and the records it stands for
    (``stamp``: their count and newest position)."""

    candidates: Candidates
    analysis: Analysis
    stamp: tuple[int, int]


@dataclass
class _Side:
    """The decoded candidates of one (job, task), grown as records arrive, and the view
    of them last shown."""

    table: CandidateTable
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    view: TaskView | None = None


class _Cache:
    """Decoded candidates and their analysis per (job, task), kept while the task's
    records are unchanged; when records arrive, only those are decoded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], _Side] = OrderedDict()

    def get(self, ctx: AppContext, job: str, task: str) -> TaskView:
        records = ctx.view.snapshot().records
        mine = records[(records["job"] == job) & (records["task"] == task)]
        stamp = (len(mine), int(mine["pos"].max()) if len(mine) else 0)
        key = (job, task)
        with self._lock:
            side = self._items.get(key)
            if side is None:
                side = self._items[key] = _Side(CandidateTable(task_loops(ctx.store, job, task)))
                while len(self._items) > CACHE_SIZE:
                    self._items.popitem(last=False)
            self._items.move_to_end(key)
        with side.lock:  # two tabs asking at once: the second finds the first's view
            if side.view is None or side.view.stamp != stamp:
                refresh(side.table, ctx.store, job, task)
                cands = side.table.candidates()
                side.view = TaskView(cands, analyze(cands), stamp)
            return side.view


_CACHES: dict[int, _Cache] = {}


def cache_of(ctx: AppContext) -> _Cache:
    """The page's cache for one app."""
    return _CACHES.setdefault(id(ctx), _Cache())


def task_choices(ctx: AppContext, job: str | None) -> list[dict[str, str]]:
    """Tasks of a job that have measured candidates, most measured first."""
    records = ctx.view.snapshot().records
    if not job or records.empty:
        return []
    counts = records[records["job"] == job]["task"].value_counts()
    return [{"label": f"{t} ({n:,})", "value": str(t)} for t, n in counts.items()]


def job_choices(ctx: AppContext) -> list[dict[str, str]]:
    snap = ctx.view.snapshot()
    with_records = set(snap.records["job"]) if len(snap.records) else set()
    return [{"label": snap.labels.get(j, j), "value": j} for j in snap.colors if j in with_records]


def default_selection(
    ctx: AppContext, search: str | None, filt: dict[str, Any] | None
) -> dict[str, str | None]:
    """Job and task of each side: from the URL's query, else the shared filter, else the
    task with the most measured candidates."""
    query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}
    jobs, tasks, _ = read_filter(filt)
    records = ctx.view.snapshot().records
    job_a = query.get("job") or (jobs[0] if jobs else None)
    task_a = query.get("task") or (tasks[0] if tasks else None)
    if job_a is None and len(records):
        top = records.groupby(["job", "task"]).size().sort_values(ascending=False)
        job_a, task_a = (str(x) for x in top.index[0])
    if job_a is not None and task_a is None:
        choices = task_choices(ctx, job_a)
        task_a = choices[0]["value"] if choices else None
    return {
        "job-a": job_a,
        "task-a": task_a,
        "job-b": query.get("job2"),
        "task-b": query.get("task2"),
    }


def side_content(
    ctx: AppContext, job: str | None, task: str | None
) -> tuple[Any, Any, Any, list[Any] | None]:
    """(summary, importance figure, parallel-coordinates data, what that data shows) of one
    side; the last names the (job, task) and records the data was made from."""
    empty = sf.importance_figure([], [], [])
    if not job or not task:
        return html.Div("Pick a job and a task.", className="tl-notice"), empty, None, None
    records = ctx.view.snapshot().records
    if records.empty or not ((records["job"] == job) & (records["task"] == task)).any():
        text = f"Job {job} has no measured candidates of task {task}."
        return html.Div(text, className="tl-error"), empty, None, None
    view = cache_of(ctx).get(ctx, job, task)
    cands, analysis = view.candidates, view.analysis
    notes = [html.P(s) for s in analysis.summary]
    counts = f"{len(cands):,} measured candidates with decoded decisions"
    if cands.failed:
        counts += f"; {cands.failed:,} failed (no latency) not shown"
    details = [html.Div(counts, className="tl-muted")]
    if cands.undecoded:
        details.append(html.Div(cands.undecoded_text() + ".", className="tl-error"))
    details.append(html.Div(f"Importance: {analysis.method}.", className="tl-muted"))
    lines = None
    if len(cands):
        ranked = [i.name for i in analysis.importances]
        axes = sf.axis_order(list(cands.features.columns), ranked)
        sample = sf.sample_lines(cands.latency_secs, analysis.fast_total)
        rows = sample.rows
        latency_ms = cands.latency_secs * 1e3
        fast_ms = (
            float(np.partition(latency_ms, analysis.fast_total - 1)[analysis.fast_total - 1])
            if analysis.fast_total
            else None
        )
        features = cands.features.iloc[rows] if sample.sampled else cands.features
        lines = sf.parcoords_data(
            features.reset_index(drop=True), latency_ms[rows], axes, fast_ms=fast_ms,
            title=f"{task} in {job}", key=[job, task, *view.stamp],
        )  # fmt: skip
        shown = f"{len(axes)} of {cands.features.shape[1]} decisions drawn (most important first)"
        if sample.sampled:
            fast_drawn = int(np.sum(latency_ms[rows] <= fast_ms)) if fast_ms else 0
            which = (
                f"all of the fastest {analysis.fast_total:,}"
                if fast_drawn >= analysis.fast_total
                else f"a random {fast_drawn:,} of the fastest {analysis.fast_total:,}"
            )
            shown += (
                f"; {len(rows):,} of {sample.total:,} candidates drawn: {which} and a random "
                "sample of the rest; the summary and importance use every candidate"
            )
        else:
            shown += f"; all {len(rows):,} candidates drawn, the fastest "
            shown += f"{analysis.fast_total:,} brushed to start with"
        details.append(html.Div(shown + ".", className="tl-muted", id="searchspace-drawn-note"))
    importance = sf.importance_figure(
        [i.name for i in analysis.importances],
        [i.score for i in analysis.importances],
        [i.spread for i in analysis.importances],
        note="" if analysis.meaningful else "not meaningful: the model does not predict latency",
    )
    return html.Div([*notes, *details]), importance, lines, [job, task, *view.stamp]


def _side(side: str) -> html.Div:
    return html.Div(
        [
            card(html.Div(id=f"searchspace-summary-{side}"), title="What the fastest share"),
            card(
                html.Div(id=f"searchspace-parcoords-{side}", className="tl-parcoords"),
                dcc.Store(id=f"searchspace-lines-{side}"),
                dcc.Store(id=f"searchspace-shown-{side}"),
                title="Decisions against latency (drag on an axis to brush, click it to clear)",
            ),
            card(
                dcc.Graph(id=f"searchspace-importance-{side}", config=GRAPH_CONFIG),
                title="Importance for latency",
            ),
        ],
        id=f"searchspace-side-{side}",
        style={"flex": "1 1 0", "minWidth": 0},
    )


def layout(ctx: AppContext) -> html.Div:
    def pickers(side: str, label: str) -> list[Any]:
        return [
            field(f"{label} job", dcc.Dropdown(id=f"searchspace-job-{side}"), "wide"),
            field(f"{label} task", dcc.Dropdown(id=f"searchspace-task-{side}"), "wide"),
        ]

    return html.Div(
        [
            page_head(
                "Search space",
                "Every measured candidate's schedule decisions against its latency, the "
                "decisions that matter most, and what the fastest 10 % have in common. Pick a "
                "second job or task to compare side by side.",
            ),
            html.Div(
                [*pickers("a", "Show"), *pickers("b", "Compare with")], className="tl-toolbar"
            ),
            html.Div([_side("a"), _side("b")], style={"display": "flex", "gap": "12px"}),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        *[Output(f"searchspace-{w}-{side}", "value") for side in SIDES for w in ("job", "task")],
        *[Output(f"searchspace-{w}-{side}", "options") for side in SIDES for w in ("job", "task")],
        Input("url", "search"),
        State("filter-store", "data"),
    )
    def choose(search: str | None, filt: dict[str, Any] | None):
        chosen = default_selection(ctx, search, filt)
        jobs = job_choices(ctx)
        values, options = [], []
        for side in SIDES:
            values += [chosen[f"job-{side}"], chosen[f"task-{side}"]]
            options += [jobs, task_choices(ctx, chosen[f"job-{side}"])]
        return (*values, *options)

    for side in SIDES:

        @app.callback(
            Output(f"searchspace-task-{side}", "options", allow_duplicate=True),
            Output(f"searchspace-task-{side}", "value", allow_duplicate=True),
            Input(f"searchspace-job-{side}", "value"),
            State(f"searchspace-task-{side}", "value"),
            prevent_initial_call=True,
        )
        def tasks_of(job: str | None, task: str | None):
            options = task_choices(ctx, job)
            values = [o["value"] for o in options]
            if task in values:
                return options, no_update
            return options, values[0] if values else None

        @app.callback(
            Output(f"searchspace-summary-{side}", "children"),
            Output(f"searchspace-importance-{side}", "figure"),
            Output(f"searchspace-lines-{side}", "data"),
            Output(f"searchspace-shown-{side}", "data"),
            Output(f"searchspace-side-{side}", "style"),
            Input(f"searchspace-job-{side}", "value"),
            Input(f"searchspace-task-{side}", "value"),
            Input("live-tick", "data"),
            State(f"searchspace-shown-{side}", "data"),
        )
        def show(job: str | None, task: str | None, _tick: Any, shown: Any, side: str = side):
            style = {"flex": "1 1 0", "minWidth": 0}
            if side == "b" and not (job and task):
                empty = sf.importance_figure([], [], [])
                return None, empty, None, None, {**style, "display": "none"}
            summary, importance, lines, drawn = side_content(ctx, job, task)
            if lines is None:
                return summary, importance, None, None, style
            if drawn == shown:  # the browser has these lines (and maybe brushes on them)
                return summary, importance, no_update, no_update, style
            return summary, importance, lines, drawn, style

        app.clientside_callback(
            DRAW_JS.replace("SIDE", side), Input(f"searchspace-lines-{side}", "data")
        )
