"""Jobs: state, progress and priority of every job, and the controls that steer them."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dash_table, dcc, html, no_update
from dash import ctx as callback_ctx

from dashboard.context import AppContext
from dashboard.data import Snapshot
from dashboard.pages.common import TABLE_STYLE, card, field, page_head
from tuner._base import JobInfo, JobSpec

NAME = "jobs"
PATH = "/jobs"
TITLE = "Jobs"
MAX_TRIALS = 1_000_000
MAX_PRIORITY = 1_000_000
ACTIONS = {"jobs-pause": "pause", "jobs-resume": "resume", "jobs-cancel": "cancel",
           "jobs-set-priority": "reprioritize"}  # fmt: skip
DONE = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled", "reprioritize": "Set"}

COLUMNS = [
    {"name": "job", "id": "job"},
    {"name": "name", "id": "label"},
    {"name": "state", "id": "state"},
    {"name": "progress", "id": "progress"},
    {"name": "priority", "id": "priority", "type": "numeric"},
    {"name": "target", "id": "target"},
    {"name": "model", "id": "model"},
    {"name": "policy", "id": "policy"},
    {"name": "detail", "id": "detail"},
]


class FormError(ValueError):
    """A form field holds something the tuner cannot take; the message says which."""


def jobs_rows(snap: Snapshot, infos: list[JobInfo] | None) -> list[dict[str, Any]]:
    """One row per job with its state, progress (trials done of the budget) and priority."""
    live = {info.id: info for info in infos or []}
    measured = snap.records.groupby("job").size() if len(snap.records) else pd.Series(dtype=int)
    rows = []
    for job in snap.jobs.itertuples():
        info = live.get(job.job)
        total = info.trials_total if info else (int(job.trials) if pd.notna(job.trials) else 0)
        done = info.trials_done if info else int(measured.get(job.job, 0))
        state = str(info.state) if info else str(job.state)
        pct = f" ({min(done / total, 1.0) * 100:.0f}%)" if total else ""
        rows.append(
            {
                "id": job.job,
                "job": job.job,
                "label": snap.labels.get(job.job, job.job),
                "state": state,
                "progress": f"{done:,} / {total:,} trials{pct}",
                "priority": int(info.priority if info else job.priority),
                "target": _text(job.target),
                "model": _text(job.model),
                "policy": _text(job.policy),
                "detail": _text(info.detail if info and info.detail else job.detail),
            }
        )
    return rows


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def parse_priority(value: Any) -> int:
    """A priority from the form: a whole number within +-1,000,000."""
    if value is None or value == "":
        raise FormError("Give a priority (a whole number; higher runs first).")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise FormError(f"The priority must be a whole number, got {value!r}.")
    if abs(value) > MAX_PRIORITY:
        raise FormError(f"The priority must be between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,}.")
    return int(value)


def parse_submission(
    workloads: str | None,
    model: str | None,
    trials: Any,
    priority: Any,
    target: str | None,
    name: str | None,
) -> JobSpec:
    """A JobSpec from the submit form, or FormError naming the field that is wrong."""
    specs = tuple(s.strip() for s in re.split(r"[\n,;]+", workloads or "") if s.strip())
    model = (model or "").strip() or None
    if not specs and model is None:
        raise FormError("Give at least one workload spec (e.g. matmul:64x64x64) or a model file.")
    if any(len(s) > 200 for s in specs):
        raise FormError("A workload spec is longer than 200 characters.")
    if trials is None or trials == "":
        raise FormError("Give the number of trials (measured candidates) for the job.")
    if isinstance(trials, bool) or not isinstance(trials, (int, float)) or trials != int(trials):
        raise FormError(f"Trials must be a whole number, got {trials!r}.")
    if not 1 <= trials <= MAX_TRIALS:
        raise FormError(f"Trials must be between 1 and {MAX_TRIALS:,}, got {int(trials)}.")
    target = (target or "").strip() or "llvm"
    if len(target) > 200 or any(ch.isspace() for ch in target):
        raise FormError("The target must be one word such as llvm (no spaces).")
    name = (name or "").strip() or None
    if name is not None and len(name) > 100:
        raise FormError("The name must be at most 100 characters.")
    return JobSpec(
        workloads=specs, model=model, trials=int(trials), priority=parse_priority(priority),
        target=target, name=name,
    )  # fmt: skip


def control_action(
    ctx: AppContext, action: str, job: str | None, priority: Any, token: str | None
) -> tuple[bool, str]:
    """Run one job control through ``Control`` after the access check; (done, message)."""
    if ctx.control is None:
        return False, "No tuner is attached to this dashboard: it only shows a stored history."
    if not ctx.access.allows(token):
        return False, ctx.access.refusal(token)
    if not job:
        return False, "Select a job in the table first."
    try:
        if action == "reprioritize":
            value = parse_priority(priority)
            ctx.control.reprioritize(job, value)
            return True, f"Set the priority of {job} to {value}."
        if action == "pause":
            ctx.control.pause(job, reason="paused from the dashboard")
        else:
            getattr(ctx.control, action)(job)
    except Exception as exc:  # the tuner says why (unknown job, illegal transition, ...)
        return False, str(exc) or type(exc).__name__
    return True, f"{DONE[action]} {job}."


def submit_job(ctx: AppContext, token: str | None, **form: Any) -> tuple[bool, str]:
    """Validate the form and submit it through ``Control``; (done, message)."""
    if ctx.control is None:
        return False, "No tuner is attached to this dashboard: it cannot run new jobs."
    if not ctx.access.allows(token):
        return False, ctx.access.refusal(token)
    try:
        spec = parse_submission(**form)
        job = ctx.control.submit(spec)
    except Exception as exc:  # FormError or the tuner's own message (bad workload, ...)
        return False, str(exc) or type(exc).__name__
    return True, f"Submitted {job}."


def layout(ctx: AppContext) -> html.Div:
    readonly = ctx.control is None
    banner = []
    if readonly:
        banner.append(
            html.Div(
                "Read-only: no tuner is attached to this dashboard, so it shows the stored "
                "history of the jobs and cannot steer them.",
                className="tl-notice",
            )
        )
    token_box = []
    if ctx.access.needs_token and not readonly:
        token_box = [
            card(
                html.Div(
                    [
                        field(
                            "Access token",
                            dcc.Input(id="token-input", type="password", debounce=False),
                            "wide",
                        ),
                        html.Button("Use token", id="token-apply", className="tl-button"),
                        html.Span(id="token-status", className="tl-muted"),
                    ],
                    className="tl-toolbar",
                ),
                title="Job controls need the access token of this dashboard",
            )
        ]
    return html.Div(
        [
            page_head(
                "Jobs",
                "Every job with its state, progress and priority. Select a job to pause, "
                "resume, cancel or reprioritize it; submit new jobs below.",
            ),
            *banner,
            *token_box,
            card(_jobs_table()),
            card(*_controls(readonly), title="Selected job"),
            card(*_submit_form(readonly), title="Submit a job"),
            dcc.Store(id="jobs-changed"),
        ]
    )


def _jobs_table() -> dash_table.DataTable:
    return dash_table.DataTable(
        id="jobs-table",
        columns=COLUMNS,
        row_selectable="single",
        selected_row_ids=[],
        **TABLE_STYLE,
        style_data_conditional=[
            {"if": {"filter_query": '{state} = "paused"'}, "color": "#996500"},
            {"if": {"filter_query": '{state} = "failed"'}, "color": "#b02a37"},
            {"if": {"filter_query": '{state} = "running"'}, "fontWeight": 600},
        ],
    )


def _button(label: str, id_: str, disabled: bool, kind: str = "") -> html.Button:
    return html.Button(label, id=id_, className=f"tl-button {kind}".strip(), disabled=disabled)


def _controls(disabled: bool) -> list[Any]:
    priority = field(
        "Priority", dcc.Input(id="jobs-priority", type="number", step=1, value=0), "narrow"
    )
    buttons = html.Div(
        [
            _button("Pause", "jobs-pause", disabled),
            _button("Resume", "jobs-resume", disabled),
            _button("Cancel", "jobs-cancel", disabled, "tl-button-danger"),
            priority,
            _button("Set priority", "jobs-set-priority", disabled),
        ],
        className="tl-toolbar",
    )
    return [buttons, html.Div(id="jobs-message", className="tl-message")]


def _submit_form(disabled: bool) -> list[Any]:
    fields = [
        field(
            "Workloads (one spec per line)",
            dcc.Textarea(id="submit-workloads", placeholder="matmul:64x64x64", rows=3),
            "form",
            "span",
        ),
        field(
            "Model file",
            dcc.Input(id="submit-model", type="text", placeholder="optional: .onnx / .tflite"),
            "form",
        ),
        field(
            "Trials",
            dcc.Input(id="submit-trials", type="number", value=32, min=1, step=1),
            "form",
        ),
        field("Priority", dcc.Input(id="submit-priority", type="number", value=0, step=1), "form"),
        field("Target", dcc.Input(id="submit-target", type="text", value="llvm"), "form"),
        field("Name", dcc.Input(id="submit-name", type="text", placeholder="optional"), "form"),
    ]
    actions = html.Div(
        [
            _button("Submit job", "submit-job", disabled, "tl-button-primary"),
            html.Span(id="submit-message", className="tl-message"),
        ],
        className="tl-toolbar",
    )
    return [html.Div(fields, className="tl-form"), actions]


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("jobs-table", "data"),
        Input("live-tick", "data"),
        Input("jobs-changed", "data"),
        Input("url", "pathname"),
    )
    def fill(_tick: Any, _changed: Any, _path: Any):
        infos = None
        if ctx.control is not None:
            try:
                infos = ctx.control.list()
            except Exception:  # the store still tells the story
                infos = None
        return jobs_rows(ctx.view.snapshot(), infos)

    @app.callback(
        Output("jobs-message", "children"),
        Output("jobs-message", "className"),
        Output("jobs-changed", "data"),
        Input("jobs-pause", "n_clicks"),
        Input("jobs-resume", "n_clicks"),
        Input("jobs-cancel", "n_clicks"),
        Input("jobs-set-priority", "n_clicks"),
        State("jobs-table", "selected_row_ids"),
        State("jobs-priority", "value"),
        State("token-store", "data"),
        prevent_initial_call=True,
    )
    def act(_p: Any, _r: Any, _c: Any, _s: Any, selected: list[str] | None, priority, token):
        action = ACTIONS.get(str(callback_ctx.triggered_id))
        if action is None:
            return no_update, no_update, no_update
        job = selected[0] if selected else None
        done, message = control_action(ctx, action, job, priority, token)
        return message, _message_class(done), ctx.revision()

    @app.callback(
        Output("submit-message", "children"),
        Output("submit-message", "className"),
        Output("jobs-changed", "data", allow_duplicate=True),
        Input("submit-job", "n_clicks"),
        State("submit-workloads", "value"),
        State("submit-model", "value"),
        State("submit-trials", "value"),
        State("submit-priority", "value"),
        State("submit-target", "value"),
        State("submit-name", "value"),
        State("token-store", "data"),
        prevent_initial_call=True,
    )
    def submit(_n: Any, workloads, model, trials, priority, target, name, token):
        done, message = submit_job(
            ctx, token, workloads=workloads, model=model, trials=trials, priority=priority,
            target=target, name=name,
        )  # fmt: skip
        return message, _message_class(done), ctx.revision() if done else no_update

    if ctx.access.needs_token and ctx.control is not None:

        @app.callback(
            Output("token-store", "data", allow_duplicate=True),
            Output("token-status", "children"),
            Input("token-apply", "n_clicks"),
            Input("token-input", "n_submit"),
            State("token-input", "value"),
            prevent_initial_call=True,
        )
        def use_token(_n: Any, _s: Any, value: str | None):
            value = (value or "").strip()
            if not value:
                return None, "Enter the token first."
            ok = ctx.access.allows(value)
            return value, "Token accepted." if ok else "This token is not valid."


def _message_class(done: bool) -> str:
    return "tl-message tl-ok" if done else "tl-message tl-error"
