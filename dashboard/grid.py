"""AG Grid tables of the dashboard: column definitions, the shared look, and the server side
of the infinite row model (one block of filtered, sorted rows per request).

Tables too large for the browser (``server_grid``) ask the server for each block of rows
(``getRowsRequest`` -> ``getRowsResponse``, answered with ``block``); small tables
(``client_grid``) get all their rows and sort, filter and page in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dash_ag_grid as dag
import pandas as pd

from dashboard import filterquery

# Most rows one request may take: a client asking for more gets this many.
MAX_BLOCK = 500
PAGE_SIZES = [25, 50, 100]
# Rows fetched per request of a server grid: whole pages of every page size offered.
BLOCK_SIZE = 100
ROW_HEIGHT = 34
TEXT_MIN_WIDTH = 140
WIDE = 190  # the minimum width of columns holding names (jobs, tasks)
HEADER_HEIGHT = 36
# Header, the floating filter row and the paging panel, in pixels.
GRID_CHROME = 2 * HEADER_HEIGHT + 56


def column(field: str, header: str, *, numeric: bool = False, **extra: Any) -> dict[str, Any]:
    """A column of ``field`` titled ``header``, with a number or a text filter."""
    spec: dict[str, Any] = {
        "field": field,
        "headerName": header,
        "filter": "agNumberColumnFilter" if numeric else "agTextColumnFilter",
    }
    if numeric:
        spec["type"] = "numericColumn"
    else:
        spec["minWidth"] = TEXT_MIN_WIDTH
    return spec | extra


def _base(
    id_: str | None, columns: Sequence[Mapping[str, Any]], options: dict[str, Any], **props: Any
) -> dag.AgGrid:
    if id_ is not None:
        props["id"] = id_
    return dag.AgGrid(
        columnDefs=[dict(c) for c in columns],
        defaultColDef={
            "sortable": True,
            "resizable": True,
            "floatingFilter": True,
            "minWidth": 100,
            "flex": 1,
            "filterParams": {"buttons": ["reset"], "maxNumConditions": 2},
            "cellStyle": {"textOverflow": "ellipsis"},
        },
        dashGridOptions={
            "rowHeight": ROW_HEIGHT,
            "headerHeight": HEADER_HEIGHT,
            "floatingFiltersHeight": HEADER_HEIGHT,
            "tooltipShowDelay": 300,
            "enableCellTextSelection": True,
            "suppressCellFocus": True,
            "suppressColumnVirtualisation": True,
            **options,
        },
        className="tl-grid",
        **props,
    )


def server_grid(
    id_: str,
    columns: Sequence[Mapping[str, Any]],
    *,
    page_size: int = PAGE_SIZES[0],
    row_id: str,
    **props: Any,
) -> dag.AgGrid:
    """A paged grid whose rows the server sends block by block (AG Grid's infinite row
    model): sorting and filtering happen on the server too. Clicking a row selects it
    (``selectedRows``); ``row_id`` is the field naming a row."""
    return _base(
        id_,
        columns,
        {
            "pagination": True,
            "paginationPageSize": page_size,
            "paginationPageSizeSelector": PAGE_SIZES,
            "cacheBlockSize": BLOCK_SIZE,
            "maxBlocksInCache": 10,
            "maxConcurrentDatasourceRequests": 1,
            "rowSelection": _selection(checkboxes=False),
        },
        rowModelType="infinite",
        getRowId=f"params.data.{row_id} + ''",
        style={"height": f"{page_size * ROW_HEIGHT + GRID_CHROME}px"},
        **props,
    )


def client_grid(
    id_: str | None,
    columns: Sequence[Mapping[str, Any]],
    *,
    page_size: int,
    row_id: str | None = None,
    selectable: bool = False,
    checkboxes: bool = False,
    **props: Any,
) -> dag.AgGrid:
    """A small grid holding all its rows (``rowData``), sorted, filtered and paged in the
    browser; with ``selectable`` a click selects a row (``selectedRows``), with ``checkboxes``
    a check box beside each row says which is selected."""
    options: dict[str, Any] = {
        "pagination": True,
        "paginationPageSize": page_size,
        "paginationPageSizeSelector": False,
        "domLayout": "autoHeight",
    }
    if selectable:
        options["rowSelection"] = _selection(checkboxes=checkboxes)
    if row_id is not None:
        props["getRowId"] = row_id if "params" in row_id else f"params.data.{row_id} + ''"
    return _base(id_, columns, options, **props)


def _selection(*, checkboxes: bool) -> dict[str, Any]:
    """One row at a time, chosen by a click anywhere on it (or its check box)."""
    return {"mode": "singleRow", "checkboxes": checkboxes, "enableClickSelection": True}


@dataclass(frozen=True)
class Block:
    """One answer to a grid's request: the rows, how many rows match, and why the filter
    was ignored (empty when it was not)."""

    rows: list[dict[str, Any]]
    matching: int
    message: str = ""

    def response(self) -> dict[str, Any]:
        """The grid's ``getRowsResponse``."""
        return {"rowData": self.rows, "rowCount": self.matching}


def block(
    table: pd.DataFrame, request: Mapping[str, Any] | None, *, limit: int = MAX_BLOCK
) -> Block:
    """The rows a grid's ``getRowsRequest`` asks for, after its filter and sort model.

    A filter the server cannot read is ignored and named in ``message``; a request for more
    than ``limit`` rows gets ``limit``.
    """
    request = request or {}
    message = ""
    try:
        clauses = filterquery.from_grid_model(request.get("filterModel"), list(table.columns))
        table = filterquery.apply(table, clauses)
    except filterquery.FilterError as exc:
        message = f"Table filter ignored: {exc}."
    table = filterquery.sort(table, filterquery.from_sort_model(request.get("sortModel")))
    rows = filterquery.rows_between(table, request.get("startRow"), request.get("endRow"), limit)
    return Block(plain_rows(rows), len(table), message)


def plain_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: missing values become None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def refresh_js(grid_id: str, how: str) -> str:
    """A clientside callback asking the server grid ``grid_id`` (when shown) for its rows
    again: ``refresh`` keeps the page, ``purge`` starts over from the first one."""
    calls = {
        "refresh": "api.refreshInfiniteCache();",
        "purge": "api.paginationGoToFirstPage(); api.purgeInfiniteCache();",
    }[how]
    return (
        "function () { let api = null;"
        f" try {{ api = window.dash_ag_grid.getApi('{grid_id}'); }} catch (e) {{ return; }}"
        f" if (api && !api.isDestroyed()) {{ {calls} }} }}"
    )


def selected_position(rows: Any, field: str) -> int | None:
    """The record position in ``field`` of the first of a grid's ``selectedRows``, if any."""
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], Mapping):
        return None
    value = rows[0].get(field)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return int(value)
    return None
