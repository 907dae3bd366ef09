"""The frame around every page: navigation, the shared job/task/time filter, the job legend."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import flask
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from dashboard.colors import color_of
from dashboard.context import AppContext, read_filter
from dashboard.live import NAMESPACE
from dashboard.pages.common import field

EMPTY_FILTER: dict[str, Any] = {"jobs": [], "tasks": [], "window": None}


def requested_path() -> str | None:
    """The path of the page whose layout is being fetched (the request's referrer).

    Rendering that page into the first layout saves the routing round trip on page load.
    """
    if not flask.has_request_context():
        return None
    referrer = flask.request.referrer
    return urlparse(referrer).path if referrer else None


def layout(app_ctx: AppContext, pages: list[Any], path: str | None = None) -> html.Div:
    """The page frame; built on every page load so the live start position is current.

    With ``path`` of a page, that page is rendered in it at once; otherwise the routing
    callback fills it in.
    """
    first = next((page for page in pages if path == page.PATH), None)
    live_config = {
        "enabled": app_ctx.live,
        "namespace": NAMESPACE,
        "path": "/socket.io",
        "pos": app_ctx.store.last_pos(),
    }
    nav = [
        dcc.Link(
            page.TITLE, href=page.PATH, id=f"nav-{page.NAME}", className=_nav_class(page is first)
        )
        for page in pages
    ]
    return html.Div(
        className="tl-app",
        children=[
            dcc.Location(id="url", refresh=False),
            dcc.Store(id="filter-store", data=EMPTY_FILTER),
            dcc.Store(id="zoom-store"),
            dcc.Store(id="selected-record"),
            dcc.Store(id="token-store", storage_type="session"),
            dcc.Store(id="live-tick"),
            dcc.Store(id="live-config", data=live_config),
            dcc.Store(id="page-shown", data=first.NAME if first else None),
            html.Aside(
                className="tl-nav",
                children=[
                    html.Div([html.Span("tune"), html.B("loom")], className="tl-brand"),
                    html.Nav(nav, className="tl-nav-links"),
                    html.Div(
                        [
                            html.Span(
                                "offline" if not app_ctx.live else "connecting",
                                id="live-status",
                                className="tl-live tl-live-off",
                            ),
                            html.Div(app_ctx.title, className="tl-store", title=app_ctx.title),
                        ],
                        className="tl-nav-foot",
                    ),
                ],
            ),
            html.Main(
                className="tl-main",
                children=[
                    filter_bar(),
                    html.Div(id="job-legend", className="tl-legend"),
                    html.Div(
                        first.layout(app_ctx) if first else None, id="page", className="tl-page"
                    ),
                ],
            ),
        ],
    )


def filter_bar() -> html.Div:
    """Jobs, tasks and a time window shared by every page."""
    return html.Div(
        className="tl-filters",
        children=[
            field(
                "Jobs", dcc.Dropdown(id="filter-jobs", multi=True, placeholder="all jobs"), "wide"
            ),
            field(
                "Tasks",
                dcc.Dropdown(id="filter-tasks", multi=True, placeholder="all tasks"),
                "wide",
            ),
            field(
                "From (s)",
                dcc.Input(id="filter-from", type="number", debounce=True, placeholder="start"),
                "narrow",
            ),
            field(
                "To (s)",
                dcc.Input(id="filter-to", type="number", debounce=True, placeholder="end"),
                "narrow",
            ),
            html.Button("Reset", id="filter-reset", className="tl-button tl-button-quiet"),
            html.Div(id="filter-message", className="tl-field-message"),
        ],
    )


JOB_OPTIONS_LIMIT = 200  # options the job filter holds at once (typing searches the rest)


def job_options(
    app_ctx: AppContext,
    search: str | None = None,
    chosen: list[str] | None = None,
    limit: int = JOB_OPTIONS_LIMIT,
) -> list[dict[str, Any]]:
    """Options of the job filter: every job in submission order, labelled as everywhere.

    With more than ``limit`` jobs (a browser indexes every option for its search), the
    chosen jobs and the first ``limit`` whose label or id contains ``search``, and a last,
    disabled option saying how many more match."""
    snap = app_ctx.view.snapshot()
    if len(snap.colors) <= limit:
        return [{"label": snap.labels.get(j, j), "value": j} for j in snap.colors]
    keep = set(chosen or [])
    needle = (search or "").strip().lower()
    matching = [
        j
        for j in snap.colors
        if j in keep or not needle or needle in j.lower() or needle in snap.labels.get(j, j).lower()
    ]
    shown = [j for j in matching if j in keep] + [j for j in matching if j not in keep][:limit]
    options = [{"label": snap.labels.get(j, j), "value": j} for j in shown]
    if len(matching) > len(shown):
        more = len(matching) - len(shown)
        options.append({"label": f"{more:,} more: type to search", "value": "", "disabled": True})
    return options


def task_options(app_ctx: AppContext, jobs: list[str]) -> list[dict[str, Any]]:
    """Options of the task filter: tasks of the selected jobs (of all jobs when none)."""
    snap = app_ctx.view.snapshot()
    names: list[str] = []
    for frame in (snap.tasks, snap.records, snap.stages):
        if len(frame) == 0:
            continue
        part = frame[frame["job"].isin(jobs)] if jobs else frame
        names.extend(str(t) for t in part["task"].unique())
    seen = list(dict.fromkeys(names))
    return [{"label": t, "value": t} for t in seen]


LEGEND_LIMIT = 40  # chips drawn at most: a browser builds thousands of them for seconds


def legend(app_ctx: AppContext, jobs: list[str], limit: int = LEGEND_LIMIT) -> list[Any]:
    """Colour chips naming each job (the selected ones, or all), the first ``limit`` of
    them and a note saying how many more there are."""
    snap = app_ctx.view.snapshot()
    chosen = set(jobs)
    every = [j for j in snap.colors if not jobs or j in chosen]
    shown = every[:limit]
    states = dict(zip(snap.jobs["job"], snap.jobs["state"], strict=True))
    chips = []
    for job in shown:
        state = states.get(job)
        chips.append(
            html.Span(
                [
                    html.Span(
                        className="tl-chip-dot", style={"background": color_of(snap.colors, job)}
                    ),
                    snap.labels.get(job, job),
                    html.Span(f" {state}", className="tl-chip-state")
                    if isinstance(state, str)
                    else None,
                ],
                className="tl-chip",
                id={"type": "legend-chip", "job": job},
            )
        )
    if not chips:
        return [html.Span("No jobs in this store yet.", className="tl-muted")]
    if len(every) > len(shown):
        more = len(every) - len(shown)
        chips.append(
            html.Span(
                f"and {more:,} more job{'s' if more != 1 else ''}: choose jobs in the filter "
                "to see their colours",
                className="tl-muted",
            )
        )
    return chips


def register(app: Dash, app_ctx: AppContext, pages: list[Any]) -> None:
    """Routing, filter and legend callbacks."""
    by_path = {page.PATH: page for page in pages}

    @app.callback(
        Output("page", "children"),
        Output("page-shown", "data"),
        *[Output(f"nav-{page.NAME}", "className") for page in pages],
        Input("url", "pathname"),
        State("page-shown", "data"),
    )
    def route(pathname: str | None, shown: str | None) -> tuple[Any, ...]:
        page = by_path.get(pathname or "/")
        if page is not None and shown == page.NAME:
            return (no_update,) * (2 + len(pages))  # rendered with the layout already
        classes = [_nav_class(p is page) for p in pages]
        if page is None:
            body = html.Div(
                [html.H2("Not found"), html.P(f"No page at {pathname}.")], className="tl-card"
            )
        else:
            body = page.layout(app_ctx)
        return (body, page.NAME if page else None, *classes)

    @app.callback(
        Output("filter-jobs", "options"),
        Output("filter-tasks", "options"),
        Output("job-legend", "children"),
        Input("live-tick", "data"),
        Input("filter-jobs", "value"),
        Input("url", "pathname"),
        Input("filter-jobs", "search_value"),
    )
    def refresh_options(_tick: Any, jobs: list[str] | None, _path: str | None, search: str | None):
        jobs = jobs or []
        options = job_options(app_ctx, search, jobs)
        if "filter-jobs.search_value" in callback_ctx.triggered_prop_ids and search:
            return options, no_update, no_update  # typing: only the job list changes
        return options, task_options(app_ctx, jobs), legend(app_ctx, jobs)

    @app.callback(
        Output("filter-store", "data"),
        Output("filter-from", "value"),
        Output("filter-to", "value"),
        Output("filter-message", "children"),
        Input("filter-jobs", "value"),
        Input("filter-tasks", "value"),
        Input("filter-from", "value"),
        Input("filter-to", "value"),
        Input("filter-reset", "n_clicks"),
        Input("zoom-store", "data"),
        State("filter-store", "data"),
        prevent_initial_call=True,  # figures need not wait for it on page load
    )
    def update_filter(jobs, tasks, start, end, _reset, zoom, current):
        trigger = callback_ctx.triggered_id
        _, _, window = read_filter(current)
        message = ""
        if trigger == "filter-reset":
            return dict(EMPTY_FILTER), None, None, ""
        if trigger == "zoom-store":
            window = tuple(zoom["window"]) if zoom and zoom.get("window") else None
        elif trigger in ("filter-from", "filter-to"):
            window, message = window_from_inputs(start, end, window)
        data = {
            "jobs": jobs or [],
            "tasks": tasks or [],
            "window": list(window) if window else None,
        }
        if data == current and trigger not in ("filter-from", "filter-to", "zoom-store"):
            return no_update, no_update, no_update, message
        low = round(window[0], 3) if window else None
        high = round(window[1], 3) if window else None
        return data, low, high, message

    @app.callback(Output("token-store", "data"), Input("url", "search"), prevent_initial_call=False)
    def token_from_url(search: str | None):
        token = parse_qs((search or "").lstrip("?")).get("token")
        return token[0] if token else no_update

    app.clientside_callback(
        "function (config) { if (window.tuneloomLive) window.tuneloomLive.init(config); }",
        Input("live-config", "data"),
    )


def _nav_class(active: bool) -> str:
    return "tl-nav-link tl-nav-active" if active else "tl-nav-link"


def window_from_inputs(
    start: float | None, end: float | None, current: tuple[float, float] | None
) -> tuple[tuple[float, float] | None, str]:
    """The time window the From/To inputs ask for, or the current one and why not."""
    if start is None and end is None:
        return None, ""
    if start is None or end is None:
        return current, "Give both ends of the time window (seconds), or neither."
    if end <= start:
        return current, f"The window must end after it starts (from {start} s to {end} s)."
    return (float(start), float(end)), ""
