"""Model page speed for a model of 500+ fused kernels: server time and first paint.

A fresh SQLite store holds a **synthetic** model job (``tests/dashboard/model_synthetic.py``:
a deep residual stack of ``--blocks`` blocks of four fused kernels each, plus a stem and a
head; an untuned and a tuned per-kernel profile; ``--trials`` measured candidates per task).

Server: the work of the page's draw callback, timed in-process: the store view's snapshot,
the profile and graph events read and the graph parsed (``cold``: fresh readers, as on the
first request after a start), the shares, collapsed view, ranked list and the JSON Dash
sends; then again with everything cached (``warm``, what a live refresh costs), and with
every block expanded (all kernels drawn).

Browser: the dashboard is served from the store and a fresh headless chromium context opens
the Model page. First paint is the time from navigation start to the frame after the graph
holds all its nodes (blocks collapsed: the default). Expanded is the time from unticking
"collapse repeated blocks" to the frame after every kernel is drawn. Side by side in one run,
so the ratios hold on a noisy machine.

    python benchmarks/modelpage_bench.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dash._utils import to_json  # noqa: E402  (how Dash encodes a callback's output)
from playwright.sync_api import sync_playwright  # noqa: E402

from collectors.sqlite_store import SQLiteStore  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.data import ModelEvents, StoreView  # noqa: E402
from dashboard.pages import model as page  # noqa: E402
from dashboard.server import start  # noqa: E402
from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.dashboard.model_synthetic import synthetic_model  # noqa: E402

PAINTED = """
(n) => new Promise((resolve) => {
  const check = () => {
    const el = document.getElementById("model-graph");
    const cy = el && el._cyreg && el._cyreg.cy;
    if (cy && cy.nodes().length === n) {
      requestAnimationFrame(() => resolve(performance.now()));
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
})
"""


def server_time(
    store: SQLiteStore, job: str, reader: tuple[StoreView, ModelEvents] | None, *, collapse: bool
) -> tuple[float, tuple[StoreView, ModelEvents]]:
    """Seconds for what the draw callback does (snapshot, read, view, JSON), with fresh
    readers of the store when ``reader`` is None; returns the readers for a warm rerun."""
    started = time.perf_counter()
    view, events = reader or (StoreView(store), ModelEvents(store))
    snap = view.snapshot()
    inputs = events.inputs(job)
    stats = page.job_stats(snap, job)
    out = page.model_view(inputs, stats, "tuned", collapse=collapse, expanded=[], query=None,
                          picked=None)  # fmt: skip
    to_json([out.elements, out.legend, out.notices, out.rows, out.selection])
    return time.perf_counter() - started, (view, events)


def browser_times(url: str, collapsed_nodes: int, all_nodes: int) -> tuple[float, float]:
    """(first paint with blocks collapsed, time to draw every kernel after unticking) in s."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(url + "/model", wait_until="commit")
        first = tab.evaluate(PAINTED, collapsed_nodes) / 1000.0
        started = tab.evaluate("performance.now()")
        tab.uncheck("#model-options input[value='collapse']")
        expanded = (tab.evaluate(PAINTED, all_nodes) - started) / 1000.0
        context.close()
        browser.close()
    return first, expanded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--blocks", type=int, default=130, help="repeated blocks (4 kernels each)")
    parser.add_argument("--trials", type=int, default=200, help="measured candidates per task")
    parser.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "model.db")
        started = time.perf_counter()
        model = synthetic_model(store, job="deep-bench", blocks=args.blocks, trials=args.trials)
        result["store_build_s"] = round(time.perf_counter() - started, 1)
        kernels = len(model.graph.nodes)
        collapsed_nodes = kernels - 4 * args.blocks + args.blocks
        all_nodes = kernels + args.blocks  # every kernel and a frame per block
        result.update(kernels=kernels, blocks=args.blocks, records=model.records)
        cold, warm, full = [], [], []
        for _ in range(args.repeats):
            seconds, reader = server_time(store, model.job, None, collapse=True)
            cold.append(seconds)
            warm.append(server_time(store, model.job, reader, collapse=True)[0])
            full.append(server_time(store, model.job, reader, collapse=False)[0])
        result["server_cold_s"] = round(statistics.median(cold), 4)
        result["server_warm_s"] = round(statistics.median(warm), 4)
        result["server_expanded_s"] = round(statistics.median(full), 4)
        running = start(create_app(store, live=False))
        try:
            paints = [browser_times(running.url, collapsed_nodes, all_nodes)
                      for _ in range(args.repeats)]  # fmt: skip
        finally:
            running.stop()
        store.close()
    first = [p[0] for p in paints]
    expanded = [p[1] for p in paints]
    result["first_paint_s"] = round(statistics.median(first), 3)
    result["first_paint_all_s"] = [round(v, 3) for v in first]
    result["expand_all_s"] = round(statistics.median(expanded), 3)
    result["expand_all_all_s"] = [round(v, 3) for v in expanded]
    result["cold_over_warm_server"] = round(result["server_cold_s"] / result["server_warm_s"], 1)
    result["expanded_over_collapsed_server"] = round(
        result["server_expanded_s"] / result["server_warm_s"], 1
    )
    result["server_goal_s"], result["first_paint_goal_s"] = 1.0, 2.0
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:34s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
