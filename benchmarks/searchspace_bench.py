"""Search-space page at scale: server time and first paint for one task with N candidates.

Builds a SQLite store of N synthetic candidates (the real MetaSchedule matmul traces of
``sample_logs``, 26 distinct instruction lists, with their decisions redrawn:
``tests/dashboard/searchspace_history.py``), then measures side by side:

- the server work for one side of the page: cold (read the records with their traces,
  decode them, fit the importance model, build the figures), warm (the page's cache: no
  record arrived) and after 1 % more records arrived (only those are read and decoded;
  the analysis is redone on all);
- the same cold work done the old way in the same run: every record event read and rebuilt
  (``store.read``), every trace decoded alone (``decisions_of``);
- the first paint in headless chromium: from navigation to the drawn parallel coordinates
  (the canvas's last draw call, then one animation frame: ``data-drawn-at`` on the
  container, set by ``assets/tuneloom_parcoords.js``), on a cold and on a warm server;
- in the same page, a brush redraw: a new range on the latency axis until its lines are
  drawn (one animation frame after the draw calls).

Wall and CPU seconds are both printed: on a loaded machine the CPU time is the steadier.
Run from the repository root:

    PYTHONPATH=. python benchmarks/searchspace_bench.py --candidates 50000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


BOX = "#searchspace-parcoords-a"

# A new brush on the last (latency) axis, over its lower half, then the time until the
# lines it selects are drawn (one animation frame after the draw calls).
BRUSH_JS = """(box) => new Promise((done) => {
  const P = window.tuneloomParcoords;
  const view = P.views[box.slice(1)];
  const last = view.data.axes.length - 1;
  const [lo, hi] = view.data.axes[last].range;
  const before = view.el.dataset.drawn;
  const t0 = performance.now();
  view.brushes = {[last]: [lo, (lo + hi) / 2]};
  P.redraw(box.slice(1));
  const wait = () => view.el.dataset.drawn !== before && P.state(box.slice(1)).settled
    ? done([performance.now() - t0, Number(view.el.dataset.brushed)])
    : requestAnimationFrame(wait);
  wait();
})"""


def brush_redraw(page) -> tuple[float, int]:
    """Seconds from setting a brush on the latency axis to its lines drawn, and how many
    lines it selects."""
    ms, brushed = page.evaluate(BRUSH_JS, BOX)
    return float(ms) / 1e3, int(brushed)


def old_way(store, job: str, task: str) -> int:
    """The cold work as it was: every record event rebuilt, every trace decoded alone."""
    import numpy as np
    import pandas as pd

    from collectors.decisions import decisions_of
    from collectors.decisions_analysis import analyze
    from collectors.decisions_table import Candidates, task_loops

    loops = task_loops(store, job, task)
    rows, secs, pos = [], [], []
    for s in store.read(kinds=["record"], job=job, task=task):
        e = s.event
        if e.mean_secs is not None:
            rows.append(decisions_of(e.trace, e.origin, loops))
            secs.append(e.mean_secs)
            pos.append(s.pos)
    cands = Candidates(pd.DataFrame.from_records(rows), np.asarray(secs), np.asarray(pos))
    analyze(cands)
    return len(cands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=50_000)
    args = parser.parse_args()

    from dashboard_bench import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    from collectors.sqlite_store import SQLiteStore
    from dashboard.app import create_app, parts
    from dashboard.pages import searchspace
    from tests.dashboard.browser import Console, served
    from tests.dashboard.searchspace_history import JOB, TASK, searchspace_history

    n = args.candidates
    more = max(1, n // 100)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.db"
        with SQLiteStore(path) as store:
            searchspace_history(store, n)
        with SQLiteStore(Path(tmp) / "more.db") as extra:
            searchspace_history(extra, n + more, seed=7)
            later = [replace(s.event, seq=10**9 + s.event.seq) for s in extra.read()[-more:]]
        import_s, _, _ = timed(lambda: __import__("xgboost"))  # once per server process
        store = SQLiteStore(path)
        ctx = parts(create_app(store, live=False)).context
        ctx.view.snapshot()
        cold = timed(lambda: searchspace.side_content(ctx, JOB, TASK))
        warm = timed(lambda: searchspace.side_content(ctx, JOB, TASK))
        old = timed(lambda: old_way(store, JOB, TASK))
        store.append(later)
        ctx.view.snapshot()
        grown = timed(lambda: searchspace.side_content(ctx, JOB, TASK))
        url_query = urlencode({"job": JOB, "task": TASK})
        paints: list[float] = []
        brushes: list[tuple[float, int]] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            app = create_app(store, live=False)
            with served(app) as running:
                for _ in range(2):  # the first on a cold server, the second warm
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    console = Console()
                    console.attach(page)
                    page.goto(f"{running.url}/searchspace?{url_query}")
                    page.wait_for_selector(f"{BOX}[data-drawn]", timeout=120_000)
                    shown = page.evaluate(f"() => ({{...document.querySelector('{BOX}').dataset}})")
                    paints.append(float(shown["drawnAt"]) / 1e3)
                    drawn = int(shown["lines"])
                    brushes.append(brush_redraw(page))
                    assert not console.errors, console.errors
                    context.close()
            browser.close()
        store.close()
    print(f"candidates: {n:,} (+{more:,} arriving later); lines drawn: {drawn:,}")
    print(f"xgboost import (once per process): {import_s:.2f} s")
    for label, (wall, cpu, _) in (
        ("server, one side cold", cold),
        ("server, one side warm", warm),
        (f"server, after {more:,} more records", grown),
        ("server, cold the old way (read all events, decode each trace)", old),
    ):
        print(f"{label}: {wall:.3f} s wall, {cpu:.3f} s CPU  ({wall / 1.0:.2f}x the 1 s target)")
    print(f"old way / new way, cold: {old[0] / cold[0]:.1f}x wall, {old[1] / cold[1]:.1f}x CPU")
    print(f"first paint, cold server: {paints[0]:.2f} s  ({paints[0] / 2.0:.2f}x the 2 s target)")
    print(f"first paint, warm server: {paints[1]:.2f} s  ({paints[1] / 2.0:.2f}x the 2 s target)")
    worst, brushed = max(brushes)
    print(f"brush redraw (lower half of the latency axis, {brushed:,} lines): {worst:.3f} s")


if __name__ == "__main__":
    main()
