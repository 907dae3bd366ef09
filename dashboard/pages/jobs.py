"""Jobs: state, progress and priority of every job, and the controls that steer them.

New jobs tune workload specs or a model: a zoo model by name (those the tuner's catalog
offers), or a model file uploaded into the dashboard's managed folder (the browser never
names a path on the server), on one of the tuner's devices.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from collectors.jobs import ALLOCATORS, JobInfo, JobSpec, JobState
from dashboard import grid
from dashboard.api import PREFIX as API_PREFIX
from dashboard.context import AppContext
from dashboard.data import Snapshot
from dashboard.pages.common import (
    card,
    field,
    page_head,
    register_token_card,
    register_upload_guard,
    token_card,
    upload_zone,
)
from dashboard.submissions import (
    FormError,
    catalog,
    check_allocator,
    check_target_latency,
    check_time_budget,
    check_trials,
    check_zoo,
    parse_priority,
)
from dashboard.uploads import UploadError, format_size

ALLOCATOR_LABELS = {
    "gain": "gain: where latency falls fastest per second",
    "gradient": "gradient: MetaSchedule's rule",
    "uniform": "uniform: the same for every task",
}
NAME = "jobs"
PATH = "/jobs"
TITLE = "Jobs"
ACTIONS = {"jobs-pause": "pause", "jobs-resume": "resume", "jobs-cancel": "cancel",
           "jobs-set-priority": "reprioritize"}  # fmt: skip
DONE = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled", "reprioritize": "Set"}
# How a submitted job starts: a cold search, or from the dashboard's schedule library.
START_CHOICES = {
    "cold": "a cold search",
    "warm": "the schedule library, then search (warm start)",
    "reuse": "library schedules only (no search)",
}

COLUMNS = [
    grid.column("job", "job"),
    grid.column("label", "name", minWidth=grid.WIDE, tooltipField="label"),
    grid.column("state", "state", maxWidth=130),
    grid.column("progress", "progress", minWidth=grid.WIDE),
    grid.column("priority", "priority", numeric=True, maxWidth=120),
    grid.column("target", "target"),
    grid.column("model", "model", tooltipField="model"),
    grid.column("policy", "policy"),
    grid.column("detail", "detail", tooltipField="detail"),
    grid.column(
        "files",
        "files",
        cellRenderer="markdown",
        sortable=False,
        filter=False,
        maxWidth=120,
    ),
]
# Row classes by state (styled in assets/tuneloom.css).
STATE_CLASSES = {
    "tl-row-paused": "params.data.state === 'paused'",
    "tl-row-failed": "params.data.state === 'failed'",
    "tl-row-running": "params.data.state === 'running'",
}


def jobs_rows(
    snap: Snapshot, infos: list[JobInfo] | None, artifacts: Collection[str] = ()
) -> list[dict[str, Any]]:
    """One row per job with its state, progress (trials done of the budget) and priority;
    the jobs in ``artifacts`` get a link to download their files."""
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
                "files": f"[download]({artifact_url(job.job)})" if job.job in artifacts else "",
            }
        )
    return rows


def artifact_url(job: str) -> str:
    """Where the API sends a job's files (``.tar.gz``)."""
    return f"{API_PREFIX}/jobs/{quote(job, safe='')}/artifact"


def with_artifacts(ctx: AppContext, infos: list[JobInfo] | None) -> set[str]:
    """The finished jobs whose files the tuner can hand out."""
    get = getattr(ctx.control, "artifact", None)
    found = set()
    for info in infos or []:
        if get is None or info.state != JobState.FINISHED:
            continue
        try:
            get(info.id)
        except Exception:  # not a job with files (NoArtifactError) or the tuner failed
            continue
        found.add(info.id)
    return found


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def parse_submission(
    workloads: str | None,
    model: str | None,
    trials: Any,
    priority: Any,
    target: str | None,
    name: str | None,
    start: str | None = None,
    library: str | None = None,
    device: str | None = None,
    allocator: str | None = None,
    time_budget: Any = None,
    target_latency: Any = None,
) -> JobSpec:
    """A JobSpec from the submit form, or FormError naming the field that is wrong.

    ``workloads`` holds one spec per line (a line of comma-joined specs is one task each, as
    ``tuneloom tune --workload`` reads it); ``model`` is a zoo name or the path of an uploaded
    model, as ``resolve_model`` gives it. ``start`` is one of ``START_CHOICES`` (default
    ``cold``); starting from the schedule library needs the dashboard's ``library``.
    ``device`` is one of the tuner's devices (None: its default). ``allocator`` spreads the
    trials over the job's tasks; ``time_budget`` (``90s``, ``10m``...) and ``target_latency``
    (ms, a model job) stop it early.
    """
    specs = tuple(s.strip() for s in re.split(r"[\n;]+", workloads or "") if s.strip())
    model = (model or "").strip() or None
    if not specs and model is None:
        raise FormError(
            "Give at least one workload spec (e.g. matmul:64x64x64), choose a zoo model or "
            "upload a model file."
        )
    if any(len(s) > 200 for s in specs):
        raise FormError("A workload spec is longer than 200 characters.")
    # Empty: the tuner's default budget (32 per task).
    trials = check_trials(None if trials == "" else trials)
    target = (target or "").strip() or "llvm"
    if len(target) > 200 or any(ch.isspace() for ch in target):
        raise FormError("The target must be one word such as llvm (no spaces).")
    name = (name or "").strip() or None
    if name is not None and len(name) > 100:
        raise FormError("The name must be at most 100 characters.")
    start = start or "cold"
    if start not in START_CHOICES:
        raise FormError(f"Unknown start {start!r} (choices: {', '.join(START_CHOICES)}).")
    if start != "cold" and library is None:
        raise FormError("This dashboard has no schedule library to start a job from.")
    latency = check_target_latency(target_latency)
    if latency is not None and model is None:
        raise FormError("A target latency needs a model (workloads have no model to time).")
    return JobSpec(
        workloads=specs, model=model, trials=trials,
        allocator=check_allocator(allocator), time_budget=check_time_budget(time_budget),
        target_latency=latency, priority=parse_priority(priority),
        target=target, device=device or None, name=name,
        warm_start=library if start != "cold" else None, reuse_only=start == "reuse",
    )  # fmt: skip


def resolve_model(ctx: AppContext, zoo: Any, upload_id: Any) -> tuple[str | None, str | None]:
    """The model of a submission and the name its user knows it by: a zoo name, or the
    stored path of an uploaded model with the uploaded file's name.

    The browser sends only a zoo name from the list or the id of an upload; anything else
    raises FormError.
    """
    zoo = zoo or None
    if zoo is not None:
        check_zoo(ctx, zoo)
    if upload_id:
        if zoo is not None:
            raise FormError("Choose a zoo model or upload a model file, not both.")
        try:
            upload = ctx.uploads.find("models", upload_id)
        except UploadError as exc:
            raise FormError(str(exc)) from None
        return str(upload.files[0].path), upload.files[0].name
    return zoo, None


def upload_model(
    ctx: AppContext, contents: Any, filename: Any, token: str | None
) -> tuple[str | None, str]:
    """Store an uploaded model file in the managed folder; (upload id or None, message)."""
    if ctx.control is None:
        return None, "No tuner is attached to this dashboard: it cannot run new jobs."
    if not ctx.access.allows(token):
        return None, ctx.access.refusal(token)
    try:
        upload = ctx.uploads.save("models", contents, filename)
    except UploadError as exc:
        return None, str(exc)
    item = upload.files[0]
    return upload.id, f"Uploaded {item.name} ({format_size(item.size)})."


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


def submit_job(
    ctx: AppContext,
    token: str | None,
    *,
    zoo: Any = None,
    model_upload: Any = None,
    **form: Any,
) -> tuple[bool, str]:
    """Validate the form and submit it through ``Control``; (done, message).

    ``zoo`` is a zoo model name, ``model_upload`` the id of an uploaded model file.
    """
    if ctx.control is None:
        return False, "No tuner is attached to this dashboard: it cannot run new jobs."
    if not ctx.access.allows(token):
        return False, ctx.access.refusal(token)
    try:
        model, known_as = resolve_model(ctx, zoo, model_upload)
        if known_as and not (form.get("name") or "").strip():
            form["name"] = known_as  # name the job after the file, not the stored path
        spec = parse_submission(model=model, library=ctx.library, **form)
        job = ctx.control.submit(spec)
    except Exception as exc:  # FormError or the tuner's own message (bad workload, model)
        message = str(exc) or type(exc).__name__
        if model_upload:
            message = _uploaded_names(ctx, model_upload, message)
        return False, message
    return True, f"Submitted {job}."


def _uploaded_names(ctx: AppContext, upload_id: Any, message: str) -> str:
    """``message`` with the stored path of an uploaded model replaced by its file name."""
    try:
        return ctx.uploads.find("models", upload_id).describe(message)
    except UploadError:
        return message


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
        token_box = [token_card("", "Job controls need the access token of this dashboard")]
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
            card(*_submit_form(ctx, readonly), title="Submit a job"),
            dcc.Store(id="jobs-changed"),
        ]
    )


def _jobs_table() -> Any:
    return grid.client_grid(
        "jobs-table", COLUMNS, page_size=25, row_id="id", selectable=True, checkboxes=True,
        rowClassRules=STATE_CLASSES,
    )  # fmt: skip


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


def _submit_form(ctx: AppContext, disabled: bool) -> list[Any]:
    no_library = ctx.library is None
    offered = catalog(ctx)
    fields = [
        field(
            "Workloads (one spec per line)",
            dcc.Textarea(id="submit-workloads", placeholder="matmul:64x64x64", rows=3),
            "form",
            "span",
        ),
        field(
            "Zoo model",
            dcc.Dropdown(
                id="submit-zoo",
                options=[{"label": m, "value": m} for m in offered.models],
                placeholder="optional",
                disabled=disabled,
            ),
            "form",
        ),
        field(
            "Trials (the whole job; empty: 32 per task)",
            dcc.Input(id="submit-trials", type="number", min=1, step=1, placeholder="32 per task"),
            "form",
        ),
        field(
            "Spread trials by",
            dcc.Dropdown(
                id="submit-allocator",
                options=[{"label": ALLOCATOR_LABELS[a], "value": a} for a in ALLOCATORS],
                value="gain",
                clearable=False,
                disabled=disabled,
            ),
            "form",
        ),
        field(
            "Time budget (e.g. 10m; empty: none)",
            dcc.Input(id="submit-time-budget", type="text", placeholder="none"),
            "form",
        ),
        field(
            "Target latency, ms (a model job; empty: none)",
            dcc.Input(id="submit-target-latency", type="number", min=0, placeholder="none"),
            "form",
        ),
        field("Priority", dcc.Input(id="submit-priority", type="number", value=0, step=1), "form"),
        field("Target", dcc.Input(id="submit-target", type="text", value="llvm"), "form"),
        field(
            "Device",
            dcc.Dropdown(
                id="submit-device",
                options=[{"label": d, "value": d} for d in offered.devices],
                value=offered.devices[0] if offered.devices else None,
                clearable=False,
                disabled=disabled,
            ),
            "form",
        ),
        field("Name", dcc.Input(id="submit-name", type="text", placeholder="optional"), "form"),
        field(
            "Start from",
            dcc.RadioItems(
                id="submit-start",
                options=[
                    {"label": label, "value": value, "disabled": value != "cold" and no_library}
                    for value, label in START_CHOICES.items()
                ],
                value="cold",
            ),
            "form",
            "span",
        ),
    ]
    model = []
    if not disabled:
        model = [
            html.Div(
                [
                    html.Label("Or a model file", className="tl-label"),
                    upload_zone(
                        "submit-model-upload",
                        "submit-model-status",
                        ctx.uploads,
                        "models",
                        "Drop a model here or click to choose one",
                        multiple=False,
                    ),
                    html.Div(
                        [
                            html.Span(id="submit-model-status", className="tl-message"),
                            html.Button(
                                "Remove",
                                id="submit-model-clear",
                                hidden=True,
                                className="tl-button tl-button-quiet",
                            ),
                        ],
                        className="tl-toolbar",
                    ),
                ],
                className="tl-field",
                style={"marginTop": "10px"},
            )
        ]
    actions = html.Div(
        [
            _button("Submit job", "submit-job", disabled, "tl-button-primary"),
            html.Span(id="submit-message", className="tl-message"),
        ],
        className="tl-toolbar",
    )
    return [html.Div(fields, className="tl-form"), *model, dcc.Store(id="submit-model-id"), actions]


def register(app: Dash, ctx: AppContext) -> None:
    @app.callback(
        Output("jobs-table", "rowData"),
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
        return jobs_rows(ctx.view.snapshot(), infos, with_artifacts(ctx, infos))

    @app.callback(
        Output("jobs-message", "children"),
        Output("jobs-message", "className"),
        Output("jobs-changed", "data"),
        Input("jobs-pause", "n_clicks"),
        Input("jobs-resume", "n_clicks"),
        Input("jobs-cancel", "n_clicks"),
        Input("jobs-set-priority", "n_clicks"),
        State("jobs-table", "selectedRows"),
        State("jobs-priority", "value"),
        State("token-store", "data"),
        prevent_initial_call=True,
    )
    def act(_p: Any, _r: Any, _c: Any, _s: Any, selected: Any, priority, token):
        action = ACTIONS.get(str(callback_ctx.triggered_id))
        if action is None:
            return no_update, no_update, no_update
        job = selected_job(selected)
        done, message = control_action(ctx, action, job, priority, token)
        return message, _message_class(done), ctx.revision()

    @app.callback(
        Output("submit-message", "children"),
        Output("submit-message", "className"),
        Output("jobs-changed", "data", allow_duplicate=True),
        Input("submit-job", "n_clicks"),
        State("submit-workloads", "value"),
        State("submit-zoo", "value"),
        State("submit-model-id", "data"),
        State("submit-trials", "value"),
        State("submit-priority", "value"),
        State("submit-target", "value"),
        State("submit-device", "value"),
        State("submit-name", "value"),
        State("submit-start", "value"),
        State("submit-allocator", "value"),
        State("submit-time-budget", "value"),
        State("submit-target-latency", "value"),
        State("token-store", "data"),
        prevent_initial_call=True,
    )
    def submit(
        _n: Any, workloads, zoo, upload_id, trials, priority, target, device, name, start,
        allocator, time_budget, target_latency, token,
    ):  # fmt: skip
        done, message = submit_job(
            ctx, token, zoo=zoo, model_upload=upload_id, workloads=workloads, trials=trials,
            priority=priority, target=target, device=device, name=name, start=start,
            allocator=allocator, time_budget=time_budget, target_latency=target_latency,
        )  # fmt: skip
        return message, _message_class(done), ctx.revision() if done else no_update

    if ctx.control is None:
        return

    @app.callback(
        Output("submit-model-id", "data"),
        Output("submit-model-status", "children"),
        Output("submit-model-status", "className"),
        Output("submit-model-clear", "hidden"),
        Output("submit-model-upload", "contents"),
        Input("submit-model-upload", "contents"),
        Input("submit-model-clear", "n_clicks"),
        State("submit-model-upload", "filename"),
        State("token-store", "data"),
        prevent_initial_call=True,
    )
    def model_file(contents: Any, _clear: Any, filename: Any, token: str | None):
        if callback_ctx.triggered_id == "submit-model-clear":
            return None, "", "tl-message", True, None
        if not contents:
            return (no_update,) * 5
        upload_id, message = upload_model(ctx, contents, filename, token)
        if upload_id is None:
            return None, message, _message_class(False), True, None
        return upload_id, message, "tl-message tl-ok", False, None

    register_upload_guard(app, "submit-model-upload")
    if ctx.access.needs_token:
        register_token_card(app, ctx.access, "")


def selected_job(rows: Any) -> str | None:
    """The id of the job selected in the table (its ``selectedRows``), if any."""
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        job = rows[0].get("id")
        return str(job) if job else None
    return None


def _message_class(done: bool) -> str:
    return "tl-message tl-ok" if done else "tl-message tl-error"
