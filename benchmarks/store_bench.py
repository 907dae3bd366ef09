"""Store throughput: events/s into SQLite, through JSON lines, and the stage-interval query.

Appends N stage and record events (one stage to two records, the mix a tuning run writes:
per task iteration four stages and eight measured candidates, half of them with a ~300-byte
trace, 5% failed) in batches into a fresh SQLite file, then moves the same events through
the JSON-lines path (write a file, ``import_jsonl`` it into another fresh SQLite file), then
times loading the stage-interval DataFrame from the first store, opened afresh read-only.
Event construction is not timed: only storing, writing and importing are. Besides wall-clock
rates it reports appends per CPU second of this process, which other load disturbs less.

    python benchmarks/store_bench.py --events 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from collectors.events import Event, RecordEvent, StageEvent, write_jsonl
from collectors.jsonl import export_jsonl, import_jsonl
from collectors.sqlite_store import SQLiteStore

STAGES = ("select", "build", "profile", "update")
CANDIDATES_PER_ITERATION = 8
JOBS = 4
TASKS_PER_JOB = 12
TRACE_LINE = "  b0, b1 = sch.split(loop=l0, factors=[v2, v3], preserve_unit_iters=True)\n"
TRACE = ("# from tvm.script import tir as T\n" + TRACE_LINE * 4)[:300]


def generate(count: int, *, batch: int, seed: int = 0) -> Iterator[list[Event]]:
    """``count`` stage and record events in batches; the same seed gives the same events."""
    rng = random.Random(seed)
    source = f"run-{rng.getrandbits(48):012x}"
    seq = 0
    t = 1_700_000_000.0
    out: list[Event] = []
    iteration = 0
    while True:
        for job_index in range(JOBS):
            job = f"job-{job_index}"
            for task_index in range(TASKS_PER_JOB):
                task = f"fused_nn_conv2d_add_relu_{task_index}"
                workload = f"{rng.getrandbits(128):032x}"
                events: list[Event] = []
                for stage in STAGES:
                    length = rng.uniform(0.05, 4.0)
                    resource = "device:llvm:0" if stage == "profile" else "client:0"
                    events.append(StageEvent(
                        source=source, seq=seq + len(events), ts=t + length, job=job,
                        task=task, iteration=iteration, stage=stage, resource=resource,
                        start=t, end=t + length,
                        candidates=CANDIDATES_PER_ITERATION if stage == "select" else None,
                    ))  # fmt: skip
                    t += length
                for candidate in range(CANDIDATES_PER_ITERATION):
                    failed = rng.random() < 0.05
                    mean = rng.uniform(1e-4, 5e-3)
                    events.append(RecordEvent(
                        source=source, seq=seq + len(events), ts=t, job=job, task=task,
                        candidate=candidate, iteration=iteration, workload_hash=workload,
                        trace=TRACE if candidate % 2 == 0 else None,
                        run_secs=None if failed else (mean, mean * 1.01, mean * 0.99),
                        error="RuntimeError: Check failed: (ret == 0) is false" if failed else None,
                        error_class="run" if failed else None,
                        predicted=rng.random(), origin="metaschedule",
                    ))  # fmt: skip
                for e in events:
                    out.append(e)
                    seq += 1
                    if len(out) == batch or seq == count:
                        yield out
                        out = []
                    if seq == count:
                        return
        iteration += 1


def timed_batches(count: int, batch: int, sink: Callable[[list[Event]], Any]) -> float:
    """Seconds spent in ``sink`` over all batches (generating them is not counted)."""
    return timed_batches_cpu(count, batch, sink)[0]


def timed_batches_cpu(
    count: int, batch: int, sink: Callable[[list[Event]], Any]
) -> tuple[float, float]:
    """Wall-clock and process CPU seconds spent in ``sink`` over all batches."""
    wall = cpu = 0.0
    for events in generate(count, batch=batch):
        t0, c0 = time.perf_counter(), time.process_time()
        sink(events)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return wall, cpu


def run(count: int, batch: int, folder: Path) -> dict[str, Any]:
    """Measure everything in ``folder``; returns the figures."""
    result: dict[str, Any] = {"events": count, "batch": batch}

    store = SQLiteStore(folder / "direct.db")
    append_s, append_cpu_s = timed_batches_cpu(count, batch, store.append)
    result["sqlite_events_per_s"] = count / append_s
    # CPU seconds of this process: less sensitive to other load than wall time.
    result["sqlite_events_per_cpu_s"] = count / append_cpu_s
    store.close()

    # Queries run on a store opened afresh for viewing, as the dashboard opens a finished run.
    viewer = SQLiteStore(folder / "direct.db", read_only=True)
    t0 = time.perf_counter()
    stages = viewer.stage_intervals()
    result["query_s"] = time.perf_counter() - t0
    result["query_rows"] = len(stages)
    window_start = float(stages["start"].median())
    t0 = time.perf_counter()
    window = viewer.stage_intervals(start=window_start, end=window_start + 600.0)
    result["window_query_s"] = time.perf_counter() - t0
    result["window_rows"] = len(window)
    t0 = time.perf_counter()
    records = viewer.records(job="job-1")
    result["records_query_s"] = time.perf_counter() - t0
    result["records_rows"] = len(records)

    jsonl = folder / "events.jsonl"
    with open(jsonl, "w", encoding="utf-8", newline="\n") as f:
        write_s = timed_batches(count, batch, lambda events: write_jsonl(events, f))
    imported = SQLiteStore(folder / "imported.db")
    t0 = time.perf_counter()
    summary = import_jsonl(jsonl, imported, batch=batch)
    import_s = time.perf_counter() - t0
    assert summary.stored == count, summary
    result["jsonl_events_per_s"] = count / (write_s + import_s)
    result["jsonl_write_events_per_s"] = count / write_s
    result["jsonl_import_events_per_s"] = count / import_s

    t0 = time.perf_counter()
    exported = export_jsonl(viewer, folder / "exported.jsonl")
    result["export_events_per_s"] = exported / (time.perf_counter() - t0)
    assert exported == count

    single = min(count, 20_000)
    one_by_one = SQLiteStore(folder / "single.db")
    result["sqlite_single_event_appends_per_s"] = single / timed_batches(
        single, 1, one_by_one.append
    )
    result["db_mib"] = round((folder / "direct.db").stat().st_size / 2**20, 1)
    for s in (viewer, imported, one_by_one):
        s.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to store")
    parser.add_argument("--batch", type=int, default=1_000, help="events per append")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.events < 1 or args.batch < 1:
        parser.error("--events and --batch must be >= 1")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="store-bench-") as folder:
        result = run(args.events, args.batch, Path(folder))
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ("append into SQLite (batches)", f"{result['sqlite_events_per_s']:,.0f} events/s"),
        ("  per CPU second", f"{result['sqlite_events_per_cpu_s']:,.0f} events/s"),
        ("append into SQLite (one by one)",
         f"{result['sqlite_single_event_appends_per_s']:,.0f} events/s"),
        ("JSONL write + import", f"{result['jsonl_events_per_s']:,.0f} events/s"),
        ("  write only", f"{result['jsonl_write_events_per_s']:,.0f} events/s"),
        ("  import only", f"{result['jsonl_import_events_per_s']:,.0f} events/s"),
        ("export to JSONL", f"{result['export_events_per_s']:,.0f} events/s"),
        (f"stage intervals ({result['query_rows']:,} rows)", f"{result['query_s']:.3f} s"),
        (f"10-minute window ({result['window_rows']:,} rows)",
         f"{result['window_query_s']:.3f} s"),
        (f"records of one job ({result['records_rows']:,} rows)",
         f"{result['records_query_s']:.3f} s"),
        ("database size", f"{result['db_mib']} MiB"),
    ]  # fmt: skip
    print(f"store benchmark: {result['events']:,} events, batches of {result['batch']:,}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
