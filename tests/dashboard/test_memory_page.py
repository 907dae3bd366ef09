"""The Memory page and its figures: live tensors per order on one scale with the peak
marked, the TCM placement, and a store without memory plans saying how to make one."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from collectors.events import JobEvent, MemoryEvent
from collectors.memory_store import MemoryStore
from collectors.memoryplan import MemoryPlan, OrderProfile, TcmPlacement
from dashboard.app import create_app
from dashboard.figures.memory import live_bytes, live_memory_figure, peak_step, tcm_figure
from dashboard.pages.memory import requested_job
from tests.dashboard.browser import served

KIB = 1024


def plan() -> MemoryPlan:
    tensors = {"x": 4 * KIB, "a": 8 * KIB, "b": 8 * KIB, "c": 2 * KIB}
    return MemoryPlan(
        model="toy",
        tensors=tensors,
        orders=(
            OrderProfile(
                "TVM's order",
                ("n0", "n1", "n2"),
                (("x", "a"), ("a", "b"), ("a", "b", "c")),
                20 * KIB,
            ),
            OrderProfile(
                "least peak",
                ("n1", "n0", "n2"),
                (("x", "b"), ("x", "a", "b"), ("b", "c")),
                18 * KIB,
            ),
        ),
        tcm=TcmPlacement(
            tcm_bytes=10 * KIB,
            order="least peak",
            resident=(("b",), ("a",), ("b", "c")),
            loads=((2, "b"),),
            spills=((0, "b"),),
            streamed=((1, "x"), (1, "b")),
            dram_bytes=30 * KIB,
            greedy_dram_bytes=34 * KIB,
            compulsory_dram_bytes=6 * KIB,
        ),
    )


def test_live_bytes_and_peaks_come_from_the_plan() -> None:
    p = plan()
    assert live_bytes(p, "TVM's order") == [12 * KIB, 16 * KIB, 18 * KIB]
    assert peak_step(p, "TVM's order") == (2, 18 * KIB)
    assert peak_step(p, "least peak") == (1, 20 * KIB)


def test_orders_side_by_side_on_one_scale_with_their_peaks() -> None:
    fig = live_memory_figure(plan())
    layout = fig["layout"]
    assert {t["xaxis"] for t in fig["data"]} == {"x", "x2"}
    assert {t["yaxis"] for t in fig["data"]} == {"y"}  # one y scale for both orders
    assert layout["xaxis"]["domain"][1] < layout["xaxis2"]["domain"][0]
    assert layout["yaxis"]["range"][1] >= 20  # the higher peak, in KiB, fits
    assert [s["y0"] for s in layout["shapes"]] == [18.0, 20.0]
    titles = [a["text"] for a in layout["annotations"] if a["text"] != "peak"]
    assert titles == [
        "<b>TVM's order</b>: peak 18.0 KiB at step 2; TVM plans 20.0 KiB",
        "<b>least peak</b>: peak 20.0 KiB at step 1; TVM plans 18.0 KiB",
    ]
    a_bars = [t for t in fig["data"] if t["name"] == "a" and t["xaxis"] == "x2"]
    assert a_bars[0]["x"] == [1] and a_bars[0]["y"] == [8.0]


def test_a_link_picks_a_job_only_when_it_has_a_plan() -> None:
    assert requested_job("?job=a", ["b", "a"]) == "a"
    assert requested_job("?job=zz", ["b", "a"]) is None
    assert requested_job("", ["b"]) is None


def test_tcm_figure_shows_residents_moves_and_traffic() -> None:
    fig = tcm_figure(plan())
    assert fig is not None
    bars = {t["name"]: t["x"] for t in fig["data"] if t["type"] == "bar"}
    assert bars == {"a": [1], "b": [0, 2], "c": [2]}
    moves = {t["name"]: (t["x"], t["customdata"]) for t in fig["data"] if t["type"] == "scatter"}
    assert moves["spilled to DRAM"] == ([0], ["b"])
    assert moves["streamed from/to DRAM"] == ([1], ["x, b"])
    assert fig["layout"]["shapes"][0]["y0"] == 10.0
    assert (
        "DRAM traffic 30.0 KiB, greedy 34.0 KiB, compulsory 6.0 KiB"
        in (fig["layout"]["title"]["text"])
    )
    no_tcm = MemoryPlan("toy", plan().tensors, plan().orders)
    assert tcm_figure(no_tcm) is None


@pytest.mark.browser
@pytest.mark.slow
def test_memory_page_shows_a_stored_plan_and_says_how_to_make_one(page) -> None:
    tab, console = page
    empty = MemoryStore()
    with served(create_app(empty)) as running:
        tab.goto(running.url + "/memory")
        expect(tab.locator("#memory-message")).to_contain_text(
            "No memory plans in this store. Make one with: tuneloom memory MODEL --db STORE"
        )
        tab.goto("about:blank")  # leave before the server stops
    store = MemoryStore()
    store.append([
        JobEvent(source="m", seq=0, ts=1.0, job="memory:toy", change="submitted", model="toy"),
        MemoryEvent(source="m", seq=1, ts=2.0, job="memory:toy", model="toy",
                    plan=plan().to_json()),
        JobEvent(source="m", seq=2, ts=3.0, job="other", change="submitted", model="toy"),
        MemoryEvent(source="m", seq=3, ts=4.0, job="other", model="toy", plan=plan().to_json()),
    ])  # fmt: skip
    with served(create_app(store)) as running:
        # A link naming a job opens that job's plan, not the newest one.
        tab.goto(running.url + "/memory?job=memory%3Atoy")
        expect(tab.locator("#memory-job")).to_contain_text("memory:toy")
        tab.goto(running.url + "/memory")
        expect(tab.locator("#memory-job")).to_contain_text("other")
        tab.goto(running.url + "/")
        tab.click("a[href='/memory']")
        expect(tab.locator("#memory-message")).to_have_text("toy: 3 kernels")
        live = tab.locator("#memory-live")
        expect(live.locator(".annotation-text").first).to_contain_text("TVM's order")
        expect(live.locator(".annotation-text", has_text="least peak")).to_have_count(1)
        expect(live.locator("g.point").first).to_be_visible()
        tcm = tab.locator("#memory-tcm")
        expect(tcm.locator(".gtitle")).to_contain_text("TCM 10.0 KiB over least peak")
        expect(tab.locator("#memory-tcm-note")).to_have_text("")
        tab.goto("about:blank")
    assert console.errors == []
