"""Import: add a shipped sample or an uploaded log (MetaSchedule, AutoTVM, Ansor, JSONL).

Importing writes the store, so it is guarded like job controls (a token off loopback) and
offered only when the store is writable. The importers are idempotent by (source, seq):
importing the same file again adds nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from dash import Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from collectors._base import BaseStore, Stored, StoreError
from collectors.events import Event
from collectors.importers import LogFormatError, detect, import_paths
from dashboard import grid
from dashboard.context import AppContext
from dashboard.pages.common import (
    card,
    field,
    page_head,
    register_token_card,
    register_upload_guard,
    token_card,
    upload_zone,
)
from dashboard.uploads import Upload, UploadError

log = logging.getLogger(__name__)

NAME = "import"
PATH = "/import"
TITLE = "Import"
SHOWN_BAD_LINES = 5
WHAT = "Imports"
READ_ONLY = (
    "This store is open read-only, so nothing can be imported into it. To add logs to it, "
    "serve it with tuneloom serve --db FILE --allow-import."
)

WORKLOAD_COLUMNS = [
    grid.column("workload", "workload", tooltipField="workload", minWidth=240),
    grid.column("records", "records", numeric=True),
    grid.column("valid", "valid", numeric=True),
    grid.column("best", "best mean cost", sortable=False),
]

# One import at a time: they share the store and two cores.
_IMPORTING = threading.Lock()


@dataclass
class ImportOutcome:
    """What an import did: ``done``, a message, and one summary dict per imported file."""

    done: bool
    message: str
    files: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class _Publishing:
    """Appends to the store and offers what was stored to the live hub (as the sink does),
    so open pages follow the import."""

    def __init__(self, store: BaseStore, hub: Any) -> None:
        self.store = store
        self.hub = hub

    def append(self, events: Iterable[Event]) -> list[Stored]:
        stored = self.store.append(events)
        self.hub.publish(stored)
        return stored

    def append_counting(self, events: Iterable[Event]) -> int:
        return len(self.append(events))  # the hub takes the stored events themselves

    def appending_in_bulk(self) -> AbstractContextManager[None]:
        return self.store.appending_in_bulk()


def refusal(ctx: AppContext, token: str | None) -> str | None:
    """Why this request may not import (read-only store, access), or None."""
    if not ctx.writable:
        return READ_ONLY
    if not ctx.access.allows(token):
        return ctx.access.refusal(token, WHAT)
    return None


def import_sample(
    ctx: AppContext, name: str | None, token: str | None, *, use_tvm: bool = True
) -> ImportOutcome:
    """Import the shipped sample ``name`` (a key of ``ctx.samples``) into the store."""
    refused = refusal(ctx, token)
    if refused is not None:
        return ImportOutcome(False, refused)
    if not name:
        return ImportOutcome(False, "Choose a sample first.")
    path = ctx.samples.get(name)
    if path is None:
        known = ", ".join(ctx.samples) or "none"
        return ImportOutcome(False, f"No sample named {name!r} (samples: {known}).")
    try:
        files = _run(ctx, [Path(path)], use_tvm=use_tvm)
    except (LogFormatError, OSError, StoreError) as exc:
        return ImportOutcome(False, f"Sample {name}: {exc}")
    for item in files:
        item["name"] = name
    return ImportOutcome(True, _done_message(files), files)


def import_upload(
    ctx: AppContext, contents: Any, filenames: Any, token: str | None, *, use_tvm: bool = True
) -> ImportOutcome:
    """Store an uploaded log (one file, or a MetaSchedule database's two files) in the
    managed folder and import it. A file that cannot be imported is not kept."""
    refused = refusal(ctx, token)
    if refused is not None:
        return ImportOutcome(False, refused)
    try:
        upload = ctx.uploads.save("logs", contents, filenames)
    except UploadError as exc:
        return ImportOutcome(False, str(exc))
    try:
        targets = unique_targets(f.path for f in upload.files)
        files = _run(ctx, list(targets), use_tvm=use_tvm)
    except (LogFormatError, OSError, StoreError) as exc:
        ctx.uploads.discard(upload)
        return ImportOutcome(False, upload.describe(str(exc)))
    for item, read in zip(files, targets.values(), strict=True):
        item["name"] = " + ".join(upload.describe(str(path)) for path in read)
        item["bad_line_details"] = [_described(upload, d) for d in item["bad_line_details"]]
        item["notes"] = [upload.describe(n) for n in item["notes"]]
    return ImportOutcome(True, _done_message(files), files)


def unique_targets(paths: Iterable[Path]) -> dict[Path, tuple[Path, ...]]:
    """Paths to import, each with the files it reads: a MetaSchedule database uploaded as
    its two files is one target."""
    out: dict[Path, tuple[Path, ...]] = {}
    for path in paths:
        found = detect(path)
        if found.files in out.values():
            continue
        out[found.database.record if found.database is not None else found.path] = found.files
    return out


def _run(ctx: AppContext, paths: Sequence[Path], *, use_tvm: bool) -> list[dict[str, Any]]:
    """Import ``paths``; each MetaSchedule database among them is then offered to
    ``ctx.on_database_imported`` (e.g. to join a schedule library), whose note is kept."""
    target = ctx.store if ctx.hub is None else cast(BaseStore, _Publishing(ctx.store, ctx.hub))
    with _IMPORTING:
        summaries = import_paths(paths, target, use_tvm=use_tvm)
    files = [s.to_dict() for s in summaries]
    if ctx.on_database_imported is not None:
        for path, item in zip(paths, files, strict=True):
            database = detect(path).database
            if database is not None and item["valid"]:
                item["notes"].append(ctx.on_database_imported(database.directory))
    return files


def _described(upload: Upload, detail: dict[str, Any]) -> dict[str, Any]:
    out = dict(detail)
    if "file" in out:
        out["file"] = upload.describe(str(out["file"]))
    out["reason"] = upload.describe(str(out.get("reason", "")))
    return out


def _done_message(files: list[dict[str, Any]]) -> str:
    stored = sum(f["stored"] for f in files)
    events = sum(f["events"] for f in files)
    names = ", ".join(f["name"] for f in files)
    if stored == 0 and events > 0:
        return f"Nothing new from {names}: all {events:,} events are already in this store."
    return f"Imported {names}: {stored:,} new events of {events:,}."


# --- the summary ------------------------------------------------------------------------


def format_cost(seconds: float | None) -> str:
    """A mean cost in readable units (``12.3 µs``, ``4.56 ms``, ``1.2 s``)."""
    if seconds is None:
        return "none valid"
    for scale, unit in ((1e-6, "µs"), (1e-3, "ms")):
        if seconds < scale * 1000:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def workload_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per workload: records, valid ones and the best mean cost."""
    return [
        {
            "workload": w["key"],
            "records": w["records"],
            "valid": w["valid"],
            "best": format_cost(w["best_mean_cost_s"]),
        }
        for w in item["workloads"]
    ]


def bad_line_text(item: dict[str, Any]) -> list[str]:
    """The first bad lines, ``line N: reason`` each, and how many more there are."""
    details = item["bad_line_details"][:SHOWN_BAD_LINES]
    lines = []
    for d in details:
        where = f"{d['file']} line {d['line']}" if d.get("file") else f"line {d['line']}"
        lines.append(f"{where}: {d['reason']}")
    more = item["bad_lines"] - len(details)
    if more > 0:
        lines.append(f"... and {more:,} more bad lines.")
    return lines


def file_summary(item: dict[str, Any]) -> html.Div:
    """The summary card of one imported file."""
    facts = [
        ("Format", item["format"]),
        ("Records", f"{item['records']:,} ({item['valid']:,} valid)"),
        ("Bad lines", f"{item['bad_lines']:,}"),
        ("Events", f"{item['stored']:,} new of {item['events']:,}"),
        ("Jobs", ", ".join(item["jobs"]) or "none"),
        ("Workloads", f"{len(item['workloads']):,}"),
    ]
    body: list[Any] = [
        html.Dl([part for k, v in facts for part in (html.Dt(k), html.Dd(v))], className="tl-facts")
    ]
    bad = bad_line_text(item)
    if bad:
        body.append(html.Div("Lines that could not be read:", className="tl-selection"))
        body.append(html.Ul([html.Li(text) for text in bad], className="import-bad-lines"))
    for note in item["notes"]:
        body.append(html.Div(note, className="tl-notice tl-warn"))
    rows = workload_rows(item)
    if rows:
        body.append(grid.client_grid(None, WORKLOAD_COLUMNS, page_size=15, rowData=rows))
    return card(*body, title=f"{item['name']}: {item['format']}", className="import-file")


def summary_view(outcome: ImportOutcome) -> list[Any]:
    """The summary cards of an import, with links to where the data now shows."""
    if not outcome.files:
        return []
    links = html.Div(
        [
            html.Span("See it on the "),
            dcc.Link("Timeline", href="/"),
            html.Span(", "),
            dcc.Link("Convergence", href="/convergence"),
            html.Span(" and "),
            dcc.Link("Records", href="/records"),
            html.Span(" pages."),
        ],
        className="tl-selection",
    )
    return [*[file_summary(item) for item in outcome.files], links]


# --- layout and callbacks ---------------------------------------------------------------


def layout(ctx: AppContext) -> html.Div:
    head = page_head(
        "Import",
        "Add tuning logs to this store: a MetaSchedule database (both of its JSON files), an "
        "AutoTVM or Ansor log, or tuneloom JSON lines. The format is detected from the "
        "content; importing the same log again adds nothing.",
    )
    if not ctx.writable:
        return html.Div([head, html.Div(READ_ONLY, id="import-readonly", className="tl-notice")])
    token = []
    if ctx.access.needs_token:
        token = [token_card("import-", "Imports need the access token of this dashboard")]
    names = list(ctx.samples)
    sample_body: list[Any] = [
        html.Div(
            [
                field(
                    "Sample",
                    dcc.Dropdown(
                        id="import-sample",
                        options=[{"label": n, "value": n} for n in names],
                        value=names[0] if names else None,
                        clearable=False,
                        disabled=not names,
                        placeholder="no samples come with this dashboard",
                    ),
                    "wide",
                ),
                html.Button(
                    "Import sample",
                    id="import-sample-button",
                    className="tl-button",
                    disabled=not names,
                ),
            ],
            className="tl-toolbar",
        )
    ]
    return html.Div(
        [
            head,
            *token,
            card(*sample_body, title="A sample log shipped with tuneloom"),
            card(
                upload_zone(
                    "import-upload",
                    "import-message",
                    ctx.uploads,
                    "logs",
                    "Drop a log here or click to choose one",
                    multiple=True,
                ),
                title="Upload a log",
            ),
            dcc.Checklist(
                id="import-options",
                options=[
                    {"label": "Decode MetaSchedule workloads with TVM (slower)", "value": "tvm"}
                ],
                value=["tvm"],
                className="tl-radio",
            ),
            html.Div(id="import-message", className="tl-message"),
            dcc.Loading(html.Div(id="import-summary"), type="dot"),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    if not ctx.writable:
        return

    @app.callback(
        Output("import-message", "children"),
        Output("import-message", "className"),
        Output("import-summary", "children"),
        Output("import-upload", "contents"),
        Input("import-sample-button", "n_clicks"),
        Input("import-upload", "contents"),
        State("import-upload", "filename"),
        State("import-sample", "value"),
        State("import-options", "value"),
        State("token-store", "data"),
        prevent_initial_call=True,
    )
    def run_import(_n: Any, contents: Any, filenames: Any, sample: Any, options: Any, token):
        use_tvm = "tvm" in (options or [])
        upload = callback_ctx.triggered_id == "import-upload"
        if upload and not contents:
            return no_update, no_update, no_update, no_update
        try:
            if upload:
                outcome = import_upload(ctx, contents, filenames, token, use_tvm=use_tvm)
            else:
                outcome = import_sample(ctx, sample, token, use_tvm=use_tvm)
        except Exception as exc:  # an importer's own failure: say so instead of going blank
            log.exception("import failed")
            outcome = ImportOutcome(False, f"The import failed: {exc or type(exc).__name__}")
        css = "tl-message tl-ok" if outcome.done else "tl-message tl-error"
        return outcome.message, css, summary_view(outcome), None

    register_upload_guard(app, "import-upload")
    if ctx.access.needs_token:
        register_token_card(app, ctx.access, "import-")
