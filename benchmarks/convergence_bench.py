"""Convergence page at a million records: server time to the figure, and a check that every
series' minimum is drawn.

Builds a SQLite store of ``--records`` measured candidates in ``--jobs`` x ``--tasks`` series
whose latencies are the real TLCBench AutoTVM log's (``../shared/real_logs``): series s replays
workload ``s % 11``'s measurements in file order, failures included, each repetition of them
scaled by a factor drawn from a seeded generator, so the series have different minima. The
records are real measurements rearranged: **synthetic** as a store.

Then, side by side in one run, it times what the Convergence page's figure callback does
(``convergence_view`` on the store's snapshot, then the figure as JSON for the browser, the way
Dash encodes a callback's output):

- ``cold``: a fresh read-only store and ``StoreView`` (reading every record), then the figure;
- ``warm``: the figure from the snapshot already in memory (a filter or option change);
- ``warm_points``: the same with "every measurement" shown.

The minimum check computes each series' true minimum from ``store.records()`` and asserts
that the drawn best-so-far line of that series reaches it (at six significant digits, as
drawn) and points at the record holding it.

    python benchmarks/convergence_bench.py [--records 1000000] [--jobs 10] [--tasks 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dash._utils import to_json  # noqa: E402  (how Dash encodes a callback's output)

from collectors.events import (  # noqa: E402
    JobEvent,
    RecordEvent,
    TaskEvent,
    trusted_constructor,
)
from collectors.importers import detect, iter_events  # noqa: E402
from collectors.importers.driver import context_for  # noqa: E402
from collectors.sqlite_store import SQLiteStore  # noqa: E402
from dashboard.data import StoreView  # noqa: E402
from dashboard.figures import convergence as cf  # noqa: E402
from dashboard.pages.convergence import convergence_view  # noqa: E402

REAL_LOG = "tlcbench_autotvm_platinum-8124m_bert-B1-float32.kernel.log"
BATCH = 20_000


def real_sequences(logs: Path) -> list[list[tuple[float, ...] | None]]:
    """Per workload of the real AutoTVM log, its run times in file order (None: failed)."""
    found = detect(logs / REAL_LOG)
    by_task: dict[str, list[tuple[float, ...] | None]] = {}
    for e in iter_events(found, context_for(found, use_tvm=False)):
        if isinstance(e, RecordEvent):
            by_task.setdefault(e.task, []).append(e.run_secs)
    return list(by_task.values())


def build_store(path: Path, logs: Path, records: int, jobs: int, tasks: int, seed: int) -> int:
    """The benchmark store; returns how many records it holds."""
    sequences = real_sequences(logs)
    rng = np.random.default_rng(seed)
    record = trusted_constructor(RecordEvent)
    series = jobs * tasks
    per_series = [records // series + (s < records % series) for s in range(series)]
    t0 = 1_700_000_000.0
    seq = 0
    with SQLiteStore(path) as store:
        batch: list[Any] = []

        def emit(event: Any) -> None:
            batch.append(event)
            if len(batch) >= BATCH:
                store.append(batch)
                batch.clear()

        for j in range(jobs):
            job = f"job-{j:02d}"
            emit(JobEvent(source="bench", seq=seq, ts=t0, job=job, change="submitted"))
            seq += 1
            for t in range(tasks):
                emit(TaskEvent(source="bench", seq=seq, ts=t0, job=job, task=f"task-{t:02d}",
                               op="dense"))  # fmt: skip
                seq += 1
        # Records interleave the series as a tuning run would: round-robin over them.
        cursors = [0] * series
        scales = [1.0] * series
        for i in range(max(per_series)):
            for s in range(series):
                if i >= per_series[s]:
                    continue
                secs_list = sequences[s % len(sequences)]
                k = cursors[s]
                if k % len(secs_list) == 0:
                    scales[s] = float(rng.uniform(0.7, 1.3))
                cursors[s] = k + 1
                secs = secs_list[k % len(secs_list)]
                run_secs = None if secs is None else tuple(v * scales[s] for v in secs)
                emit(record(
                    source="bench", seq=seq, ts=t0 + i * 2.0 + s * 0.001,
                    job=f"job-{s // tasks:02d}", task=f"task-{s % tasks:02d}", candidate=k,
                    run_secs=run_secs, error=None if secs else "BUILD_TIMEOUT",
                    error_class=None if secs else "timeout", origin="autotvm",
                ))  # fmt: skip
                seq += 1
        store.append(batch)
    return sum(per_series)


def figure_seconds(snapshot: Any, *, show_points: bool) -> tuple[float, Any, int]:
    """Seconds for the figure callback's work: the view, then the figure as JSON."""
    t0 = time.perf_counter()
    view = convergence_view(snapshot, [], [], None, show_points=show_points)
    payload = to_json(view.figure)
    return time.perf_counter() - t0, view, len(payload)


def check_minima(store: SQLiteStore, figure: Any) -> dict[str, Any]:
    """Does each series' drawn best-so-far line reach the series' true minimum?"""
    figure = go.Figure(figure, _validate=False) if isinstance(figure, dict) else figure
    records = store.records()
    valid = records[records["mean_secs"].notna()]
    at = valid.groupby(["job", "task"], sort=False)["mean_secs"].idxmin()
    truth = {key: (valid.loc[i, "mean_secs"] * 1000.0, int(valid.loc[i, "pos"])) for key, i in
             at.items()}  # fmt: skip
    lines = {
        tuple(trace.legendgroup.split(cf.SERIES_SEP)): trace
        for trace in figure.data
        if trace.mode == "lines" and trace.xaxis in (None, "x")
    }
    failures = []
    for key, (best_ms, best_pos) in truth.items():
        trace = lines.get(key)
        drawn = [y for y in (trace.y if trace is not None else []) if y is not None]
        holders = {c[0] for c in (trace.customdata if trace is not None else [])}
        ok = bool(drawn) and min(drawn) == cf.rounded_value(best_ms) and best_pos in holders
        if not ok:
            failures.append({"series": list(key), "true_ms": best_ms, "drawn_min": min(drawn)
                             if drawn else None})  # fmt: skip
    return {"series": len(truth), "ok": len(truth) - len(failures), "failures": failures[:5]}


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    path = folder / "convergence.db"
    t0 = time.perf_counter()
    records = build_store(path, args.logs, args.records, args.jobs, args.tasks, args.seed)
    result: dict[str, Any] = {
        "records": records,
        "series": args.jobs * args.tasks,
        "synthetic": "real AutoTVM latencies rearranged into series",
        "build_seconds": round(time.perf_counter() - t0, 1),
    }

    def cold() -> tuple[float, Any, int]:
        start = time.perf_counter()
        store = SQLiteStore(path, read_only=True)
        try:
            snapshot = StoreView(store).snapshot()
            loaded = time.perf_counter() - start
            seconds, view, size = figure_seconds(snapshot, show_points=False)
        finally:
            store.close()
        return loaded + seconds, (loaded, view), size

    cold_runs = [cold() for _ in range(args.repeat)]
    result["cold_seconds"] = round(statistics.median(r[0] for r in cold_runs), 3)
    result["cold_snapshot_seconds"] = round(statistics.median(r[1][0] for r in cold_runs), 3)
    with SQLiteStore(path, read_only=True) as store:
        snapshot = StoreView(store).snapshot()
        for label, points in (("warm", False), ("warm_points", True)):
            runs = [figure_seconds(snapshot, show_points=points) for _ in range(args.repeat)]
            result[f"{label}_seconds"] = round(statistics.median(r[0] for r in runs), 3)
            result[f"{label}_json_mib"] = round(runs[-1][2] / 2**20, 2)
            figure = runs[-1][1].figure
            traces = figure["data"] if isinstance(figure, dict) else figure.data
            result[f"{label}_points_drawn"] = sum(len(t["x"]) for t in traces)
            result[f"{label}_minimum_check"] = check_minima(store, figure)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=20, help="tasks per job")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logs", type=Path, default=ROOT.parent / "shared" / "real_logs")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if min(args.records, args.jobs, args.tasks, args.repeat) < 1:
        parser.error("--records, --jobs, --tasks and --repeat must be >= 1")
    if not (args.logs / REAL_LOG).is_file():
        parser.error(f"{args.logs / REAL_LOG} not found (use --logs DIR)")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="convergence-bench-") as folder:
        result = run(args, Path(folder))
    failed = any(result[f"{w}_minimum_check"]["failures"] for w in ("warm", "warm_points"))
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 1 if failed else 0


def _print(result: dict[str, Any]) -> None:
    print(
        f"convergence: {result['records']:,} records in {result['series']} series "
        f"(synthetic: {result['synthetic']}; store built in {result['build_seconds']} s)"
    )
    rows: list[tuple[str, Callable[[], str]]] = [
        ("cold (open, read every record, figure, JSON)",
         lambda: f"{result['cold_seconds']} s (reading {result['cold_snapshot_seconds']} s)"),
        ("warm (figure from the snapshot, JSON)",
         lambda: f"{result['warm_seconds']} s, {result['warm_json_mib']} MiB, "
                 f"{result['warm_points_drawn']:,} points"),
        ("warm with every measurement",
         lambda: f"{result['warm_points_seconds']} s, {result['warm_points_json_mib']} MiB, "
                 f"{result['warm_points_points_drawn']:,} points"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"  {name:<46} {value()}")
    for label in ("warm", "warm_points"):
        check = result[f"{label}_minimum_check"]
        failed = f"; FAILED: {check['failures']}" if check["failures"] else ""
        print(
            f"  minimum check ({label}): {check['ok']}/{check['series']} series draw their true "
            f"minimum{failed}"
        )


if __name__ == "__main__":
    sys.exit(main())
