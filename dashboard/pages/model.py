"""Model: the model's fused graph coloured by where one run spends its time, and the
ranked bottlenecks; a node opens its task on the Convergence and Inspector pages."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import dash_cytoscape as cyto
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx
from dash.exceptions import PreventUpdate

from dashboard import grid
from dashboard.context import AppContext, read_filter
from dashboard.data import ModelEvents, ModelInputs, Snapshot
from dashboard.figures import modelgraph as mg
from dashboard.figures.style import latency_text
from dashboard.pages.common import card, field, page_head

NAME = "model"
PATH = "/model"
TITLE = "Model"
POLL_MS = 2_000  # profile and graph events are not pushed live: re-read this often
FIT_NODES = 40  # graphs up to this many drawn nodes open fitted; larger ones at the top
FOCUS_ZOOM = 0.8
GRAPH_HEIGHT = 640

STYLESHEET: list[dict[str, Any]] = [
    {"selector": "node", "style": {
        "label": "data(label)", "background-color": "data(color)", "color": "data(fg)",
        "shape": "round-rectangle", "width": 172, "height": 46, "font-size": 10,
        "text-wrap": "wrap", "text-max-width": 164, "text-valign": "center",
        "text-halign": "center", "border-width": 1, "border-color": "#6c757d"}},
    {"selector": "node.block", "style": {
        "width": 186, "height": 54, "border-width": 4, "border-style": "double",
        "font-weight": 600}},
    {"selector": "node.group", "style": {
        "background-color": "#eef1f4", "background-opacity": 0.6, "border-style": "dashed",
        "border-color": "#9aa5b1", "text-valign": "top", "text-halign": "center",
        "font-size": 11, "color": "#495057", "padding": 12}},
    {"selector": "node.nodata", "style": {"border-style": "dashed", "border-color": "#868e96"}},
    {"selector": "node.found", "style": {
        "border-color": "#0072b2", "border-width": 5, "border-style": "solid"}},
    {"selector": "node.picked, node:selected", "style": {
        "border-color": "#111111", "border-width": 5, "border-style": "solid"}},
    {"selector": "edge", "style": {
        "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 1.5,
        "line-color": "#adb5bd", "target-arrow-color": "#adb5bd"}},
]  # fmt: skip

TABLE_COLUMNS = [
    grid.column("kernel", "kernel", minWidth=grid.WIDE),
    grid.column("calls", "calls", numeric=True),
    grid.column("layers", "source layers"),
    grid.column("task", "task", minWidth=grid.WIDE),
    grid.column("share", "share (%)", numeric=True),
    grid.column("ms", "ms per run", numeric=True),
    grid.column("trials", "trials", numeric=True),
    grid.column("best_ms", "best (ms)", numeric=True),
]

# Cytoscape caches where its container is on the page; notices and legends above it change
# height as data arrives, which would aim clicks and zooms at the wrong node. Forget the
# cached place whenever the pointer enters, presses or scrolls on the graph.
FRESH_COORDS_JS = """
function (id) {
  const el = document.getElementById(id);
  if (!el || el.dataset.tlFreshCoords) return window.dash_clientside.no_update;
  el.dataset.tlFreshCoords = "1";
  const forget = () => {
    const cy = el._cyreg && el._cyreg.cy;
    const r = cy && cy.renderer && cy.renderer();
    if (r && r.invalidateContainerClientCoordsCache) r.invalidateContainerClientCoordsCache();
  };
  for (const type of ["mouseover", "mousedown", "touchstart", "wheel"]) {
    el.addEventListener(type, forget, {capture: true, passive: true});
  }
  return window.dash_clientside.no_update;
}
"""

# Moves the view once the graph holds the elements just sent (a few frames at most).
FOCUS_JS = """
function (focus) {
  const skip = window.dash_clientside.no_update;
  if (!focus) return skip;
  const go = (left) => {
    const el = document.getElementById("model-graph");
    const cy = el && el._cyreg && el._cyreg.cy;
    const target = cy && focus.id ? cy.getElementById(focus.id) : null;
    const ready = cy && cy.nodes().length === focus.nodes && (!focus.id || target.nonempty());
    if (!ready) {
      if (left > 0) requestAnimationFrame(() => go(left - 1));
      return;
    }
    if (focus.fit) {
      cy.fit(undefined, 24);
    } else if (target) {
      cy.zoom(focus.zoom);
      cy.center(target);
    } else if (focus.top) {
      const box = cy.nodes().boundingBox();
      cy.zoom(focus.zoom);
      cy.pan({x: cy.width() / 2 - ((box.x1 + box.x2) / 2) * focus.zoom,
              y: 24 - box.y1 * focus.zoom});
    }
    el.dataset.tlFocused = String(focus.rev);
  };
  requestAnimationFrame(() => go(120));
  return skip;
}
"""

# One reader per app, kept as long as the app's store view lives.
_EVENTS: weakref.WeakKeyDictionary[Any, ModelEvents] = weakref.WeakKeyDictionary()
_EVENTS_LOCK = threading.Lock()


def model_events(ctx: AppContext) -> ModelEvents:
    """The app's reader of profile and graph events."""
    with _EVENTS_LOCK:
        events = _EVENTS.get(ctx.view)
        if events is None:
            events = _EVENTS[ctx.view] = ModelEvents(ctx.store)
        return events


# --- choosing the job and the variant ----------------------------------------------------------


def job_options(snap: Snapshot, with_graph: set[str]) -> list[dict[str, str]]:
    """Every job, labelled as everywhere; jobs without a graph say so."""
    options = []
    for job in [*snap.colors, *sorted(with_graph - set(snap.colors))]:
        label = snap.labels.get(job, job)
        options.append({"label": label if job in with_graph else f"{label} · no graph yet",
                        "value": job})  # fmt: skip
    return options


def default_job(snap: Snapshot, with_graph: set[str], wanted: list[str]) -> str | None:
    """The first wanted job (the job filter) with a graph, else the newest job with one,
    else the newest job."""
    order = [*snap.colors, *sorted(with_graph - set(snap.colors))]
    for job in wanted:
        if job in with_graph:
            return job
    if wanted:
        return wanted[0]
    graphs = [job for job in order if job in with_graph]
    if graphs:
        return graphs[-1]
    return order[-1] if order else None


def job_stats(snap: Snapshot, job: str | None) -> dict[str, mg.TaskStats]:
    return mg.task_stats(snap.records, snap.tasks, job) if job else {}


# --- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """Everything the draw callback sends."""

    elements: list[dict[str, Any]]
    notices: list[Any]
    legend: Any
    rows: list[dict[str, Any]]
    selection: Any
    view: mg.GraphView | None = None


def model_view(
    inputs: ModelInputs | None,
    stats: dict[str, mg.TaskStats],
    variant: str,
    *,
    collapse: bool,
    expanded: list[str],
    query: str | None,
    picked: str | None,
) -> ModelView:
    """The page for one job: graph elements, notices, legend, ranked list, picked node."""
    if inputs is None:
        return _empty("No jobs in this store yet: the model of a job appears here.")
    if inputs.graph_event is None:
        return _empty(
            f"Job {inputs.job} has no model graph yet: the tuner stores one when it compiles "
            "the model. Its tuning shows on the other pages as usual."
        )
    graph = inputs.graph
    if graph is None:
        return _empty(
            f"The stored graph of job {inputs.job} cannot be read: {inputs.graph_error}",
            error=True,
        )
    shares = mg.shares_for(variant, graph, inputs.profiles, stats)
    groups = mg.blocks(graph)
    collapsed = [label for label in groups if label not in set(expanded)] if collapse else []
    picked_ids = [picked] if picked else []
    view = mg.graph_view(graph, shares, stats, collapsed=collapsed, query=query, picked=picked_ids)
    ranked = mg.bottlenecks(graph, shares, stats)
    return ModelView(
        elements=view.elements,
        notices=notices(graph, shares, view, stats, query),
        legend=legend(view.max_share, shares),
        rows=[row.to_row() for row in ranked],
        selection=selection(inputs.job, graph, shares, stats, picked),
        view=view,
    )


def _empty(message: str, *, error: bool = False) -> ModelView:
    line = html.Div(message, className="tl-error" if error else "tl-muted", id="model-problem")
    return ModelView([], [line], None, [], None)


def notices(
    graph: Any,
    shares: mg.Shares,
    view: mg.GraphView,
    stats: dict[str, mg.TaskStats],
    query: str | None,
) -> list[Any]:
    """One line per fact the colours depend on."""
    lines: list[Any] = []
    kernels = len(graph.nodes)
    head = f"{kernels:,} fused kernel calls"
    if view.collapsed_blocks:
        head += (
            f"; {view.collapsed_blocks} repeated blocks are collapsed into summary nodes "
            "(click one to expand it, click the frame of an expanded one to collapse it)"
        )
    lines.append(head + ".")
    if shares.missing:
        lines.append(f"Colours: {shares.missing}; nodes are drawn grey (no data).")
    elif shares.variant == mg.ESTIMATE:
        tasks = sorted({n.task for n in graph.nodes if n.task})
        measured = sum(1 for t in tasks if t in stats and stats[t].best_secs is not None)
        lines.append(
            f"Estimate from the best measured latency of {measured} of {len(tasks)} tasks x "
            f"their calls per run: {shares.total_ms:.4g} ms in all (not a measured run). "
            "Kernels of tasks without a valid measurement, and kernels no task covers, have "
            "no data."
        )
    else:
        lines.append(profile_line(shares))
    if shares.unmatched:
        listed = ", ".join(shares.unmatched[:3]) + (" ..." if len(shares.unmatched) > 3 else "")
        lines.append(
            html.Span(
                f"{len(shares.unmatched)} of {shares.profiled} profiled kernels "
                f"({shares.unmatched_ms:.4g} ms) are not in the graph and are left out of its "
                f"nodes: {listed}.",
                id="model-unmatched",
            )
        )
    if view.no_data and not shares.missing:
        lines.append(f"{view.no_data} drawn node(s) have no data (grey, dashed border).")
    if query and query.strip():
        text = query.strip()
        if not view.found:
            lines.append(f"No kernel, layer or task matches {text!r}.")
        else:
            found = f"{view.found} kernel call(s) match {text!r} (blue border)"
            if view.found_hidden:
                found += f"; {view.found_hidden} of them inside collapsed blocks (on the block)"
            lines.append(found + ".")
    return [html.Div(line) for line in lines]


def profile_line(shares: mg.Shares) -> str:
    """End-to-end latency, the kernels' sum and the gap between them."""
    e2e, total = shares.end_to_end_ms or 0.0, shares.kernel_sum_ms or 0.0
    name = mg.VARIANTS[shares.variant].capitalize()
    if e2e <= 0:
        return f"{name}: no end-to-end time stored; shares are of the kernels' sum {total:.4g} ms."
    gap = e2e - total
    line = f"{name}: {e2e:.4g} ms end to end; the kernels sum to {total:.4g} ms"
    if gap >= 0:
        return line + (
            f" (gap {gap:.4g} ms, {gap / e2e:.1%}: the VM's own work between kernels). "
            "Shares are of the end-to-end time."
        )
    return line + (
        f", {-gap:.4g} ms more than end to end (the profiler's own cost per call). "
        "Shares are of the end-to-end time, so they add up to more than 100%."
    )


def legend(top: float, shares: mg.Shares) -> Any:
    """The colour ramp from 0 to the largest drawn share, and the no-data colour."""
    gradient = ", ".join(mg.RAMP)
    what = "share of the estimate" if shares.variant == mg.ESTIMATE else "share of end to end"
    return html.Div(
        [
            html.Span(f"{what}: 0%", className="tl-muted"),
            html.Span(
                style={
                    "display": "inline-block",
                    "width": "160px",
                    "height": "12px",
                    "margin": "0 6px",
                    "background": f"linear-gradient(to right, {gradient})",
                    "border": "1px solid #ced4da",
                    "verticalAlign": "middle",
                }
            ),
            html.Span(f"{top * 100:.1f}% (the largest drawn)", className="tl-muted"),
            html.Span(
                style={
                    "display": "inline-block",
                    "width": "14px",
                    "height": "12px",
                    "margin": "0 6px 0 18px",
                    "background": mg.NO_DATA_COLOR,
                    "border": "1px dashed #868e96",
                    "verticalAlign": "middle",
                }
            ),
            html.Span("no data", className="tl-muted"),
        ],
        id="model-legend-body",
    )


def selection(
    job: str, graph: Any, shares: mg.Shares, stats: dict[str, mg.TaskStats], picked: str | None
) -> Any:
    """Facts of the picked node and the links that open its task."""
    if not picked:
        return html.Span(
            "Click a node or a row to see its kernel and open its task.", className="tl-muted"
        )
    try:
        node = graph.node(picked)
    except KeyError:
        return html.Span(f"Node {picked} is not in this graph.", className="tl-muted")
    stat = stats.get(node.task) if node.task else None
    facts = [
        ("kernel", node.kernel),
        ("operators", ", ".join(node.fused) or node.op),
        ("source layers", mg.layers_text(node.layers, node.ambiguous, limit=12)),
        ("time per run", f"{shares.node_ms[node.id]:.4g} ms" if node.id in shares.node_ms
         else "no data"),
        ("share", f"{shares.share(node.id):.1%}" if shares.share(node.id) is not None
         else "no data"),
        ("task", node.task or "none (no tuning task covers this kernel)"),
        ("trials", stat.trials if stat else 0),
        ("best", latency_text(stat.best_secs) if stat else "—"),
    ]  # fmt: skip
    body: list[Any] = [
        html.Dl(
            [item for key, value in facts for item in (html.Dt(key), html.Dd(str(value)))],
            className="tl-facts",
        )
    ]
    if node.task:
        body.append(
            html.Div(
                [
                    f"The job and task filters now select {node.task} of {job}: ",
                    dcc.Link(
                        "open on the Convergence page",
                        href="/convergence",
                        id="model-open-convergence",
                    ),
                    " · ",
                    dcc.Link("open in the Inspector", href="/inspector", id="model-open-inspector"),
                    " · ",
                    dcc.Link(
                        "its schedules' decisions",
                        href=f"/searchspace?{urlencode({'job': job, 'task': node.task})}",
                        id="model-open-searchspace",
                    ),
                ]
            )
        )
    return html.Div(body, id="model-picked-facts")


# --- layout and callbacks ---------------------------------------------------------------------


def layout(ctx: AppContext) -> html.Div:
    snap = ctx.view.snapshot()
    events = model_events(ctx)
    with_graph = events.jobs_with_graph()
    job = default_job(snap, with_graph, [])
    inputs = events.inputs(job) if job else None
    variant = mg.default_variant(inputs.profiles if inputs else (), job_stats(snap, job))
    return html.Div(
        [
            page_head(
                "Model",
                "The model's graph after fusion, one node per fused kernel call, coloured by "
                "its share of one run's latency; the slowest kernels ranked beside it.",
            ),
            html.Div(
                [
                    field(
                        "Job",
                        dcc.Dropdown(
                            id="model-job",
                            options=job_options(snap, with_graph),
                            value=job,
                            clearable=False,
                        ),
                        "wide",
                    ),
                    field(
                        "Colour by",
                        dcc.RadioItems(
                            id="model-variant",
                            options=[{"label": v, "value": k} for k, v in mg.VARIANTS.items()],
                            value=variant,
                            inline=True,
                            className="tl-radio",
                        ),
                        "wide",
                    ),
                    field(
                        "Find",
                        dcc.Input(
                            id="model-search",
                            type="text",
                            debounce=True,
                            placeholder="kernel, layer or task",
                        ),
                        "wide",
                    ),
                    dcc.Checklist(
                        id="model-options",
                        options=[{"label": "collapse repeated blocks", "value": "collapse"}],
                        value=["collapse"],
                        inline=True,
                        className="tl-radio",
                    ),
                    html.Button("Fit", id="model-fit", className="tl-button tl-button-quiet"),
                ],
                className="tl-toolbar",
            ),
            html.Div(id="model-notice", className="tl-notice"),
            html.Div(id="model-memory-link", className="tl-muted"),
            html.Div(
                [
                    card(
                        html.Div(id="model-legend"),
                        cyto.Cytoscape(
                            id="model-graph",
                            elements=[],
                            layout={"name": "preset", "fit": False},
                            stylesheet=STYLESHEET,
                            style={"width": "100%", "height": f"{GRAPH_HEIGHT}px"},
                            minZoom=0.05,
                            maxZoom=3.0,
                            autoRefreshLayout=False,
                            autoungrabify=True,
                            boxSelectionEnabled=False,
                        ),
                        style={"flex": "1 1 520px", "minWidth": 0},
                    ),
                    card(
                        grid.client_grid(
                            "model-bottlenecks",
                            TABLE_COLUMNS,
                            page_size=14,
                            row_id="node",
                            selectable=True,
                        ),
                        title="Bottlenecks (click a row)",
                        style={"flex": "1 1 520px", "minWidth": 0},
                    ),
                ],
                style={
                    "display": "flex",
                    "gap": "12px",
                    "alignItems": "flex-start",
                    "flexWrap": "wrap",
                },
            ),
            card(html.Div(id="model-selection"), title="Selected kernel"),
            dcc.Store(id="model-expanded", data=[]),
            dcc.Store(id="model-picked"),
            dcc.Store(id="model-drawn"),
            dcc.Store(id="model-focus"),
            dcc.Interval(id="model-poll", interval=POLL_MS),
        ]
    )


def memory_link(ctx: AppContext, job: str | None) -> Any:
    """A link to the job's memory plan on the Memory page, or a hint to make one."""
    if not job:
        return ""
    if ctx.store.memory_plans(job):
        return dcc.Link(
            "This model's activation memory over the steps (Memory page)",
            href=f"/memory?{urlencode({'job': job})}",
            id="model-open-memory",
        )
    return "No memory plan for this job: tuneloom memory MODEL --db STORE --job ID makes one."


def register(app: Dash, ctx: AppContext) -> None:
    # The poll too: the job picker's value comes from a callback that may not update it.
    @app.callback(
        Output("model-memory-link", "children"),
        Input("model-job", "value"),
        Input("model-poll", "n_intervals"),
    )
    def show_memory_link(job: str | None, _n: int | None) -> Any:
        return memory_link(ctx, job)

    app.clientside_callback(
        FRESH_COORDS_JS, Output("model-graph", "className"), Input("model-graph", "id")
    )
    app.clientside_callback(
        FOCUS_JS,
        Output("model-focus", "modified_timestamp"),
        Input("model-focus", "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("model-job", "options"),
        Output("model-job", "value"),
        Input("filter-store", "data"),
        Input("model-poll", "n_intervals"),
        State("model-job", "value"),
        State("model-job", "options"),
    )
    def choose_job(filt: dict[str, Any] | None, _n: Any, current: Any, shown: Any):
        snap = ctx.view.snapshot()
        with_graph = model_events(ctx).jobs_with_graph()
        options = job_options(snap, with_graph)
        wanted, _, _ = read_filter(filt)
        job = current
        if (wanted and current not in wanted) or current not in {o["value"] for o in options}:
            job = default_job(snap, with_graph, wanted)
        return (
            options if options != shown else no_update,
            job if job != current else no_update,
        )

    @app.callback(
        Output("model-variant", "value"),
        Output("model-expanded", "data"),
        Output("model-picked", "data", allow_duplicate=True),
        Input("model-job", "value"),
        prevent_initial_call=True,
    )
    def new_job(job: str | None):
        snap = ctx.view.snapshot()
        inputs = model_events(ctx).inputs(job) if job else None
        variant = mg.default_variant(inputs.profiles if inputs else (), job_stats(snap, job))
        return variant, [], None

    @app.callback(
        Output("model-expanded", "data", allow_duplicate=True),
        Output("model-picked", "data"),
        Output("filter-jobs", "value", allow_duplicate=True),
        Output("filter-tasks", "value", allow_duplicate=True),
        Output("selected-record", "data", allow_duplicate=True),
        Input("model-graph", "tapNode"),
        Input("model-bottlenecks", "selectedRows"),
        State("model-expanded", "data"),
        State("model-job", "value"),
        prevent_initial_call=True,
    )
    def pick(tap: Any, rows: Any, expanded: list[str] | None, job: str | None):
        expanded = list(expanded or [])
        skip = (no_update,) * 5
        if callback_ctx.triggered_id == "model-graph":
            data = (tap or {}).get("data") or {}
            kind, block = data.get("kind"), data.get("block")
            if kind == "block" and block:
                return [*expanded, block], *skip[1:]
            if kind == "group" and block:
                return [b for b in expanded if b != block], *skip[1:]
            node_id = data.get("id")
        else:
            node_id = rows[0].get("node") if isinstance(rows, list) and rows else None
        if not node_id or not job:
            return skip
        inputs = model_events(ctx).inputs(job)
        if inputs.graph is None:
            return skip
        try:
            node = inputs.graph.node(node_id)
        except KeyError:
            return skip
        if node.block and node.block not in expanded:
            expanded.append(node.block)
        if not node.task:
            return expanded, node_id, no_update, no_update, no_update
        stat = job_stats(ctx.view.snapshot(), job).get(node.task)
        record = {"pos": stat.best_pos} if stat and stat.best_pos is not None else None
        return expanded, node_id, [job], [node.task], record

    @app.callback(
        Output("model-graph", "elements"),
        Output("model-focus", "data"),
        Output("model-legend", "children"),
        Output("model-notice", "children"),
        Output("model-bottlenecks", "rowData"),
        Output("model-selection", "children"),
        Output("model-drawn", "data"),
        Input("model-job", "value"),
        Input("model-variant", "value"),
        Input("model-search", "value"),
        Input("model-options", "value"),
        Input("model-expanded", "data"),
        Input("model-picked", "data"),
        Input("model-fit", "n_clicks"),
        Input("model-poll", "n_intervals"),
        Input("live-tick", "data"),
        State("model-drawn", "data"),
    )
    def draw(job, variant, query, options, expanded, picked, _fit, _n, _tick, drawn):
        trigger = callback_ctx.triggered_id
        snap = ctx.view.snapshot()
        events = model_events(ctx)
        key = [job, snap.pos, events.refresh()]
        if trigger in ("model-poll", "live-tick") and drawn == key:
            raise PreventUpdate
        inputs = events.inputs(job) if job else None
        stats = job_stats(snap, job)
        view = model_view(
            inputs, stats, variant if variant in mg.VARIANTS else mg.ESTIMATE,
            collapse="collapse" in (options or []), expanded=expanded or [], query=query,
            picked=picked,
        )  # fmt: skip
        where = focus(view.view, trigger, picked, ctx.revision())
        return (
            view.elements, where if where is not None else no_update, view.legend, view.notices,
            view.rows,
            view.selection, key,
        )  # fmt: skip


def focus(
    view: mg.GraphView | None, trigger: Any, picked: str | None, revision: int
) -> dict[str, Any] | None:
    """Where the graph view should look after a redraw (None: leave it as the user left
    it, as a live refresh does). A search or a picked node centres it on the node (or on
    the collapsed block holding it); a new job or layout fits small graphs and shows the
    top of large ones; the Fit button fits any."""
    if view is None or trigger in ("model-poll", "live-tick"):
        return None
    nodes = view.drawn_nodes + sum(1 for e in view.elements if e.get("classes") == "group")
    out: dict[str, Any] = {"nodes": nodes, "zoom": FOCUS_ZOOM, "rev": revision}
    target = None
    if trigger == "model-search" and view.found_ids:
        target = view.representative.get(view.found_ids[0])
    elif trigger in ("model-picked", "model-expanded") and picked:
        target = view.representative.get(picked)
    if target is not None:
        return {**out, "id": target}
    if trigger in ("model-search", "model-picked", "model-expanded", "model-variant"):
        return None
    if trigger == "model-fit" or view.drawn_nodes <= FIT_NODES:
        return {**out, "fit": True}
    return {**out, "top": True}
