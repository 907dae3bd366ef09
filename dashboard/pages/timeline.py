"""Timeline: a Gantt chart per resource, exact up to ~5k visible stages, aggregated above."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html

from collectors._base import BaseStore
from dashboard.context import AppContext, Window, read_filter
from dashboard.data import Snapshot
from dashboard.figures import timeline as tf
from dashboard.live import new_stamp, stamp_figure
from dashboard.pages.common import GRAPH_CONFIG, card, filter_base, page_head

NAME = "timeline"
PATH = "/"
TITLE = "Timeline"


@dataclass(frozen=True)
class TimelineView:
    """What the timeline callback returns: the figure, its live base and the notice."""

    figure: go.Figure
    base: dict[str, Any]
    notice: str
    aggregated: bool
    count: int


def timeline_view(
    snap: Snapshot,
    jobs: list[str],
    tasks: list[str],
    window: Window | None,
    *,
    limit: int,
    bins: int,
    revision: int = 0,
    departures: Sequence[tuple[str, float, str]] = (),
) -> TimelineView:
    """Exact bars when at most ``limit`` stages are visible, an occupancy raster otherwise;
    the lanes of resources that left (``departures``: resource, time, why) end in a mark."""
    selected = tf.filter_stages(snap.stages, jobs=jobs, tasks=tasks)
    visible = tf.filter_stages(selected, window=window) if window else selected
    lanes = tf.order_lanes(list(selected["lane"].unique()))
    count = len(visible)
    base: dict[str, Any] = {
        "kind": "timeline",
        "graph": "timeline-graph",
        "refresh": "timeline-refresh",
        "pos": snap.pos,
        "t0": snap.t0_wall,
        "count": count,
        "limit": limit,
        "lanes": lanes,
        "lane_px": tf.LANE_HEIGHT_PX,
        "rev": revision,
        "refresh_ms": 1000,
        **filter_base(jobs, tasks, window),
    }
    sim = bool(len(selected)) and bool((selected["clock"] == "sim").any())
    sim_note = " Simulated runs have their own lanes, in simulated seconds." if sim else ""
    if count <= limit:
        bars = tf.bar_data(visible, snap.colors, snap.labels)
        ends = tf.lane_ends(departures, snap.t0_wall, lanes)
        figure = tf.gantt_figure(bars, lanes, window, ends)
        if count == 0:
            figure.update_layout(
                annotations=[
                    {
                        "text": "No stages here yet: they appear as jobs run.",
                        "showarrow": False, "xref": "paper", "yref": "paper",
                        "x": 0.5, "y": 0.5, "font": {"size": 14, "color": "#6c757d"},
                    }
                ]
            )  # fmt: skip
        notice = f"{count:,} stages, each drawn exactly."
        return TimelineView(figure, {**base, "mode": "bars"}, notice + sim_note, False, count)
    span = window or tf.span(visible)
    assert span is not None
    occ = tf.occupancy(visible, lanes, span, bins=bins)
    figure = tf.occupancy_figure(occ, snap.colors, snap.labels, window)
    width = (span[1] - span[0]) / bins
    notice = (
        f"Aggregated view: {count:,} stages are visible, more than the {limit:,} drawn one by "
        f"one. Each lane shows how busy it was in {bins} time bins of {_duration(width)}, in "
        "the colour of the job that held it most (darker is busier). "
        "Zoom in (drag across the chart) to see single stages."
    )
    return TimelineView(figure, {**base, "mode": "refresh"}, notice + sim_note, True, count)


def departures(store: BaseStore) -> list[tuple[str, float, str]]:
    """(resource, time, why) of every resource whose latest ``resource`` event says it left
    (a cluster node that went away and has not come back)."""
    latest: dict[str, Any] = {}
    for stored in store.read(kinds=["resource"]):
        if stored.event.clock == "wall":
            latest[stored.event.resource] = stored.event  # type: ignore[attr-defined]
    return [
        (resource, event.ts, event.detail or "")
        for resource, event in latest.items()
        if event.presence == "left"
    ]


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def utilization_view(snap: Snapshot, jobs: list[str], tasks: list[str], window: Window | None):
    """The utilization figure of the selected stages over the window (or their span)."""
    selected = tf.filter_stages(snap.stages, jobs=jobs, tasks=tasks)
    lanes = tf.order_lanes(list(selected["lane"].unique()))
    visible = tf.filter_stages(selected, window=window) if window else selected
    return tf.utilization_figure(tf.utilization(visible, lanes, window))


def layout(ctx: AppContext) -> html.Div:
    return html.Div(
        [
            page_head(
                "Timeline",
                "Every stage on the resource that ran it, coloured by job; hover a bar for its "
                "task, iteration, stage kind and duration. Drag to zoom, double-click to reset.",
            ),
            html.Div(id="timeline-notice", className="tl-notice"),
            card(
                dcc.Loading(
                    dcc.Graph(id="timeline-graph", config=GRAPH_CONFIG),
                    type="dot",
                    delay_show=400,
                )
            ),
            dcc.Store(id="timeline-base"),
            dcc.Store(id="timeline-refresh"),
            card(
                dcc.Graph(id="utilization-graph", config=GRAPH_CONFIG),
                title="Utilization and idle time per resource over the visible window",
            ),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("timeline-graph", "figure"),
        Output("timeline-base", "data"),
        Output("timeline-notice", "children"),
        Input("filter-store", "data"),
        Input("timeline-refresh", "data"),
    )
    def draw(filt: dict[str, Any] | None, _refresh: Any):
        jobs, tasks, window = read_filter(filt)
        view = timeline_view(
            ctx.view.snapshot(), jobs, tasks, window,
            limit=ctx.bars_limit, bins=ctx.raster_bins, revision=ctx.revision(),
            departures=departures(ctx.store),
        )  # fmt: skip
        stamp = new_stamp()
        return stamp_figure(view.figure, stamp), {**view.base, "stamp": stamp}, view.notice

    @app.callback(
        Output("utilization-graph", "figure"),
        Input("timeline-base", "data"),  # after the timeline: the main figure paints first
        Input("live-tick", "data"),
        State("filter-store", "data"),
    )
    def utilization(_base: Any, _tick: Any, filt: dict[str, Any] | None):
        jobs, tasks, window = read_filter(filt)
        return utilization_view(ctx.view.snapshot(), jobs, tasks, window)

    # Zooming is read in the browser: a server callback would race Plotly's own relayout
    # events (a late "autosize" would supersede the zoom's request).
    app.clientside_callback(
        "function (relayout) { return window.tuneloomLive.zoomWindow(relayout); }",
        Output("zoom-store", "data"),
        Input("timeline-graph", "relayoutData"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        "function (base) { if (window.tuneloomLive) window.tuneloomLive.setBase('timeline-graph',"
        " base); }",
        Input("timeline-base", "data"),
        prevent_initial_call=True,
    )
