"""Records: every measured candidate in a paginated, sortable, filterable table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from dash import Dash, Input, Output, State, dash_table, html, no_update

from collectors import reuse
from dashboard import filterquery
from dashboard.context import AppContext, Window, read_filter
from dashboard.data import Snapshot
from dashboard.pages.common import TABLE_STYLE, card, page_head
from dashboard.pages.convergence import selected_records, selection_line

NAME = "records"
PATH = "/records"
TITLE = "Records"
PAGE_SIZE = 25

COLUMNS: list[dict[str, Any]] = [
    {"name": "record", "id": "pos", "type": "numeric"},
    {"name": "job", "id": "job"},
    {"name": "task", "id": "task"},
    {"name": "iteration", "id": "iteration", "type": "numeric"},
    {"name": "candidate", "id": "candidate", "type": "numeric"},
    {"name": "latency (ms)", "id": "latency_ms", "type": "numeric"},
    {"name": "GFLOP/s", "id": "gflops", "type": "numeric"},
    {"name": "error class", "id": "error_class"},
    {"name": "error", "id": "error"},
    {"name": "predicted score", "id": "predicted", "type": "numeric"},
    {"name": "origin", "id": "origin"},
    {"name": "schedule", "id": "schedule"},
]
COLUMN_IDS = [c["id"] for c in COLUMNS]


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


def table_page(
    table: pd.DataFrame,
    *,
    page_current: int | None,
    page_size: int,
    sort_by: list[dict[str, str]] | None,
    filter_query: str | None,
) -> tuple[list[dict[str, Any]], int, int, str]:
    """(rows of the page, page count, matching rows, error message) after filter and sort."""
    message = ""
    try:
        table = filterquery.apply(table, filterquery.parse(filter_query, COLUMN_IDS))
    except filterquery.FilterError as exc:
        message = f"Table filter ignored: {exc}."
    table = filterquery.sort(table, sort_by)
    rows, pages = filterquery.page(table, page_current, page_size)
    clean = rows.astype(object).where(rows.notna(), None)
    return clean.to_dict("records"), pages, len(table), message


def layout(ctx: AppContext) -> html.Div:
    return html.Div(
        [
            page_head(
                "Records",
                "Every measured candidate. Sort by a column header; filter with the row under "
                "the headers, e.g. > 1.5 under latency or contains matmul under task. Click a "
                "row to select it for the inspector.",
            ),
            html.Div(id="records-message", className="tl-notice"),
            card(
                dash_table.DataTable(
                    id="records-table",
                    columns=COLUMNS,
                    page_action="custom",
                    page_current=0,
                    page_size=PAGE_SIZE,
                    sort_action="custom",
                    sort_mode="single",
                    sort_by=[],
                    filter_action="custom",
                    filter_query="",
                    filter_options={"placeholder_text": "filter"},
                    **TABLE_STYLE,
                    style_data_conditional=[
                        {"if": {"column_id": ["error_class", "error"]}, "color": "#b02a37"},
                    ],
                    tooltip_delay=300,
                )
            ),
            html.Div(id="records-selection", className="tl-selection"),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("records-table", "data"),
        Output("records-table", "page_count"),
        Output("records-message", "children"),
        Input("filter-store", "data"),
        Input("records-table", "page_current"),
        Input("records-table", "page_size"),
        Input("records-table", "sort_by"),
        Input("records-table", "filter_query"),
        Input("live-tick", "data"),
    )
    def fill(filt, page_current, page_size, sort_by, filter_query, _tick):
        jobs, tasks, window = read_filter(filt)
        table = records_table(ctx.view.snapshot(), jobs, tasks, window)
        rows, pages, matching, message = table_page(
            table, page_current=page_current, page_size=page_size or PAGE_SIZE,
            sort_by=sort_by, filter_query=filter_query,
        )  # fmt: skip
        summary = f"{matching:,} of {len(table):,} records match."
        return rows, pages, f"{summary} {message}".strip()

    @app.callback(
        Output("selected-record", "data", allow_duplicate=True),
        Input("records-table", "active_cell"),
        State("records-table", "data"),
        prevent_initial_call=True,
    )
    def select(cell: dict[str, Any] | None, rows: list[dict[str, Any]] | None):
        if not cell or not rows or cell.get("row") is None or cell["row"] >= len(rows):
            return no_update
        return {"pos": int(rows[cell["row"]]["pos"])}

    @app.callback(Output("records-selection", "children"), Input("selected-record", "data"))
    def show_selection(selected: dict[str, Any] | None):
        return selection_line(ctx, selected)
