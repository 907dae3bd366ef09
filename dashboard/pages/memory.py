"""Memory: a model's operator orders side by side (the tensors live at every step, stacked,
the peak marked, the storage TVM plans for each) and its TCM placement over the steps, from
the ``memory`` events ``tuneloom memory MODEL --db STORE`` appends."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, State, dcc, html, no_update

from collectors.memoryplan import MemoryPlan, MemoryPlanError
from dashboard.context import AppContext
from dashboard.figures.memory import live_memory_figure, tcm_figure
from dashboard.pages.common import GRAPH_CONFIG, card, field, page_head

NAME = "memory"
PATH = "/memory"
TITLE = "Memory"
EMPTY = (
    "No memory plans in this store. Make one with: tuneloom memory MODEL --db STORE "
    "[--tcm SIZE] (e.g. tuneloom memory zoo:randwire --tcm 16K --db tuneloom.db)."
)
NO_TCM = "No TCM placement in this plan: run tuneloom memory with --tcm SIZE to add one."


def plan_jobs(ctx: AppContext) -> list[str]:
    """Jobs with a memory plan, newest plan first."""
    jobs: list[str] = []
    for event in reversed(ctx.store.memory_plans()):
        if event.job not in jobs:
            jobs.append(event.job)
    return jobs


def layout(ctx: AppContext) -> html.Div:
    jobs = plan_jobs(ctx)
    return html.Div(
        [
            page_head(
                "Memory",
                "Activation memory of a model's fused kernels in TVM's order and in the orders "
                "with less memory (and, when a rewrite for memory changed the model, its best "
                "order rewritten): the tensors live at every step, stacked, on one scale, with "
                "each order's peak and the storage TVM's planner allocates for it; and the "
                "placement in a small fast memory (TCM), when planned.",
            ),
            html.Div(EMPTY if not jobs else "", id="memory-message", className="tl-notice"),
            field(
                "Job",
                dcc.Dropdown(
                    id="memory-job",
                    options=[{"label": j, "value": j} for j in jobs],
                    value=jobs[0] if jobs else None,
                    clearable=False,
                ),
                "wide",
            ),
            card(dcc.Graph(id="memory-live", config=GRAPH_CONFIG), title="Live tensors"),
            card(
                html.Div(id="memory-tcm-note", className="tl-muted"),
                dcc.Graph(id="memory-tcm", config=GRAPH_CONFIG),
                title="TCM and DRAM",
            ),
        ]
    )


def plan_view(ctx: AppContext, job: str | None) -> tuple[Any, Any, str, str]:
    """(live figure, TCM figure, TCM note, message) for the newest plan of ``job``."""
    empty: dict[str, Any] = {"data": [], "layout": {}}
    if not job:
        return empty, empty, "", EMPTY if not plan_jobs(ctx) else "Choose a job."
    events = ctx.store.memory_plans(job)
    if not events:
        return empty, empty, "", f"Job {job} has no memory plan. {EMPTY}"
    try:
        plan = MemoryPlan.from_json(events[-1].plan)
    except MemoryPlanError as exc:
        return empty, empty, "", f"The memory plan of {job} cannot be read: {exc}"
    tcm = tcm_figure(plan)
    message = f"{plan.model}: {len(plan.orders[0].steps) if plan.orders else 0} kernels"
    return live_memory_figure(plan), tcm or empty, "" if tcm else NO_TCM, message


def requested_job(search: str | None, jobs: list[str]) -> str | None:
    """The job a ``?job=ID`` link asks for, when it has a plan; else None."""
    wanted = parse_qs((search or "").lstrip("?")).get("job")
    return wanted[0] if wanted and wanted[0] in jobs else None


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("memory-job", "options"),
        Output("memory-job", "value"),
        Input("url", "search"),
        State("url", "pathname"),
    )
    def follow_link(search: str | None, path: str | None) -> tuple[Any, Any]:
        if path != PATH:
            return no_update, no_update
        jobs = plan_jobs(ctx)
        options = [{"label": j, "value": j} for j in jobs]
        return options, requested_job(search, jobs) or (jobs[0] if jobs else None)

    @app.callback(
        Output("memory-live", "figure"),
        Output("memory-tcm", "figure"),
        Output("memory-tcm-note", "children"),
        Output("memory-message", "children"),
        Input("memory-job", "value"),
    )
    def show(job: str | None) -> tuple[Any, Any, str, str]:
        return plan_view(ctx, job)
