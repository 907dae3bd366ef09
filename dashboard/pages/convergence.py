"""Convergence: best latency so far per task and job, and the weighted end-to-end estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from collectors import reuse
from dashboard import grid
from dashboard.context import AppContext, Window, read_filter
from dashboard.data import Snapshot
from dashboard.figures import convergence as cf
from dashboard.figures.style import empty_figure, latency_text
from dashboard.live import new_stamp, stamp_figure
from dashboard.pages.common import GRAPH_CONFIG, card, filter_base, page_head

NAME = "convergence"
PATH = "/convergence"
TITLE = "Convergence"
MAX_POINTS = 2_000
SUMMARY_COLUMNS = [
    grid.column("job", "job", minWidth=grid.WIDE),
    grid.column("task", "task", minWidth=grid.WIDE, tooltipField="task"),
    grid.column("weight", "weight", numeric=True),
    grid.column("trials", "trials", numeric=True),
    grid.column("failed", "failed", numeric=True),
    grid.column("best_ms", "best (ms)", numeric=True),
    grid.column("gflops", "GFLOP/s", numeric=True),
    grid.column("best_pos", "best record", numeric=True),
    grid.column("origin", "best schedule from", tooltipField="origin"),
    grid.column("library", "library schedules", numeric=True),
    grid.column("library_ms", "best library (ms)", numeric=True),
    grid.column("stopped", "stopped", tooltipField="stopped"),
]


@dataclass(frozen=True)
class ConvergenceView:
    figure: go.Figure | dict[str, Any]  # a plain {"data", "layout"} for large figures
    base: dict[str, Any]
    notice: str


def selected_records(
    snap: Snapshot, jobs: list[str], tasks: list[str], window: Window | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records of the selected jobs and tasks, those of them inside the time window)."""
    records = snap.records
    if jobs:
        records = records[records["job"].isin(jobs)]
    if tasks:
        records = records[records["task"].isin(tasks)]
    if window is None:
        return records, records
    offset = np.where(records["clock"].to_numpy() == "sim", 0.0, snap.t0_wall or 0.0)
    axis_t = records["ts"].to_numpy(dtype=float) - offset
    inside = (axis_t >= window[0]) & (axis_t <= window[1])
    return records, records[inside]


def convergence_view(
    snap: Snapshot,
    jobs: list[str],
    tasks: list[str],
    window: Window | None,
    *,
    per: str = "task",
    show_points: bool = False,
    log_y: bool = True,
    revision: int = 0,
) -> ConvergenceView:
    """The convergence figure for the filter: per (job, task) series, or per job estimates.

    The running best is computed over every record of a series; the window only limits
    which points are drawn.
    """
    records, inside = selected_records(snap, jobs, tasks, window)
    base: dict[str, Any] = {
        "kind": "convergence",
        "graph": "convergence-graph",
        "refresh": "convergence-refresh",
        "pos": snap.pos,
        "t0_wall": snap.t0_wall,
        "job_t0": dict(snap.job_t0),
        "rev": revision,
        "refresh_ms": 1000,
        "mode": "refresh",
        **filter_base(jobs, tasks, window),
    }
    if records.empty:
        message = "No measured candidates here yet: they appear as jobs run."
        return ConvergenceView(empty_figure(message, height=480), base, "")
    reused = reused_in(snap, records)
    base["reused"] = len(reused)
    if per == "job":
        e2e = cf.end_to_end(records, snap.tasks, snap.job_t0)
        e2e = e2e[e2e["pos"].isin(inside["pos"])]
        figure = cf.end_to_end_figure(
            e2e, snap.colors, snap.labels, log_y=log_y, max_points=MAX_POINTS, reused=reused
        )
        missing = [
            j for j in e2e["job"].unique() if e2e[e2e["job"] == j]["estimate_ms"].isna().all()
        ]
        notice = (
            "Estimated end-to-end latency of each job: the sum over its tunable tasks of the "
            "task's weight in the model times its best latency so far, defined once every "
            "task has a valid measurement."
        )
        if missing:
            notice += f" Not yet defined for {len(missing)} job(s)."
        notice += reach_notice(e2e, snap) + reuse_notice(reused)
        return ConvergenceView(figure, base, notice)
    best = cf.best_so_far(records, snap.job_t0)
    shown = best[best["pos"].isin(inside["pos"])] if window else best
    figure, meta = cf.convergence_figure_dict(
        shown, snap.colors, snap.labels, show_points=show_points, log_y=log_y,
        max_points=MAX_POINTS, reused=reused,
    )  # fmt: skip
    notice = (
        f"{len(records):,} measured candidates in {len(meta.series)} series, "
        f"{int(best['is_error'].sum()):,} failed (red crosses). Click a point to inspect it."
    )
    if meta.downsampled:
        notice += (
            " Long series are drawn from fewer points on the server: each best-so-far line by "
            "the records where it improves (exactly), measurements by each bucket's minimum and "
            "maximum, failed candidates evenly thinned."
        )
    notice += reuse_notice(reused)
    if window is None:
        base.update(mode="patch", **meta.to_json())
    return ConvergenceView(figure, base, notice)


def reused_in(snap: Snapshot, records: pd.DataFrame) -> dict[int, str]:
    """Record position -> origin of the selected records reused from a library or from a
    sibling task (nothing to compute when no job of the snapshot has any)."""
    if not snap.reused:
        return {}
    return reuse.reused_records(records, snap.reused)


def reuse_notice(reused: dict[int, str]) -> str:
    siblings = sum(1 for origin in reused.values() if origin.startswith(reuse.SIBLING_TEXT))
    parts = []
    if len(reused) > siblings:
        parts.append(
            f"Stars: {len(reused) - siblings:,} record(s) whose schedule came from a library "
            "(squares: the untuned fallback)"
        )
    if siblings:
        parts.append(
            f"Diamonds: {siblings:,} record(s) measuring the best schedule of another task of "
            "the job, applied to this one"
        )
    return f" {'; '.join(parts)}; hover one for its source." if parts else ""


def reach_notice(e2e: pd.DataFrame, snap: Snapshot) -> str:
    """When a started-from-library job is compared with others: how soon each reached the
    latency all of them reached."""
    reach = cf.time_to_reach(e2e)
    if len(reach) < 2 or not set(reach["job"]) & set(snap.reuse_kinds):
        return ""
    parts = [
        f"{snap.labels.get(job, job)} after {n:,} trials, {t:.1f} s"
        for job, n, t in zip(reach["job"], reach["n"], reach["t"], strict=True)
    ]
    target = latency_text(float(reach["target_ms"].iloc[0]) / 1000.0)
    return (
        f" Each job reached {target} (the highest final estimate among them): "
        + "; ".join(parts)
        + "."
    )


def stopped_reason(detail: Any) -> str | None:
    """The ``stopped=`` line of a task event's detail (why it stopped early), or None."""
    if not isinstance(detail, str):
        return None
    for line in detail.splitlines():
        if line.startswith("stopped="):
            return line.removeprefix("stopped=")
    return None


def task_summary(snap: Snapshot, jobs: list[str], tasks: list[str]) -> pd.DataFrame:
    """Per (job, task): weight, trials, failures, best latency, GFLOP/s, its record and where
    its schedule came from (``origin``), with how many library schedules the task measured
    (``library``) and the best of them (``library_ms``), and why the task stopped before its
    budget (``stopped``: the ``stopped=`` line of its task event, e.g. stopped early by the
    allocator, or its search failed)."""
    records, _ = selected_records(snap, jobs, tasks, None)
    columns = [
        "job", "task", "weight", "trials", "failed", "best_ms", "gflops", "best_pos", "origin",
        "library", "library_ms", "stopped",
    ]  # fmt: skip
    if records.empty:
        return pd.DataFrame(columns=columns)
    ms = records["mean_secs"].astype(float) * 1000
    frame = records.assign(ms=ms)
    rows = []
    info = snap.tasks.set_index(["job", "task"]) if len(snap.tasks) else None
    for (job, task), df in frame.groupby(["job", "task"], sort=False):
        valid = df[df["ms"].notna()]
        weight, flops, stopped = 1.0, None, None
        if info is not None and (job, task) in info.index:
            weight = float(info.loc[(job, task), "weight"])
            value = info.loc[(job, task), "flops"]
            flops = float(value) if pd.notna(value) else None
            stopped = stopped_reason(info.loc[(job, task), "detail"])
        best_ms = float(valid["ms"].min()) if len(valid) else None
        rows.append(
            {
                "job": snap.labels.get(job, job),
                "task": task,
                "weight": weight,
                "trials": len(df),
                "failed": int(df["ms"].isna().sum()),
                "best_ms": round(best_ms, 5) if best_ms is not None else None,
                "gflops": round(flops / (best_ms / 1000) / 1e9, 2) if flops and best_ms else None,
                "best_pos": int(valid.loc[valid["ms"].idxmin(), "pos"]) if len(valid) else None,
                "origin": reuse.TUNED_HERE if len(valid) else None,
                "library": 0,
                "library_ms": None,
                "stopped": stopped,
                "_job": job,
            }
        )
    table = pd.DataFrame(rows)
    if snap.reused and len(table):
        origins = reuse.best_origins(records, snap.reused).set_index(["job", "task"])
        keys = pd.MultiIndex.from_arrays([table["_job"], table["task"]])
        found = origins.reindex(keys)
        has = found["origin"].notna().to_numpy()
        table.loc[has, "origin"] = found["origin"].to_numpy()[has]
        table.loc[has, "library"] = found["reused"].to_numpy()[has].astype(int)
        ms = (found["best_reused"].to_numpy(dtype=float) * 1000).round(5)
        table["library_ms"] = [None if v != v else float(v) for v in ms]
    return table.reindex(columns=columns)


def layout(ctx: AppContext) -> html.Div:
    return html.Div(
        [
            page_head(
                "Convergence",
                "Best latency found so far against trials and against time; per job, the "
                "weighted end-to-end estimate of its model.",
            ),
            html.Div(
                [
                    dcc.RadioItems(
                        id="convergence-per",
                        options=[
                            {"label": "per task", "value": "task"},
                            {"label": "per job (end-to-end estimate)", "value": "job"},
                        ],
                        value="task",
                        inline=True,
                        className="tl-radio",
                    ),
                    dcc.Checklist(
                        id="convergence-options",
                        options=[
                            {"label": "every measurement", "value": "points"},
                            {"label": "log scale", "value": "log"},
                        ],
                        value=["log"],
                        inline=True,
                        className="tl-radio",
                    ),
                ],
                className="tl-toolbar",
            ),
            html.Div(id="convergence-notice", className="tl-notice"),
            card(dcc.Graph(id="convergence-graph", config=GRAPH_CONFIG)),
            html.Div(id="convergence-selection", className="tl-selection"),
            dcc.Store(id="convergence-base"),
            dcc.Store(id="convergence-refresh"),
            card(
                grid.client_grid(
                    "convergence-summary",
                    SUMMARY_COLUMNS,
                    page_size=15,
                    row_id="params.data.job + '/' + params.data.task",
                    selectable=True,
                ),
                title="Best per task (click a row to select its best record)",
            ),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("convergence-graph", "figure"),
        Output("convergence-base", "data"),
        Output("convergence-notice", "children"),
        Input("filter-store", "data"),
        Input("convergence-per", "value"),
        Input("convergence-options", "value"),
        Input("convergence-refresh", "data"),
    )
    def draw(filt: dict[str, Any] | None, per: str, options: list[str] | None, _refresh: Any):
        jobs, tasks, window = read_filter(filt)
        options = options or []
        view = convergence_view(
            ctx.view.snapshot(), jobs, tasks, window, per=per or "task",
            show_points="points" in options, log_y="log" in options, revision=ctx.revision(),
        )  # fmt: skip
        stamp = new_stamp()
        return stamp_figure(view.figure, stamp), {**view.base, "stamp": stamp}, view.notice

    @app.callback(
        Output("convergence-summary", "rowData"),
        Input("filter-store", "data"),
        Input("live-tick", "data"),
    )
    def summary(filt: dict[str, Any] | None, _tick: Any):
        jobs, tasks, _ = read_filter(filt)
        return grid.plain_rows(task_summary(ctx.view.snapshot(), jobs, tasks))

    @app.callback(
        Output("convergence-refresh", "data"),
        Input("live-tick", "data"),
        State("convergence-base", "data"),
        prevent_initial_call=True,
    )
    def redraw_for_reuse(_tick: Any, base: dict[str, Any] | None):
        wanted = reuse_refresh(ctx.view.snapshot(), base)
        return wanted if wanted is not None else no_update

    @app.callback(
        Output("selected-record", "data", allow_duplicate=True),
        Input("convergence-graph", "clickData"),
        Input("convergence-summary", "selectedRows"),
        prevent_initial_call=True,
    )
    def select(click: dict[str, Any] | None, rows: Any):
        from dash import ctx as cb

        if cb.triggered_id == "convergence-graph":
            pos = clicked_position(click)
        elif cb.triggered_id == "convergence-summary":
            pos = grid.selected_position(rows, "best_pos")
        else:
            pos = None
        return {"pos": int(pos)} if pos is not None else no_update

    @app.callback(Output("convergence-selection", "children"), Input("selected-record", "data"))
    def show_selection(selected: dict[str, Any] | None):
        return selection_line(ctx, selected)

    app.clientside_callback(
        "function (base) { if (window.tuneloomLive) window.tuneloomLive.setBase("
        "'convergence-graph', base); }",
        Input("convergence-base", "data"),
        prevent_initial_call=True,
    )


def reuse_refresh(snap: Snapshot, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """A redraw request when the figure extended live (``patch`` mode) no longer marks every
    reused record of its selection (they arrived after it was drawn), else None."""
    if not base or base.get("kind") != "convergence" or base.get("mode") != "patch":
        return None
    drawn = base.get("reused") or 0
    if not snap.reused and not drawn:
        return None
    records, _ = selected_records(snap, base.get("jobs") or [], base.get("tasks") or [], None)
    now = len(reused_in(snap, records))
    return {"reused": now, "pos": snap.pos} if now != drawn else None


def clicked_position(click: dict[str, Any] | None) -> int | None:
    """The record position behind a clicked point (its customdata), if any."""
    points = (click or {}).get("points") or []
    if not points:
        return None
    value = points[0].get("customdata")
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return None


def selection_line(ctx: AppContext, selected: dict[str, Any] | None) -> Any:
    """One line naming the selected record, with a link to the inspector."""
    pos = (selected or {}).get("pos")
    if pos is None:
        return html.Span("Click a point or a row to select a record.", className="tl-muted")
    record = ctx.codes.record(int(pos))
    if record is None:
        return html.Span(f"No record at position {pos}.", className="tl-error")
    latency = (
        latency_text(record.mean_secs) if record.mean_secs is not None else
        f"failed ({record.error_class or 'error'})"
    )  # fmt: skip
    return html.Span(
        [
            html.B(f"Record {pos}"),
            f" · {record.job} · {record.task} · candidate {record.candidate} · {latency} · ",
            dcc.Link("open in the inspector", href="/inspector", id="open-inspector"),
        ]
    )
