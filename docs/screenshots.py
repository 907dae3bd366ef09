"""Take the dashboard screenshots in docs/ with headless chromium.

The pages show a real tuning run: three small jobs tuned with TVM MetaSchedule on this
machine (one client, one local device, the interleaved policy), served with the scheduler
attached (a fourth job is submitted and paused so the Jobs page shows its controls at work).
The aggregated timeline is a separate **synthetic** store of 100,000 stages (the one of
``benchmarks/dashboard_bench.py``). The warm-vs-cold convergence view is the shipped sample
``tune-cnn-warm-vs-cold`` (a real cold and a real warm-started tuning of the zoo CNN).

    python docs/screenshots.py            # about two minutes on two cores
    python docs/screenshots.py --only reuse
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from collectors.hub import Hub  # noqa: E402
from collectors.jobs import TERMINAL_STATES, JobSpec  # noqa: E402
from collectors.sqlite_store import SQLiteStore  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.server import start  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update"]  # fmt: skip
REUSE_SAMPLE = "tune-cnn-warm-vs-cold"
JOBS = [("matmul:64,dense:4x64x32", "mlp-block"), ("matmul:96", "matmul-96"),
        ("batch_matmul:2x32x32x32", "attention-scores")]  # fmt: skip


def real_run(store: SQLiteStore, runs: Path, trials: int):
    """Tune JOBS for real on this machine; returns the engine (still serving) and hub."""
    from tuner.engine import Engine, EngineSettings
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.settings import SMALL_SEARCH

    hub = Hub()
    settings = EngineSettings(runs_dir=runs, search=SMALL_SEARCH, policy="interleaved",
                              measure=EvalConfig(number=3, repeat=1, min_repeat_ms=10))  # fmt: skip
    engine = Engine(settings, store=store, hub=hub)
    engine.serve()
    for index, (workloads, name) in enumerate(JOBS):
        spec = JobSpec(workloads=(workloads,), trials=trials, batch=8, seed=1, name=name,
                       priority=index)  # fmt: skip
        engine.submit(spec)
    while not all(info.state in TERMINAL_STATES for info in engine.list()):
        time.sleep(0.5)
    waiting = engine.submit(JobSpec(workloads=("matmul:128",), trials=trials, name="queued-next"))
    engine.pause(waiting)
    return engine, hub


def shoot(url: str, out: Path, pages: list[tuple[str, str, str | None, str]]) -> None:
    """Screenshot each (path, file name, element to click first, element to wait for)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 960})
        for path, name, click, ready in pages:
            page.goto(url + path)
            page.wait_for_selector("#live-status.tl-live-on, #live-status:text('offline')")
            if click:
                page.click(click)
            page.wait_for_selector(ready, timeout=120_000)
            page.wait_for_timeout(800)  # let the last redraw and transitions settle
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print("wrote", out / f"{name}.png")
        browser.close()


def shoot_reuse(tmp: Path, out: Path) -> None:
    """The convergence page per job for the warm-vs-cold sample."""
    from tuneloom.samples import load_sample

    store = SQLiteStore(tmp / "reuse.db")
    load_sample(REUSE_SAMPLE, store)
    running = start(create_app(store, live=False, title=f"{REUSE_SAMPLE} (sample)"))
    try:
        shoot(running.url, out, [
            ("/convergence", "convergence_reuse", "#convergence-per >> text=per job",
             "#convergence-summary td >> text=reused from"),
        ])  # fmt: skip
    finally:
        running.stop()
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=32, help="trials per task of each job")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", choices=("reuse",), help="only the warm-vs-cold view")
    args = parser.parse_args()
    if args.only == "reuse":
        with tempfile.TemporaryDirectory() as tmp:
            shoot_reuse(Path(tmp), args.out)
        return 0
    from tuner.metaschedule.inspector import MetaScheduleInspector

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "runs.db")
        started = time.time()
        engine, hub = real_run(store, Path(tmp) / "runs", args.trials)
        print(f"tuned {len(JOBS)} jobs in {time.time() - started:.0f} s")
        app = create_app(store, engine, live=hub, inspector=MetaScheduleInspector(store),
                         title="runs.db (real run)")  # fmt: skip
        running = start(app)
        try:
            shoot(running.url, args.out, [
                ("/", "timeline", None, "#utilization-graph .bars"),
                ("/convergence", "convergence", None, "#convergence-summary td"),
                ("/inspector", "inspector", "#inspector-tab >> text=Scheduled TIR",
                 "#inspector-content .tl-code >> text=T.prim_func"),
                ("/inspector", "inspector_diff", "#inspector-tab >> text=Diff",
                 "#inspector-content .tl-diff"),
                ("/records", "records", None, "#records-table td"),
                ("/jobs", "jobs", None, "#jobs-table td"),
            ])  # fmt: skip
        finally:
            running.stop()
            engine.close()
            store.close()

        shoot_reuse(Path(tmp), args.out)
        from dashboard_bench import big_store

        big, _ = big_store(Path(tmp) / "big.db", 100_000)
        running = start(create_app(big, live=False, title="100,000 synthetic stages"))
        try:
            shoot(running.url, args.out, [("/", "timeline_aggregated", None, ".heatmaplayer")])
        finally:
            running.stop()
            big.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
