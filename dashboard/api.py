"""The JSON HTTP API under ``/api/v1/``: a Flask blueprint on the dashboard's own server.

It acts only through the ``Control`` protocol, like the Jobs page, with the same access rule:
viewing is open; every request that changes something (a POST) needs what ``Access`` allows
(the token comes as ``Authorization: Bearer TOKEN`` or ``X-Tuneloom-Token``) and must not come
from another site's page. Without a control (a read-only dashboard) the jobs are replayed from
the store and changes are refused with 503. Every error is ``{"error": "<one line>"}``.

Endpoints: ``GET health``, ``GET jobs``, ``GET jobs/<id>``, ``POST jobs`` (a JobSpec as JSON,
or multipart with a ``spec`` field and a ``model`` file), ``POST jobs/<id>/pause|resume|cancel``,
``POST jobs/<id>/priority``, ``GET jobs/<id>/artifact`` (a ``.tar.gz`` of the job's
``compiled/`` model and ``database/``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pandas as pd
from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from collectors._base import BaseStore
from collectors.jobs import (
    Control,
    JobArtifact,
    JobInfo,
    JobSpec,
    JobSpecError,
    JobState,
    NoArtifactError,
    UnknownJobError,
)
from dashboard.access import TOKEN_ENV, Access
from dashboard.context import AppContext
from dashboard.submissions import FormError, check_trials, check_zoo, parse_priority
from dashboard.uploads import Upload, UploadError, display_name, too_large

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
TOKEN_HEADER = "X-Tuneloom-Token"
READ_ONLY = "this dashboard runs no tuner (read-only); start `tuneloom server --db PATH`"
LIBRARY = "library"  # warm_start value naming the server's own schedule library
MAX_REASON = 500  # characters of a pause reason
_CHUNK = 1 << 20
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class ApiError(Exception):
    """A request the API refuses: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def version() -> str:
    """The installed tuneloom's version ("unknown" when it is not installed)."""
    try:
        return metadata.version("tuneloom")
    except metadata.PackageNotFoundError:
        return "unknown"


def request_token() -> str | None:
    """The token of this request: ``Authorization: Bearer TOKEN`` or ``X-Tuneloom-Token``."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get(TOKEN_HEADER, "").strip() or None


def refusal(access: Access, token: str | None) -> str:
    """Why ``access`` refuses a request carrying ``token``, in words for a client."""
    if access.token is not None and not token:
        return (
            f"Job controls need the access token: pass --token or set {TOKEN_ENV} "
            "(sent as Authorization: Bearer TOKEN)."
        )
    return access.refusal(token)


def stored_jobs(store: BaseStore, job: str | None = None) -> list[JobInfo]:
    """Jobs replayed from the store (for a dashboard without a tuner): trials done are the
    job's stored records, trials total its ``trials``."""
    frame = store.jobs()
    if job is not None:
        frame = frame[frame["job"] == job]
    if frame.empty:
        return []
    ids = list(frame["job"])
    records = store.records(job=ids)
    done = records.groupby("job").size() if len(records) else pd.Series(dtype=int)
    return [
        JobInfo(
            id=row.job,
            name=_text(row.name) or _text(row.model) or row.job,
            state=JobState(row.state),
            priority=int(row.priority),
            target=_text(row.target),
            tasks=tuple(row.tasks) if isinstance(row.tasks, tuple | list) else (),
            trials_done=int(done.get(row.job, 0)),
            trials_total=int(row.trials) if pd.notna(row.trials) else 0,
            detail=_text(row.detail) or None,
            model=_text(row.model) or None,
        )
        for row in frame.itertuples(index=False)
    ]


def write_archive(artifact: JobArtifact, stream: IO[bytes]) -> None:
    """A gzipped tar of ``compiled/`` (when the job has a compiled model) and ``database/``;
    only folders and regular files go in (links and devices are left out)."""
    compiled = Path(artifact.compiled) if artifact.compiled is not None else None
    with tarfile.open(fileobj=stream, mode="w:gz") as tar:
        if compiled is not None:
            _add_tree(tar, compiled, "compiled")
        # A compiled model kept inside the database folder goes in once, as compiled/.
        _add_tree(tar, Path(artifact.database), "database", skip=compiled)


def blueprint(ctx: AppContext, status: Callable[[], Mapping[str, Any]] | None = None) -> Blueprint:
    """The API of one dashboard app; ``status()`` adds to what ``/health`` says."""
    api = Blueprint("tuneloom_api", __name__, url_prefix=PREFIX)

    def jobs_now() -> list[JobInfo]:
        return ctx.control.list() if ctx.control is not None else stored_jobs(ctx.store)

    def find(job: str) -> JobInfo:
        infos = ctx.control.list() if ctx.control is not None else stored_jobs(ctx.store, job)
        for info in infos:
            if info.id == job:
                return info
        raise ApiError(404, f"no job {job!r}")

    def changes(view: Callable[..., Any]) -> Callable[..., Any]:
        """Guard a view that changes something (same site, a tuner attached, access) and
        hand it the control."""

        @functools.wraps(view)
        def guarded(**kwargs: Any) -> Any:
            if _cross_site():
                raise ApiError(403, "requests from another site's page may not change jobs")
            if ctx.control is None:
                raise ApiError(503, READ_ONLY)
            token = request_token()
            if not ctx.access.allows(token):
                raise ApiError(403, refusal(ctx.access, token))
            return view(ctx.control, **kwargs)

        return guarded

    def act(job: str, action: Callable[[], None]) -> Response:
        try:
            action()
        except UnknownJobError as exc:
            raise ApiError(404, _line(exc)) from None
        except ValueError as exc:  # an illegal transition, said by the tuner
            raise ApiError(409, _line(exc)) from None
        return jsonify(find(job).to_dict())

    @api.get("/health")
    def health() -> Response:
        body: dict[str, Any] = {
            "status": "ok",
            "version": version(),
            "jobs": len(jobs_now()),
            "controls": ctx.control is not None,
        }
        if status is not None:
            body.update(status())
        return jsonify(body)

    @api.get("/jobs")
    def jobs() -> Response:
        return jsonify([info.to_dict() for info in jobs_now()])

    @api.get("/jobs/<job>")
    def one_job(job: str) -> Response:
        return jsonify(find(job).to_dict())

    @api.post("/jobs")
    @changes
    def submit(control: Control) -> tuple[Response, int]:
        if request.mimetype == "multipart/form-data":
            data = _spec_field()
            model_file = request.files.get("model")
        else:
            data = _json_body(required=True)
            model_file = None
        upload = None
        if model_file is not None:
            if data.get("model") is not None:
                raise ApiError(400, "model: give a zoo model or a model file, not both")
            server_spec(ctx, {**data, "model": "upload"}, uploaded=True)  # before storing
            upload = _store_model(ctx, model_file)
            item = upload.files[0]
            data = {**data, "model": str(item.path), "name": data.get("name") or item.name}
        try:
            job = control.submit(server_spec(ctx, data, uploaded=upload is not None))
        except ValueError as exc:  # the tuner refuses it: a bad workload, an unreadable model
            message = _line(exc)
            if upload is not None:
                ctx.uploads.discard(upload)
                message = upload.describe(message)
            raise ApiError(400, message) from None
        except BaseException:
            if upload is not None:
                ctx.uploads.discard(upload)
            raise
        response = jsonify({"id": job})
        response.headers["Location"] = f"{PREFIX}/jobs/{job}"
        return response, 201

    @api.post("/jobs/<job>/pause")
    @changes
    def pause(control: Control, job: str) -> Response:
        reason = _json_body(required=False).get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ApiError(400, f"reason must be a string, got {reason!r}")
        if reason is not None and len(reason) > MAX_REASON:
            raise ApiError(400, f"reason must be at most {MAX_REASON} characters")
        return act(job, lambda: control.pause(job, reason=reason or None))

    @api.post("/jobs/<job>/resume")
    @changes
    def resume(control: Control, job: str) -> Response:
        return act(job, lambda: control.resume(job))

    @api.post("/jobs/<job>/cancel")
    @changes
    def cancel(control: Control, job: str) -> Response:
        return act(job, lambda: control.cancel(job))

    @api.post("/jobs/<job>/priority")
    @changes
    def priority(control: Control, job: str) -> Response:
        body = _json_body(required=True)
        if "priority" not in body:
            raise ApiError(400, 'give the new priority as {"priority": N}')
        try:
            value = parse_priority(body["priority"])
        except FormError as exc:
            raise ApiError(400, _line(exc)) from None
        return act(job, lambda: control.reprioritize(job, value))

    @api.get("/jobs/<job>/artifact")
    def artifact(job: str) -> Response:
        if ctx.control is None:
            raise ApiError(503, READ_ONLY)
        get = getattr(ctx.control, "artifact", None)
        if get is None:
            raise ApiError(404, "this tuner keeps no job files to fetch")
        try:
            found = get(job)
        except UnknownJobError as exc:
            raise ApiError(404, _line(exc)) from None
        except (NoArtifactError, ValueError) as exc:
            raise ApiError(409, _line(exc)) from None
        if not Path(found.database).is_dir():
            raise ApiError(409, f"the database of job {job} is no longer on the server")
        stream = tempfile.TemporaryFile()  # noqa: SIM115 - send_file closes it
        try:
            write_archive(found, stream)
            stream.seek(0)
        except BaseException:
            stream.close()
            raise
        return send_file(
            stream,
            mimetype="application/gzip",
            as_attachment=True,
            download_name=f"{job}.tar.gz",
        )

    @api.route("/", defaults={"rest": ""}, methods=_ALL_METHODS)
    @api.route("/<path:rest>", methods=_ALL_METHODS)
    def unknown(rest: str) -> Response:
        raise ApiError(404, f"no API endpoint {request.method} {PREFIX}/{rest}")

    @api.errorhandler(ApiError)
    def api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(error=exc.message), exc.status

    @api.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        if isinstance(exc, RequestEntityTooLarge):
            message = f"the request is too large: uploads are limited to {ctx.uploads.limit_text}"
        else:
            message = _line(exc.description or exc.name)
        return jsonify(error=message), exc.code or 500

    @api.errorhandler(Exception)
    def failure(exc: Exception) -> tuple[Response, int]:
        log.exception("API request %s %s failed", request.method, request.path)
        return jsonify(error=f"the server failed: {type(exc).__name__}: {_line(exc)}"), 500

    return api


def server_spec(ctx: AppContext, data: Any, *, uploaded: bool) -> JobSpec:
    """A submitted spec as this server takes it (ApiError 400 naming what is wrong): the
    JobSpec fields, a model that is a zoo name (or ``uploaded`` through the API), a start
    from the server's own schedule library only, priority and trials within the page's
    bounds."""
    try:
        spec = JobSpec.from_dict(data)
        if spec.model is not None and not uploaded:
            if not spec.model.startswith("zoo:"):
                raise FormError(
                    "model: give a zoo model (zoo:NAME) or upload the model file; the server "
                    "does not open paths named in a request"
                )
            check_zoo(ctx, spec.model)
        check_trials(spec.trials)
        parse_priority(spec.priority)
        if spec.warm_start is not None:
            data = {**data, "warm_start": _library(ctx, spec.warm_start)}
            spec = JobSpec.from_dict(data)
    except (JobSpecError, FormError) as exc:
        raise ApiError(400, _line(exc)) from None
    return spec


def _library(ctx: AppContext, named: str) -> str:
    if ctx.library is None:
        raise FormError("warm_start: this server has no schedule library to start jobs from")
    if named != LIBRARY and os.path.abspath(named) != os.path.abspath(ctx.library):
        raise FormError(
            "warm_start: jobs here start only from the server's schedule library "
            f'(give "{LIBRARY}")'
        )
    return ctx.library


def _store_model(ctx: AppContext, model: FileStorage) -> Upload:
    name = display_name(model.filename)
    limit = ctx.uploads.limit
    stream = model.stream
    size = None
    if stream.seekable():
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
    if size is not None and size > limit:
        raise ApiError(413, too_large(name, size, limit))
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, too_large(name, len(raw) + len(stream.read()), limit))
    try:
        return ctx.uploads.store("models", [(model.filename, raw)])
    except UploadError as exc:
        raise ApiError(400, _line(exc)) from None


def _spec_field() -> dict[str, Any]:
    text: Any = request.form.get("spec")
    if text is None and "spec" in request.files:
        text = request.files["spec"].read(_CHUNK).decode("utf-8", "replace")
    if text is None:
        raise ApiError(400, "a multipart submission needs a spec field (the job spec as JSON)")
    return _decode_object(text, "spec")


def _json_body(*, required: bool) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise ApiError(400, "the request needs a JSON object as its body")
        return {}
    return _decode_object(raw, "the body")


def _decode_object(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"{what} is not JSON: {_line(exc)}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _cross_site() -> bool:
    """Whether a browser says this request comes from another site's page."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc.lower() != request.host.lower()


def _add_tree(tar: tarfile.TarFile, root: Path, name: str, skip: Path | None = None) -> None:
    if root.is_symlink() or not (root.is_dir() or root.is_file()):
        return
    if root.is_file():
        tar.add(root, arcname=f"{name}/{root.name}", recursive=False)
        return
    tar.add(root, arcname=name, recursive=False)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if skip is None or here / d != skip)
        for entry in [*dirs, *sorted(files)]:
            path = here / entry
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                continue
            arcname = f"{name}/{path.relative_to(root).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False)


def _line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text or (type(error).__name__ if isinstance(error, BaseException) else "error")


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
