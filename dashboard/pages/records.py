"""Records: every measured candidate in a paged, sortable, filterable table whose rows the
server sends a block at a time (the store may hold a million)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from dash import Dash, Input, Output, State, html, no_update

from collectors import reuse
from dashboard import grid
from dashboard.context import AppContext, Window, read_filter
from dashboard.data import Snapshot
from dashboard.pages.common import card, page_head
from dashboard.pages.convergence import selected_records, selection_line

NAME = "records"
PATH = "/records"
TITLE = "Records"
PAGE_SIZE = 25

ERROR_STYLE = {"color": "#b02a37"}
COLUMNS: list[dict[str, Any]] = [
    grid.column("pos", "record", numeric=True, maxWidth=110),
    grid.column("job", "job", minWidth=grid.WIDE),
    grid.column("task", "task", minWidth=grid.WIDE, tooltipField="task"),
    grid.column("iteration", "iteration", numeric=True, maxWidth=120),
    grid.column("candidate", "candidate", numeric=True, maxWidth=120),
    grid.column("latency_ms", "latency (ms)", numeric=True),
    grid.column("gflops", "GFLOP/s", numeric=True),
    grid.column("error_class", "error class", cellStyle=ERROR_STYLE),
    grid.column("error", "error", cellStyle=ERROR_STYLE, tooltipField="error"),
    grid.column("predicted", "predicted score", numeric=True),
    grid.column("origin", "origin"),
    grid.column("schedule", "schedule", tooltipField="schedule"),
]
COLUMN_IDS = [c["field"] for c in COLUMNS]


def records_table(snap: Snapshot, jobs: list[str], tasks: list[str], window: Window | None):
    """All selected records as table rows (latency in ms, GFLOP/s where flops are known)."""
    _, records = selected_records(snap, jobs, tasks, window)
    if records.empty:
        return pd.DataFrame(columns=COLUMN_IDS)
    secs = records["mean_secs"].to_numpy(dtype=float)
    flops = pd.Series(np.nan, index=records.index)
    if len(snap.tasks):
        known = snap.tasks.set_index(["job", "task"])["flops"]
        keys = pd.MultiIndex.from_arrays([records["job"], records["task"]])
        flops = pd.Series(known.reindex(keys).to_numpy(dtype=float), index=records.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        gflops = flops.to_numpy() / secs / 1e9
    return pd.DataFrame(
        {
            "pos": records["pos"].to_numpy(),
            "job": records["job"].map(lambda j: snap.labels.get(j, j)).to_numpy(),
            "task": records["task"].to_numpy(),
            "iteration": records["iteration"].to_numpy(),
            "candidate": records["candidate"].to_numpy(),
            "latency_ms": np.round(secs * 1000, 6),
            "gflops": np.round(np.where(np.isfinite(gflops), gflops, np.nan), 3),
            "error_class": records["error_class"].to_numpy(),
            "error": records["error"].map(_short).to_numpy(),
            "predicted": records["predicted"].to_numpy(dtype=float).round(5),
            "origin": records["origin"].to_numpy(),
            "schedule": schedules(snap, records),
        }
    )


def schedules(snap: Snapshot, records: pd.DataFrame) -> np.ndarray:
    """Per record, where its schedule came from: ``reused from ...``, ``untuned`` or ``tuned
    here`` (from the snapshot's parsed task details; no parsing per row)."""
    out = np.full(len(records), reuse.TUNED_HERE, dtype=object)
    if snap.reused:
        origins = reuse.record_origins(records, snap.reused)
        found = origins != None  # noqa: E711 - elementwise on an object array
        out[found] = origins[found]
    return out


def _short(text: Any) -> Any:
    if isinstance(text, str) and len(text) > 120:
        return text[:117] + "..."
    return text


def table_page(table: pd.DataFrame, request: dict[str, Any] | None) -> grid.Block:
    """The block of rows the grid's request asks for, after its filter and sort."""
    return grid.block(table, request)


def layout(ctx: AppContext) -> html.Div:
    return html.Div(
        [
            page_head(
                "Records",
                "Every measured candidate. Sort by a column header; filter with the row under "
                "the headers (the menu beside each box picks the comparison, e.g. greater than "
                "under latency or contains under task). Click a row to select it for the "
                "inspector.",
            ),
            html.Div(id="records-message", className="tl-notice"),
            card(grid.server_grid("records-table", COLUMNS, page_size=PAGE_SIZE, row_id="pos")),
            html.Div(id="records-selection", className="tl-selection"),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("records-table", "getRowsResponse"),
        Output("records-message", "children"),
        Input("records-table", "getRowsRequest"),
        State("filter-store", "data"),
        prevent_initial_call=True,
    )
    def fill(request: dict[str, Any] | None, filt: dict[str, Any] | None):
        if not request:
            return no_update, no_update
        jobs, tasks, window = read_filter(filt)
        table = records_table(ctx.view.snapshot(), jobs, tasks, window)
        found = table_page(table, request)
        summary = f"{found.matching:,} of {len(table):,} records match."
        return found.response(), f"{summary} {found.message}".strip()

    # New records or another job filter: ask the server for the rows shown again.
    app.clientside_callback(grid.refresh_js("records-table", "refresh"), Input("live-tick", "data"))
    app.clientside_callback(
        grid.refresh_js("records-table", "purge"), Input("filter-store", "data")
    )

    @app.callback(
        Output("selected-record", "data", allow_duplicate=True),
        Input("records-table", "selectedRows"),
        prevent_initial_call=True,
    )
    def select(rows: list[dict[str, Any]] | None):
        pos = grid.selected_position(rows, "pos")
        return {"pos": pos} if pos is not None else no_update

    @app.callback(Output("records-selection", "children"), Input("selected-record", "data"))
    def show_selection(selected: dict[str, Any] | None):
        return selection_line(ctx, selected)
