"""Running the dashboard: in the foreground (``serve``) or on a background thread."""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dash import Dash
from werkzeug.serving import BaseWSGIServer, make_server

from collectors._base import BaseStore
from collectors.jobs import Control
from dashboard.access import Access, is_loopback
from dashboard.app import create_app, parts
from dashboard.codeviews import InspectorBackend
from dashboard.uploads import DEFAULT_LIMIT

log = logging.getLogger(__name__)

# glibc gives every thread that allocates its own malloc arena (up to 8 per core) and keeps
# what they free; a threaded server with a thread per connection and request then grows
# for minutes. Two arenas keep it flat (measured with benchmarks/many_clients.py).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False


@dataclass
class RunningDashboard:
    """A dashboard served on a background thread; ``stop`` ends it."""

    app: Dash
    host: str
    port: int
    _server: BaseWSGIServer
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        bridge = parts(self.app).bridge
        if bridge is not None:
            bridge.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        parts(self.app).context.uploads.close()


def start(app: Dash, host: str = "127.0.0.1", port: int = 0) -> RunningDashboard:
    """Serve ``app`` (threaded, Socket.IO included) on a background thread; port 0 picks one."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    limit_malloc_arenas()
    parts(app).context.view.snapshot()  # read the store once before the first page asks
    server = make_server(host, port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="tuneloom-dashboard", daemon=True)
    thread.start()
    return RunningDashboard(app, host, server.server_port, server, thread)


def serve(
    store: BaseStore,
    control: Control | None = None,
    hub: Any = None,
    inspector: InspectorBackend | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
    token: str | None = None,
    title: str | None = None,
    live: bool = True,
    ready: Any = None,
    samples: Mapping[str, Path] | None = None,
    uploads_dir: str | Path | None = None,
    upload_limit: int = DEFAULT_LIMIT,
    library: str | None = None,
    on_database_imported: Any = None,
    status: Any = None,
) -> None:
    """Serve the dashboard on ``host:port`` until interrupted.

    ``hub`` pushes live events; without one the store is tailed (``live=False``: no live
    push). Bound to a non-loopback ``host``, job controls and imports need ``token``;
    without one they are refused. ``samples``, ``uploads_dir``, ``upload_limit``,
    ``library``, ``on_database_imported`` and ``status`` (what the API's ``/health`` adds)
    go to ``create_app``. ``ready(url)`` is called once the server listens. Raises OSError
    when the address cannot be bound.
    """
    access = Access(host=host, token=token)
    feed = hub if live else False
    app = create_app(
        store, control, feed, inspector, access=access, title=title, samples=samples,
        uploads_dir=uploads_dir, upload_limit=upload_limit, library=library,
        on_database_imported=on_database_imported, status=status,
    )  # fmt: skip
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    limit_malloc_arenas()
    parts(app).context.view.snapshot()
    server = make_server(host, port, app.server, threaded=True)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_port}/"
    if not is_loopback(host):
        state = "need the token" if token else "are off (no token given)"
        log.warning(
            "dashboard reachable from other machines at %s; job controls and imports %s",
            url,
            state,
        )
    if ready is not None:
        ready(url)
    try:
        server.serve_forever()
    finally:
        bridge = parts(app).bridge
        if bridge is not None:
            bridge.stop()
        server.server_close()
        parts(app).context.uploads.close()
