"""The Search-space page: figures from data, and the page in headless chromium."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest

from collectors.memory_store import MemoryStore
from dashboard.app import ASSETS, PLOTLY_BUNDLE, create_app, parts
from dashboard.figures import searchspace as sf
from dashboard.pages import searchspace
from tests.dashboard.browser import served
from tests.dashboard.searchspace_history import JOB, TASK, searchspace_history

BOX = "#searchspace-parcoords-"
STATE = "id => window.tuneloomParcoords.state(id)"


def decoded(axis: dict) -> np.ndarray:
    """An axis's values as the browser reads them."""
    dtype = {"u1": "<u1", "u2": "<u2", "f4": "<f4"}[axis["dtype"]]
    return np.frombuffer(base64.b64decode(axis["data"]), dtype=dtype)


def inside(lines: dict, brushes: dict) -> set[int]:
    """Candidates whose values lie in every brush (axis index -> [low, high])."""
    keep = np.ones(lines["n"], dtype=bool)
    for axis, (low, high) in brushes.items():
        values = decoded(lines["axes"][int(axis)]).astype(np.float64)
        keep &= (values >= low) & (values <= high)
    return set(np.flatnonzero(keep).tolist())


def redrawn(page, view: str, before: str | None) -> None:
    """Wait until the view's canvas has been drawn again since draw count ``before`` and
    no draw is pending."""
    page.wait_for_function(
        "([id, before]) => document.getElementById(id).dataset.drawn !== before"
        " && window.tuneloomParcoords.state(id).settled",
        arg=[view, before],
    )


def drag(page, view: str, axis: int, lines: dict, low: float, high: float) -> None:
    """Press on an axis of the view (element id) at value ``high`` and release at ``low``
    (a brush between them), or click at ``low`` when both are equal."""
    state = page.evaluate(STATE, view)
    box = page.locator(f"#{view} svg").bounding_box()
    r0, r1 = lines["axes"][axis]["range"]

    def y(v: float) -> float:
        return box["y"] + state["top"] + state["height"] * (1 - (v - r0) / (r1 - r0))

    x = box["x"] + state["xs"][axis]
    page.mouse.move(x, y(high))
    page.mouse.down()
    if low != high:
        page.mouse.move(x, (y(high) + y(low)) / 2)
        page.mouse.move(x, y(low))
    page.mouse.up()


def test_plotly_bundle_is_the_one_the_graphs_load():
    assert (ASSETS / PLOTLY_BUNDLE).is_file()
    assert f'"assets/{PLOTLY_BUNDLE}"' in (ASSETS / "tuneloom_plotly.js").read_text()
    head = (ASSETS / PLOTLY_BUNDLE).read_text()[:300]
    assert "v4.1.1" in head and "scatter, bar, heatmap;" in head
    assert "parcoords" not in head  # drawn by tuneloom_parcoords.js, without WebGL


def test_parcoords_data_axes_codes_and_fast_brush():
    features = pd.DataFrame(
        {"tile j[inner]": [1, 16, 4, None], "compute-at x": ["root", "inline", "root", "inline"]}
    )
    latency_ms = np.array([1.0, 0.1, 2.0, 10.0])
    lines = sf.parcoords_data(
        features, latency_ms, ["tile j[inner]", "compute-at x"], fast_ms=0.1, key=["j", "t"]
    )
    tile, place, latency = lines["axes"]
    assert lines["n"] == 4 and lines["key"] == ["j", "t"]
    assert tile["ticktext"] == ["none", "1", "4", "16"] and decoded(tile).tolist() == [1, 3, 2, 0]
    assert place["ticktext"] == ["inline", "root"] and decoded(place).tolist() == [1, 0, 1, 0]
    assert tile["dtype"] == place["dtype"] == "u1" and latency["dtype"] == "f4"
    assert decoded(latency).tolist() == pytest.approx([0.0, -1.0, 0.30103, 1.0], abs=1e-6)
    assert latency["ticktext"] == ["0.1", "1", "10"]
    (axis, (low, high)), *others = lines["brush"].items()
    assert axis == "2" and not others and low < -1.0 <= high < 0.0  # only the fastest


def test_parcoords_data_many_categories_take_two_bytes():
    features = pd.DataFrame({"knob": [f"v{i:03d}" for i in range(300)]})
    lines = sf.parcoords_data(features, np.linspace(1, 2, 300), ["knob"])
    (knob, _) = lines["axes"]
    assert knob["dtype"] == "u2" and decoded(knob).tolist() == list(range(300))
    assert lines["brush"] == {}


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
def test_page_draws_every_candidate_brushes_and_compares_two_tasks(page):
    store = MemoryStore()
    searchspace_history(store, 300, decides=True)
    other = MemoryStore()
    searchspace_history(other, 240, decides=False, seed=1)
    # The same task in a second job, whose decisions do not decide latency.
    store.append([replace(s.event, job="space-2", source="space2") for s in other.read()])
    app = create_app(store, live=False)
    ctx = parts(app).context
    sides = {"a": (JOB, 300), "b": ("space-2", 240)}
    stored = {side: searchspace.side_content(ctx, job, TASK)[2] for side, (job, _) in sides.items()}
    browser_page, console = page
    query = urlencode({"job": JOB, "task": TASK, "job2": "space-2", "task2": TASK})
    with served(app) as running:
        browser_page.goto(f"{running.url}/searchspace?{query}")
        for side, (_, n) in sides.items():  # every candidate of each side drawn
            browser_page.wait_for_selector(f"{BOX}{side}[data-drawn]", timeout=60_000)
            shown = browser_page.evaluate(STATE, f"searchspace-parcoords-{side}")
            assert shown["n"] == shown["lines"] == stored[side]["n"] == n
            assert browser_page.get_attribute(BOX + side, "data-lines") == str(n)
            assert shown["axes"] == [a["name"] for a in stored[side]["axes"]]
            # The fastest 10 % start brushed, exactly as the stored latencies say.
            fast = inside(stored[side], stored[side]["brush"])
            assert len(fast) == n // 10 and set(shown["selected"]) == fast
        summary_a = browser_page.inner_text("#searchspace-summary-a")
        summary_b = browser_page.inner_text("#searchspace-summary-b")
        assert "tile j[inner] = 16 in " in summary_a
        assert "No decision decides latency here" in summary_b
        assert "all 300 candidates drawn" in summary_a
        lines = stored["a"]
        assert lines["axes"][0]["name"] == "tile j[inner]"
        # The second axis's most common value among the fastest (not all of them have it).
        codes = decoded(lines["axes"][1])
        fast_codes = codes[sorted(inside(lines, lines["brush"]))]
        pick = int(np.bincount(fast_codes).argmax())
        assert 0 < np.sum(fast_codes == pick) < 30

        # A brush on that axis around its tick combines with the latency brush.
        before = browser_page.get_attribute(BOX + "a", "data-drawn")
        drag(browser_page, "searchspace-parcoords-a", 1, lines, pick - 0.4, pick + 0.4)
        redrawn(browser_page, "searchspace-parcoords-a", before)
        shown = browser_page.evaluate(STATE, "searchspace-parcoords-a")
        low, high = shown["brushes"]["1"]
        assert pick - 0.5 < low < pick < high < pick + 0.5
        assert set(shown["brushes"]) == {"1", "8"}
        both = inside(lines, shown["brushes"])
        assert set(shown["selected"]) == both and len(both) == np.sum(fast_codes == pick)
        count = browser_page.inner_text(f"{BOX}a .tl-pc-count")
        assert count == f"{len(both)} of 300 candidates brushed"
        assert browser_page.get_attribute(BOX + "a", "data-brushed") == str(len(both))

        # A click on the latency axis clears its brush: every candidate with that value is in.
        before = browser_page.get_attribute(BOX + "a", "data-drawn")
        latency = len(lines["axes"]) - 1
        r0, r1 = lines["axes"][latency]["range"]
        drag(browser_page, "searchspace-parcoords-a", latency, lines, (r0 + r1) / 2, (r0 + r1) / 2)
        redrawn(browser_page, "searchspace-parcoords-a", before)
        shown = browser_page.evaluate(STATE, "searchspace-parcoords-a")
        assert set(shown["brushes"]) == {"1"}
        assert set(shown["selected"]) == set(np.flatnonzero(codes == pick).tolist())

        # Clearing every brush selects every candidate; the other side is untouched.
        before = browser_page.get_attribute(BOX + "a", "data-drawn")
        browser_page.click(f"{BOX}a .tl-pc-clear")
        redrawn(browser_page, "searchspace-parcoords-a", before)
        assert browser_page.get_attribute(BOX + "a", "data-brushed") == "300"
        assert browser_page.inner_text(f"{BOX}a .tl-pc-count") == "All 300 candidates; none brushed"
        assert browser_page.get_attribute(BOX + "b", "data-brushed") == "24"

        loaded = browser_page.evaluate(
            "() => performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => /plotly[^/]*\\.min\\.js/.test(n))"
        )
        assert len(loaded) == 1 and loaded[0].endswith(f"/assets/{PLOTLY_BUNDLE}"), loaded
        canvases = browser_page.evaluate(  # no WebGL: every canvas is one of the two views
            "() => [...document.querySelectorAll('canvas')].map(c => c.closest('.tl-parcoords')"
            " ? c.closest('.tl-parcoords').id : c.className)"
        )
        assert canvases == ["searchspace-parcoords-a", "searchspace-parcoords-b"], canvases
    assert console.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_category_axis_ticks_and_brush(page):
    """Text decisions (compute-at choices) get a category axis whose brush picks exactly
    the candidates of the categories it spans."""
    rng = np.random.default_rng(3)
    places = rng.choice(["inline", "root", "compute-at i", "reverse-compute-at j"], size=500)
    features = pd.DataFrame({"compute-at C": places, "unroll": rng.choice([0, 16, 64], 500)})
    latency = rng.uniform(0.1, 3.0, 500)
    lines = sf.parcoords_data(features, latency, ["compute-at C", "unroll"], key=["j", "t", 500])
    app = create_app(MemoryStore(), live=False)
    browser_page, console = page
    with served(app) as running:
        browser_page.goto(f"{running.url}/searchspace")
        browser_page.wait_for_selector("#searchspace-side-a")
        browser_page.evaluate(
            """(data) => {
              const box = document.createElement('div');
              box.id = 'pc-test';
              box.style.width = '900px';
              document.body.prepend(box);
              window.tuneloomParcoords.render(box.id, data);
            }""",
            lines,
        )
        browser_page.wait_for_selector("#pc-test[data-drawn]")
        ticks = browser_page.locator(
            '#pc-test g.tl-pc-axis[data-axis="0"] text'
        ).all_text_contents()
        labels = lines["axes"][0]["ticktext"]
        assert labels == ["compute-at i", "inline", "reverse-com…", "root"]
        assert set(labels) <= set(ticks)
        assert browser_page.get_attribute("#pc-test", "data-lines") == "500"
        before = browser_page.get_attribute("#pc-test", "data-drawn")
        drag(browser_page, "pc-test", 0, lines, 0.6, 2.4)  # "inline", "reverse-compute-at j"
        redrawn(browser_page, "pc-test", before)
        shown = browser_page.evaluate(STATE, "pc-test")
        expected = np.flatnonzero(np.isin(places, ["inline", "reverse-compute-at j"]))
        assert set(shown["selected"]) == set(expected.tolist()) == inside(lines, shown["brushes"])
        assert browser_page.get_attribute("#pc-test", "data-brushed") == str(len(expected))
        # New data of the same job and task (a refresh) keeps the brush; another task's not.
        more = sf.parcoords_data(features, latency, ["compute-at C"], key=["j", "t", 501])
        other = sf.parcoords_data(features, latency, ["compute-at C"], key=["j", "t2", 500])
        for data, brushed in ((more, len(expected)), (other, 500)):
            before = browser_page.get_attribute("#pc-test", "data-drawn")
            browser_page.evaluate("(d) => window.tuneloomParcoords.render('pc-test', d)", data)
            redrawn(browser_page, "pc-test", before)
            assert browser_page.get_attribute("#pc-test", "data-brushed") == str(brushed)
    assert console.errors == []
