"""The Search-space page: figures from data, and the page in headless chromium."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest

from collectors.memory_store import MemoryStore
from dashboard.app import ASSETS, PLOTLY_BUNDLE, create_app
from dashboard.figures import searchspace as sf
from tests.dashboard.browser import served
from tests.dashboard.searchspace_history import JOB, TASK, searchspace_history

# The parcoords graph holds ``n`` lines and plotly has drawn it (its promise resolved).
DRAWN = """([id, n]) => {
  const gd = document.querySelector('#' + id + ' .js-plotly-plot');
  return !!(gd && gd._fullData && gd._fullData[0] && gd._fullData[0].type === 'parcoords'
    && gd.data[0].dimensions[0].values.length === n && !gd._transitioning
    && gd.querySelector('.gl-canvas-focus'));
}"""


def test_plotly_bundle_is_the_one_the_graphs_load():
    assert (ASSETS / PLOTLY_BUNDLE).is_file()
    assert f'"assets/{PLOTLY_BUNDLE}"' in (ASSETS / "tuneloom_plotly.js").read_text()
    head = (ASSETS / PLOTLY_BUNDLE).read_text()[:300]
    assert "v4.1.1" in head and "parcoords" in head


def test_parcoords_figure_axes_and_fast_brush():
    features = pd.DataFrame(
        {"tile j[inner]": [1, 16, 4, None], "compute-at x": ["root", "inline", "root", "inline"]}
    )
    latency_ms = np.array([1.0, 0.1, 2.0, 10.0])
    fig = sf.parcoords_figure(features, latency_ms, ["tile j[inner]", "compute-at x"], fast_ms=0.1)
    tile, place, latency = fig["data"][0]["dimensions"]
    assert tile["ticktext"] == ["none", "1", "4", "16"] and tile["values"] == [1, 3, 2, 0]
    assert place["ticktext"] == ["inline", "root"] and place["values"] == [1, 0, 1, 0]
    assert latency["values"] == [0.0, -1.0, pytest.approx(0.30103), 1.0]
    low, high = latency["constraintrange"]
    assert low < -1.0 <= high < 0.0  # only the fastest candidate starts brushed


def test_sample_lines_keeps_every_fast_candidate():
    latency = np.random.default_rng(0).random(20_000)
    sample = sf.sample_lines(latency, 2_000, limit=5_000)
    assert sample.sampled and len(sample.rows) == 5_000
    fastest = set(np.argsort(latency)[:2_000])
    assert fastest <= set(sample.rows.tolist())
    assert not sf.sample_lines(latency[:100], 10).sampled
    # When the fastest would fill more than half the lines, half are drawn from them.
    half = sf.sample_lines(latency, 5_000, limit=1_000)
    assert len(half.rows) == 1_000
    assert len(set(half.rows.tolist()) & set(np.argsort(latency)[:5_000].tolist())) == 500


@pytest.mark.browser
@pytest.mark.slow
def test_page_draws_decisions_and_compares_two_tasks(page):
    store = MemoryStore()
    searchspace_history(store, 300, decides=True)
    other = MemoryStore()
    searchspace_history(other, 300, decides=False, seed=1)
    # The same task in a second job, whose decisions do not decide latency.
    store.append([replace(s.event, job="space-2", source="space2") for s in other.read()])
    app = create_app(store, live=False)
    browser_page, console = page
    query = urlencode({"job": JOB, "task": TASK, "job2": "space-2", "task2": TASK})
    with served(app) as running:
        browser_page.goto(f"{running.url}/searchspace?{query}")
        for side in ("a", "b"):  # both drawn, by the one plotly.js bundle of every page
            browser_page.wait_for_function(
                DRAWN, arg=[f"searchspace-parcoords-{side}", 300], timeout=60_000
            )
        summary_a = browser_page.inner_text("#searchspace-summary-a")
        summary_b = browser_page.inner_text("#searchspace-summary-b")
        assert "tile j[inner] = 16 in " in summary_a
        assert "No decision decides latency here" in summary_b
        dims = browser_page.evaluate(
            "() => document.querySelector('#searchspace-parcoords-a .js-plotly-plot')"
            ".data[0].dimensions.map(d => d.label)"
        )
        assert dims[0] == "tile j[inner]" and dims[-1] == "latency (ms, log)"
        # Brushing: a constraint range on a decision axis is kept (plotly snaps it to a tick).
        brushed = browser_page.evaluate(
            """() => {
              const el = document.querySelector('#searchspace-parcoords-a .js-plotly-plot');
              return window.Plotly.restyle(el, {'dimensions[0].constraintrange': [[2.5, 3.5]]}, [0])
                .then(() => el._fullData[0].dimensions[0].constraintrange);
            }"""
        )
        assert brushed[0] < 3 < brushed[1] and brushed[1] - brushed[0] <= 1  # snapped to tick 3
        loaded = browser_page.evaluate(
            "() => performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => /plotly[^/]*\\.min\\.js/.test(n))"
        )
        assert len(loaded) == 1 and loaded[0].endswith(f"/assets/{PLOTLY_BUNDLE}"), loaded
    assert console.errors == []
