"""Search-space page at scale: server time and first paint for one task with N candidates.

Builds a SQLite store of N synthetic candidates (a real MetaSchedule matmul trace with its
decisions redrawn, ``tests/dashboard/searchspace_history.py``), then measures side by side:
the server work for one side of the page cold (read the records, decode every trace, fit
the importance model) and warm (the page's cache, as on a reload while no record arrived),
and the first paint in headless chromium (page load until the parallel coordinates are
drawn) on a cold and on a warm server. Run from the repository root:

    PYTHONPATH=. python benchmarks/searchspace_bench.py --candidates 50000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=50_000)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from collectors.sqlite_store import SQLiteStore
    from dashboard.app import create_app, parts
    from dashboard.pages import searchspace
    from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, Console, served
    from tests.dashboard.searchspace_history import JOB, TASK, searchspace_history

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.db"
        with SQLiteStore(path) as store:
            searchspace_history(store, args.candidates)
        started = time.perf_counter()
        import xgboost  # noqa: F401  - paid once per server process, at the first analysis

        import_s = time.perf_counter() - started
        store = SQLiteStore(path, read_only=True)
        ctx = parts(create_app(store, live=False)).context
        ctx.view.snapshot()
        started = time.perf_counter()
        searchspace.side_content(ctx, JOB, TASK)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        searchspace.side_content(ctx, JOB, TASK)
        warm_s = time.perf_counter() - started
        url_query = urlencode({"job": JOB, "task": TASK})
        paints = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            app = create_app(store, live=False)
            with served(app) as running:
                for _ in range(2):  # the first on a cold server, the second warm
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    console = Console()
                    console.attach(page)
                    started = time.perf_counter()
                    page.goto(f"{running.url}/searchspace?{url_query}")
                    page.wait_for_selector(
                        "#searchspace-parcoords-a[data-drawn]", state="attached", timeout=120_000
                    )
                    paints.append(time.perf_counter() - started)
                    drawn = page.get_attribute("#searchspace-parcoords-a", "data-drawn")
                    assert not console.errors, console.errors
                    page.close()
            browser.close()
        store.close()
    n = args.candidates
    print(f"candidates: {n:,} (lines drawn: {drawn})")
    print(f"xgboost import (once per process): {import_s:.2f} s")
    print(f"server, one side cold: {cold_s:.2f} s  ({cold_s / 1.0:.2f}x the 1 s target)")
    print(f"server, one side warm: {warm_s:.3f} s  ({warm_s / 1.0:.3f}x the 1 s target)")
    print(f"first paint, cold server: {paints[0]:.2f} s  ({paints[0] / 2.0:.2f}x the 2 s target)")
    print(f"first paint, warm server: {paints[1]:.2f} s  ({paints[1] / 2.0:.2f}x the 2 s target)")


if __name__ == "__main__":
    main()
