"""The dashboard app factory: ``create_app(store, control=None, live=None, inspector=None)``,
with the JSON API under ``/api/v1/``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dash import Dash, html
from flask_socketio import SocketIO

from collectors._base import BaseStore
from collectors.jobs import Control
from dashboard import api, shell
from dashboard.access import Access
from dashboard.codeviews import CodeViews, InspectorBackend
from dashboard.context import BARS_LIMIT, AppContext
from dashboard.data import StoreView
from dashboard.live import HubFeed, LiveBridge, PollingFeed
from dashboard.pages import (
    convergence,
    imports,
    inspector,
    jobs,
    memory,
    model,
    records,
    searchspace,
    timeline,
)
from dashboard.uploads import DEFAULT_LIMIT, UploadFolder, default_folder

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# plotly.js with the trace types the pages draw (assets/README.md says how it is built).
# Served from assets/ but not put in the page: the graph component loads it when it first
# draws (see assets/tuneloom_plotly.js), so its parsing overlaps the first data requests.
PLOTLY_BUNDLE = "plotly-tuneloom-4.1.1.min.js"
PAGES = [timeline, convergence, inspector, model, memory, searchspace, records, jobs, imports]
# Room in a request beyond an upload's base64 text (the rest of the callback's JSON).
REQUEST_MARGIN = 16 * 1024 * 1024


@dataclass
class DashboardParts:
    """What ``create_app`` wired together, for the server and for tests."""

    context: AppContext
    socketio: SocketIO | None
    bridge: LiveBridge | None


def create_app(
    store: BaseStore,
    control: Control | None = None,
    live: Any = None,
    inspector: InspectorBackend | None = None,
    *,
    access: Access | None = None,
    title: str | None = None,
    bars_limit: int = BARS_LIMIT,
    samples: Mapping[str, Path] | None = None,
    uploads_dir: str | Path | None = None,
    upload_limit: int = DEFAULT_LIMIT,
    library: str | None = None,
    on_database_imported: Callable[[Path], str] | None = None,
    status: Callable[[], Mapping[str, Any]] | None = None,
) -> Dash:
    """A Dash app showing ``store``.

    ``control`` steers jobs (None: read-only). ``live`` is a ``collectors.hub.Hub`` to push
    events from, None to tail the store by polling, or False for no live push.
    ``inspector`` generates code for the Inspector page (needs TVM; None shows traces only).
    ``access`` holds the bound host and token that guard job controls and imports (loopback
    by default). ``samples`` names logs the Import page offers (name -> file or MetaSchedule
    database folder); it imports only when the store is writable. Uploads (logs to import,
    models to tune) go to ``uploads_dir`` (default ``<db stem>-uploads/`` beside a store
    file, else a temporary folder), at most ``upload_limit`` bytes each. ``library`` is the
    schedule library folder jobs submitted on the Jobs page may start from (None: none).
    ``on_database_imported(folder)`` is called for each MetaSchedule database the Import page
    imports (e.g. to add it to that library) and returns a note for the page.
    The JSON API (``dashboard.api``) is served under ``/api/v1/``; ``status()`` adds to what
    its ``/health`` says (e.g. ``{"accepting": False, "reason": ...}``).
    """
    view = StoreView(store)
    uploads = UploadFolder(
        uploads_dir if uploads_dir is not None else default_folder(getattr(store, "path", None)),
        limit=upload_limit,
    )
    ctx = AppContext(
        store=store,
        view=view,
        codes=CodeViews(store, inspector),
        control=control,
        access=access or Access(),
        live=live is not False,
        title=title or repr(store),
        bars_limit=bars_limit,
        uploads=uploads,
        samples=dict(samples or {}),
        hub=None if live is None or live is False else live,
        library=library,
        on_database_imported=on_database_imported,
    )
    app = Dash(
        __name__,
        assets_folder=str(ASSETS),
        title="tuneloom",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
        assets_ignore=PLOTLY_BUNDLE.replace(".", r"\."),
    )
    # A request may carry one upload as base64 (4/3 of its bytes); refuse anything larger.
    app.server.config["MAX_CONTENT_LENGTH"] = math.ceil(upload_limit * 4 / 3) + REQUEST_MARGIN
    app.layout = lambda: shell.layout(ctx, PAGES, shell.requested_path())
    app.validation_layout = html.Div(
        [shell.layout(ctx, PAGES), *[page.layout(ctx) for page in PAGES]]
    )
    shell.register(app, ctx, PAGES)
    for page in PAGES:
        page.register(app, ctx)
    app.server.register_blueprint(api.blueprint(ctx, status))
    socketio = bridge = None
    if live is not False:
        socketio = SocketIO(app.server, async_mode="threading", logger=False, engineio_logger=False)
        if live is None:
            feed_factory = lambda: PollingFeed(store)  # noqa: E731
        else:
            feed_factory = lambda: HubFeed(live, store)  # noqa: E731
        bridge = LiveBridge(socketio, view, feed_factory)
    app.server.extensions["tuneloom"] = DashboardParts(ctx, socketio, bridge)
    return app


def parts(app: Dash) -> DashboardParts:
    """The context, Socket.IO server and live bridge of an app made by ``create_app``."""
    return app.server.extensions["tuneloom"]
