"""The Model page in headless chromium: the graph, clicks through to a task's Convergence
and Inspector views, the ranked list, search, live refresh and bad input (waits, never
sleeps; no console errors)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from collectors.events import GraphEvent, RecordEvent
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard.app import create_app
from tests.dashboard.browser import served
from tests.dashboard.model_synthetic import synthetic_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 20_000  # ms an assertion waits (the machine may be busy)
CY = "document.getElementById('model-graph')._cyreg.cy"
DRAWN = (
    "(n) => { const el = document.getElementById('model-graph');"
    " return !!(el && el._cyreg && el._cyreg.cy.nodes().length === n); }"
)


def wait_drawn(tab: Any, nodes: int) -> None:
    tab.wait_for_function(DRAWN, arg=nodes)


def node_data(tab: Any, node_id: str, key: str) -> Any:
    return tab.evaluate(f"([id, k]) => {CY}.getElementById(id).data(k)", [node_id, key])


def click_node(tab: Any, node_id: str) -> None:
    """A real mouse click on the node where the graph draws it."""
    tab.wait_for_function(
        f"(id) => {{ const n = {CY}.getElementById(id); if (n.empty()) return false;"
        " const p = n.renderedPosition(); return p.x > 0 && p.y > 0 &&"
        f" p.x < {CY}.width() && p.y < {CY}.height(); }}",
        arg=node_id,
    )
    box = tab.locator("#model-graph").bounding_box()
    pos = tab.evaluate(f"(id) => {CY}.getElementById(id).renderedPosition()", node_id)
    tab.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])


def test_clicking_a_node_opens_its_task_on_the_convergence_and_inspector_pages(page) -> None:
    tab, console = page
    store = MemoryStore()
    model = synthetic_model(store, blocks=6)
    node = model.graph.node("n6")  # the second convolution of block 1 (collapsed at first)
    task = node.task
    best_pos = min(
        (r for r in store.records(job=model.job).itertuples() if r.task == task and r.mean_secs),
        key=lambda r: r.mean_secs,
    ).pos
    with served(create_app(store)) as running:
        tab.goto(running.url + "/model")
        wait_drawn(tab, 3 + 6)  # stem, head, softmax and six collapsed blocks
        expect(tab.locator("#model-notice")).to_contain_text(
            "6 repeated blocks are collapsed", timeout=WAIT
        )
        assert "17." in tab.inner_text("#model-legend")  # the largest drawn share, a block
        expect(tab.locator("#model-memory-link")).to_contain_text("No memory plan for this job")
        click_node(tab, "block::stage0/block1")
        wait_drawn(tab, 3 + 5 + 1 + 4)  # the block opens into a frame and its four kernels
        click_node(tab, "n6")
        expect(tab.locator("#model-selection")).to_contain_text(node.kernel, timeout=WAIT)
        expect(tab.locator("#model-selection")).to_contain_text(
            f"select {task} of {model.job}", timeout=WAIT
        )
        expect(tab.locator("#filter-tasks")).to_contain_text(task, timeout=WAIT)
        link = tab.locator("#model-open-searchspace")
        assert link.get_attribute("href") == f"/searchspace?job={model.job}&task={task}"
        tab.click("#model-open-convergence")
        expect(tab.locator("#nav-convergence")).to_have_class(
            "tl-nav-link tl-nav-active", timeout=WAIT
        )
        cells = tab.locator("#convergence-summary .ag-row .ag-cell[col-id='task']")
        expect(cells).to_have_count(1, timeout=WAIT)
        expect(cells.first).to_have_text(task, timeout=WAIT)
        tab.click("#nav-inspector")
        summary = tab.locator("#inspector-summary")
        expect(summary).to_contain_text(task, timeout=WAIT)
        expect(tab.locator("#inspector-pos")).to_have_value(str(best_pos), timeout=WAIT)
    assert console.errors == []


def test_the_ranked_list_search_variants_and_live_refresh(page) -> None:
    tab, console = page
    store = MemoryStore()
    model = synthetic_model(store, blocks=4, unmatched=2)
    kernels = len(model.graph.nodes)
    with served(create_app(store)) as running:
        tab.goto(running.url + "/model")
        wait_drawn(tab, 3 + 4)
        notice = tab.locator("#model-notice")
        expect(notice).to_contain_text(f"2 of {kernels + 2} profiled kernels", timeout=WAIT)
        expect(notice).to_contain_text("ms end to end; the kernels sum to", timeout=WAIT)
        # The slowest kernel heads the list; clicking its row picks its node.
        first = tab.locator("#model-bottlenecks .ag-row[row-index='0'] .ag-cell[col-id='kernel']")
        slowest = first.inner_text()
        first.click()
        expect(tab.locator("#model-selection")).to_contain_text(slowest, timeout=WAIT)
        # Search highlights matching kernels, on their collapsed block when hidden.
        tab.fill("#model-search", "conv_c")
        tab.press("#model-search", "Enter")
        expect(notice).to_contain_text("1 kernel call(s) match 'conv_c'", timeout=WAIT)
        match = next(n for n in model.graph.nodes if n.ambiguous)  # the only "conv_c" layer
        found = tab.evaluate(f"() => {CY}.nodes('.found').map(n => n.id())")
        assert found in ([match.id], [f"block::{match.block}"])
        # The estimate variant colours by the records; a better record arrives live.
        tab.check("#model-variant input[value='estimate']")
        expect(tab.locator("#model-legend")).to_contain_text("share of the estimate", timeout=WAIT)
        expect(notice).to_contain_text(f"of {len(model.tasks)} tasks", timeout=WAIT)
        assert node_data(tab, "n0", "trials") == 12
        EventSink(store, source="late").emit(
            RecordEvent, ts=2e9, job=model.job, task="conv_stem", candidate=99,
            run_secs=(1e-7, 1e-7),
        )  # fmt: skip
        tab.wait_for_function(f"() => {CY}.getElementById('n0').data('trials') === 13")
        assert node_data(tab, "n0", "best_ms") == pytest.approx(1e-4)
    assert console.errors == []


def test_missing_and_unreadable_graphs_say_so_and_other_pages_still_work(page) -> None:
    tab, console = page
    store = MemoryStore()
    synthetic_model(store, job="plain", graph=False, source="a")
    broken = synthetic_model(store, job="broken", graph=False, source="b")
    bad = json.loads(broken.graph.to_json())
    bad["edges"].append(["n0", "nowhere"])
    where = f"edges[{len(bad['edges']) - 1}]"
    EventSink(store, source="c").emit(
        GraphEvent, ts=2.0, job="broken", model="m", graph=json.dumps(bad)
    )
    with served(create_app(store)) as running:
        tab.goto(running.url + "/model")
        problem = tab.locator("#model-problem")
        expect(problem).to_have_text(
            f"The stored graph of job broken cannot be read: {where}: unknown consumer node "
            "'nowhere'",
            timeout=WAIT,
        )
        tab.locator("#model-job").click()
        tab.get_by_text("deep6 (plain) · no graph yet").click()
        expect(problem).to_contain_text("Job plain has no model graph yet", timeout=WAIT)
        tab.click("#nav-convergence")
        tab.wait_for_selector("#convergence-graph .scatterlayer .trace")
    assert console.errors == []
