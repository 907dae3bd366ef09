"""Inspector: a record's schedule trace, scheduled TIR, LLVM IR and assembly, and a diff."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, dcc, html

from collectors import reuse
from collectors.events import RecordEvent
from dashboard.codeviews import VIEWS, CodeView
from dashboard.context import AppContext, read_filter
from dashboard.data import Snapshot
from dashboard.figures.style import latency_text
from dashboard.pages.common import card, field, page_head
from dashboard.textdiff import DiffRow, side_by_side, split_spans

NAME = "inspector"
PATH = "/inspector"
TITLE = "Inspector"
FULL_DIFF_LINES = 400  # longer texts show only changed lines with 3 lines of context

COMPARE_OPTIONS = [
    {"label": "first valid record of the task", "value": "first"},
    {"label": "best record of the task", "value": "best"},
    {"label": "the record numbered below", "value": "other"},
]


def default_record(snap: Snapshot, jobs: list[str], tasks: list[str]) -> int | None:
    """The best valid record of the selection (the one a user most likely wants to read)."""
    records = snap.records
    if jobs:
        records = records[records["job"].isin(jobs)]
    if tasks:
        records = records[records["task"].isin(tasks)]
    valid = records[records["mean_secs"].notna()]
    if valid.empty:
        return int(records["pos"].iloc[-1]) if len(records) else None
    return int(valid.loc[valid["mean_secs"].idxmin(), "pos"])


def partner(snap: Snapshot, record: RecordEvent, pos: int, how: str) -> int | None:
    """The record to compare with: the task's first valid or best record (not ``pos``)."""
    records = snap.records
    same = records[(records["job"] == record.job) & (records["task"] == record.task)]
    valid = same[same["mean_secs"].notna() & (same["pos"] != pos)]
    if valid.empty:
        return None
    if how == "best":
        return int(valid.loc[valid["mean_secs"].idxmin(), "pos"])
    return int(valid["pos"].min())


def summary(snap: Snapshot, pos: int, record: RecordEvent) -> html.Div:
    """The record's facts: job, task, candidate, latency, GFLOP/s, errors, origin."""
    flops = None
    if len(snap.tasks):
        match = snap.tasks[(snap.tasks["job"] == record.job) & (snap.tasks["task"] == record.task)]
        if len(match) and pd.notna(match["flops"].iloc[-1]):
            flops = float(match["flops"].iloc[-1])
    mean = record.mean_secs
    facts: list[tuple[str, Any]] = [
        ("record", pos),
        ("job", snap.labels.get(record.job, record.job)),
        ("task", record.task),
        ("iteration", record.iteration),
        ("candidate", record.candidate),
        ("latency", latency_text(mean)),
        ("GFLOP/s", f"{flops / mean / 1e9:.2f}" if flops and mean else "—"),
        ("predicted score", f"{record.predicted:.4g}" if record.predicted is not None else "—"),
        ("error", f"{record.error_class}: {record.error or ''}" if record.error_class else "—"),
        ("origin", record.origin or "—"),
        ("schedule", schedule_origin(snap, record)),
        ("workload", record.workload_hash or "—"),
    ]
    return html.Dl(
        [item for key, value in facts for item in (html.Dt(key), html.Dd(str(value)))],
        className="tl-facts",
    )


def schedule_origin(snap: Snapshot, record: RecordEvent) -> str:
    """Where the record's schedule came from: a library entry, the untuned fallback, or the
    job's own search (``tuned here``)."""
    return reuse.origin_text(snap.reused.get((record.job, record.task), {}), record.candidate)


def code_block(view: CodeView) -> html.Div:
    """A generated text, or the reason it could not be generated."""
    parts: list[Any] = []
    if view.message:
        parts.append(html.Div(view.message, className="tl-notice tl-warn"))
    if view.text is not None:
        parts.append(html.Pre(view.text, className="tl-code"))
    return html.Div(parts)


def diff_table(rows: list[DiffRow], left_title: str, right_title: str) -> html.Table:
    """Side-by-side diff with changed lines and characters highlighted."""
    head = html.Tr([html.Th(left_title, colSpan=2), html.Th(right_title, colSpan=2)])
    body = [head]
    for row in rows:
        body.append(
            html.Tr(
                [
                    html.Td(row.left_no or "", className="tl-diff-no"),
                    html.Td(_marked(row.left, row.left_spans), className=_cls(row.tag, "left")),
                    html.Td(row.right_no or "", className="tl-diff-no"),
                    html.Td(_marked(row.right, row.right_spans), className=_cls(row.tag, "right")),
                ]
            )
        )
    widths = html.Colgroup(
        [
            html.Col(className="tl-diff-nocol"),
            html.Col(),
            html.Col(className="tl-diff-nocol"),
            html.Col(),
        ]
    )
    return html.Table([widths, html.Tbody(body)], className="tl-diff")


def _cls(tag: str, side: str) -> str:
    if tag == "equal":
        return "tl-diff-text"
    if tag == "replace":
        return f"tl-diff-text tl-diff-{'del' if side == 'left' else 'add'}"
    if tag == "delete":
        return "tl-diff-text tl-diff-del" if side == "left" else "tl-diff-text tl-diff-none"
    return "tl-diff-text tl-diff-add" if side == "right" else "tl-diff-text tl-diff-none"


def _marked(text: str, spans: tuple[tuple[int, int], ...]) -> list[Any]:
    if not spans:
        return [text]
    return [html.Mark(piece) if changed else piece for piece, changed in split_spans(text, spans)]


def diff_view(ctx: AppContext, pos: int, other: int | None, view: str) -> html.Div:
    """The diff of one view between two records."""
    if other is None:
        return html.Div(
            "No other valid record of this task to compare with.", className="tl-notice tl-warn"
        )
    left, right = ctx.codes.get(other, view), ctx.codes.get(pos, view)
    problems = [v.message for v in (left, right) if v.text is None and v.message]
    if left.text is None or right.text is None:
        return html.Div(problems[0] if problems else "Nothing to compare.", className="tl-notice")
    lines = max(left.text.count("\n"), right.text.count("\n"))
    context = 3 if lines > FULL_DIFF_LINES else None
    rows = side_by_side(left.text, right.text, context=context)
    changed = sum(r.tag != "equal" for r in rows)
    note = f"{changed} changed line(s) in {VIEWS[view].lower()}."
    if context is not None:
        note += " Long texts show only the changed lines with 3 lines around them."
    if not changed:
        note = f"The two records have the same {VIEWS[view].lower()}."
    return html.Div(
        [
            html.Div(note, className="tl-muted"),
            diff_table(rows, f"record {other}", f"record {pos}"),
        ]
    )


def layout(ctx: AppContext) -> html.Div:
    backend_note = (
        "Code is generated on demand from the record's schedule trace and cached."
        if ctx.codes.backend is not None
        else "No code generator is attached: only schedule traces can be shown."
    )
    return html.Div(
        [
            page_head(
                "Inspector",
                "Read a candidate's schedule and the code it compiles to, and compare two "
                f"candidates side by side. {backend_note}",
            ),
            html.Div(
                [
                    field(
                        "Record",
                        dcc.Input(id="inspector-pos", type="number", min=1, step=1, debounce=True),
                        "narrow",
                    ),
                    field(
                        "Compare with",
                        dcc.Dropdown(
                            id="inspector-compare",
                            options=COMPARE_OPTIONS,
                            value="first",
                            clearable=False,
                        ),
                        "wide",
                    ),
                    field(
                        "Other record",
                        dcc.Input(
                            id="inspector-other", type="number", min=1, step=1, debounce=True
                        ),
                        "narrow",
                    ),
                    field(
                        "Diff of",
                        dcc.Dropdown(
                            id="inspector-diff-view",
                            options=[{"label": v, "value": k} for k, v in VIEWS.items()],
                            value="tir" if ctx.codes.backend is not None else "trace",
                            clearable=False,
                        ),
                        "wide",
                    ),
                ],
                className="tl-toolbar",
            ),
            html.Div(id="inspector-summary"),
            dcc.Tabs(
                id="inspector-tab",
                value="trace",
                children=[
                    *[dcc.Tab(label=label, value=key) for key, label in VIEWS.items()],
                    dcc.Tab(label="Diff", value="diff"),
                ],
                className="tl-tabs",
            ),
            card(dcc.Loading(html.Div(id="inspector-content"), type="dot")),
        ]
    )


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("inspector-pos", "value"),
        Input("selected-record", "data"),
        Input("filter-store", "data"),
    )
    def choose(selected: dict[str, Any] | None, filt: dict[str, Any] | None):
        pos = (selected or {}).get("pos")
        if pos is not None:
            return int(pos)
        jobs, tasks, _ = read_filter(filt)
        return default_record(ctx.view.snapshot(), jobs, tasks)

    @app.callback(
        Output("inspector-summary", "children"),
        Output("inspector-content", "children"),
        Input("inspector-pos", "value"),
        Input("inspector-tab", "value"),
        Input("inspector-compare", "value"),
        Input("inspector-other", "value"),
        Input("inspector-diff-view", "value"),
    )
    def show(pos: Any, tab: str, compare: str, other: Any, diff_of: str):
        return inspector_content(ctx, pos, tab, compare, other, diff_of)


def inspector_content(
    ctx: AppContext, pos: Any, tab: str, compare: str, other: Any, diff_of: str
) -> tuple[Any, Any]:
    """(summary, tab content) for a record position typed or selected by the user."""
    if pos is None:
        message = "No record selected: pick one on the Convergence or Records page."
        return html.Div(message, className="tl-notice"), None
    if not isinstance(pos, (int, float)) or isinstance(pos, bool) or pos < 1 or pos != int(pos):
        return html.Div("The record must be a whole number >= 1.", className="tl-error"), None
    pos = int(pos)
    record = ctx.codes.record(pos)
    if record is None:
        text = f"Position {pos} holds no measured candidate in this store."
        return html.Div(text, className="tl-error"), None
    snap = ctx.view.snapshot()
    head = card(summary(snap, pos, record))
    if tab in VIEWS:
        return head, code_block(ctx.codes.get(pos, tab))
    if compare == "other":
        if other is None or not isinstance(other, (int, float)) or other < 1:
            return head, html.Div("Type the other record's number.", className="tl-notice")
        target = int(other)
        if ctx.codes.record(target) is None:
            return head, html.Div(f"No record at position {target}.", className="tl-error")
    else:
        target = partner(snap, record, pos, compare)
    return head, diff_view(ctx, pos, target, diff_of if diff_of in VIEWS else "trace")
