"""The Timeline ends the lane of a resource that left (a cluster node went away)."""

from __future__ import annotations

import pytest

from collectors.events import JobEvent, ResourceEvent, StageEvent
from collectors.memory_store import MemoryStore
from dashboard.app import create_app
from tests.dashboard.browser import served

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NODE = "client:ab12cd34:0"


def store_with_a_node_that_left() -> MemoryStore:
    store = MemoryStore()
    common = dict(source="run", clock="wall", job="j1", task="t", iteration=0)
    store.append([
        JobEvent(source="run", seq=0, ts=100.0, job="j1", change="submitted", name="one"),
        StageEvent(seq=1, ts=103.0, stage="build", resource=NODE, start=101.0, end=103.0,
                   **common),
        StageEvent(seq=2, ts=106.0, stage="profile", resource="device:llvm:0", start=103.0,
                   end=106.0, **common),
        ResourceEvent(source="run", seq=3, ts=104.0, job="", resource=NODE, presence="left",
                      detail="Ray node ab12cd34 (h) left: it left the Ray cluster"),
    ])  # fmt: skip
    return store


def test_the_lane_of_a_node_that_left_ends_in_a_marker(page) -> None:
    tab, console = page
    with served(create_app(store_with_a_node_that_left())) as running:
        tab.goto(running.url + "/")
        tab.wait_for_function(
            "() => { const g = document.querySelector('#timeline-graph .js-plotly-plot');"
            " return g && g.data && g.data.some(t => t.name === 'resource left'); }"
        )
        marker = tab.evaluate(
            "() => document.querySelector('#timeline-graph .js-plotly-plot').data"
            ".find(t => t.name === 'resource left')"
        )
        assert marker["y"] == [NODE] and marker["x"] == [3.0]  # 104 s, 101 s the first stage
        assert "left the Ray cluster" in marker["hovertext"][0]
        # A vertical line has no area: drawn, though Playwright calls it hidden.
        tab.wait_for_selector("#timeline-graph .scatterlayer .point", state="attached")
    assert console.errors == []
