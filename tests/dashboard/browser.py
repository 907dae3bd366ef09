"""Helpers of the browser tests: headless Debian chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dash import Dash

from dashboard.server import RunningDashboard, start

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


@contextmanager
def served(app: Dash) -> Iterator[RunningDashboard]:
    """The app on a free 127.0.0.1 port for the duration of the block."""
    app.enable_dev_tools(debug=False, dev_tools_disable_version_check=True)
    running = start(app)
    try:
        yield running
    finally:
        running.stop()


def drawn(page: Any, graph: str, traces: list[str]) -> list[int]:
    """Positions drawn by the named traces of a graph (their customdata)."""
    return page.evaluate("([g, t]) => window.tuneloomLive.drawn(g, t)", [graph, traces])
