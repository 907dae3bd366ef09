"""The tuning service's figures: crash resume and control latency, measured on a real
`tuneloom server` (real TVM jobs, real SQLite store, real HTTP API) on 127.0.0.1.

Crash resume: small jobs (2 tasks each, --trials-per-task each, 8 candidates a batch) are
submitted to a server that is then killed with SIGKILL at random moments (0-8 s after the
run stored new records since the last kill) and restarted each time, until the jobs finish.
Printed: kills survived, records lost (stored before a kill, missing or changed after),
records stored twice, trials per job against what it asked, whether each job's MetaSchedule
database agrees with the store, the time from a restart until the API answers, and until
the first stage starts again (the earliest stage event that begins after the restart).

Control latency: with --control-jobs jobs running, pauses, resumes and priority changes
through the API; per request, the time until the scheduler acted (its job event's
timestamp) and the round trip.

    python benchmarks/server_bench.py                # both, ~10 minutes on 2 cores
    python benchmarks/server_bench.py --only control
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.jobs import TERMINAL_STATES, JobSpec  # noqa: E402
from collectors.sqlite_store import SQLiteStore  # noqa: E402
from tests.tuneloom.server_process import ServerProcess  # noqa: E402
from tuneloom.client import ServerClient  # noqa: E402
from tuner.metaschedule.resume import records_by_workload  # noqa: E402

CRASH_JOBS = (
    "matmul:64,dense:1x64x64",
    "matmul:48x64x32,dense:1x128x64",
    "dense:1x96x64,matmul:32",
)


def stored_records(db: Path) -> dict[tuple[str, str, int], float | None]:
    store = SQLiteStore(db, read_only=True)
    try:
        frame = store.records()
    finally:
        store.close()
    return {
        (r.job, r.task, int(r.candidate)): (None if r.mean_secs != r.mean_secs else r.mean_secs)
        for r in frame.itertuples()
    }


def first_stage_after(db: Path, since: float, timeout: float = 120.0) -> float | None:
    """Seconds from ``since`` to the start of the first stage that began after it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        store = SQLiteStore(db, read_only=True)
        try:
            stages = store.stage_intervals(start=since)
        finally:
            store.close()
        later = stages[stages["start"] >= since]
        if len(later):
            return float(later["start"].min()) - since
        time.sleep(0.2)
    return None


def crash_resume(folder: Path, kills: int, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    db = folder / "crash.db"
    server = ServerProcess(db)
    server.start()
    client = ServerClient(server.url, timeout=60)
    jobs = [
        client.submit(JobSpec(workloads=(w,), trials_per_task=trials, batch=8, name=f"crash {i}"))
        for i, w in enumerate(CRASH_JOBS)
    ]
    seen: dict[tuple[str, str, int], float | None] = {}
    answers, firsts, survived = [], [], 0
    try:
        for _ in range(kills):
            # Kill at a random moment after the run made progress since the last kill.
            while len(stored_records(db)) <= len(seen) and not _all_ended(client):
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 8.0))
            if _all_ended(client):
                break
            server.kill()
            survived += 1
            seen.update(stored_records(db))
            restarted = time.time()
            answers.append(server.start())
            first = first_stage_after(db, restarted)
            if first is not None:
                firsts.append(first)
        while not _all_ended(client):
            time.sleep(1.0)
        final_jobs = client.jobs()
    finally:
        server.stop()
    final = stored_records(db)
    lost = sum(1 for key, secs in seen.items() if key not in final or final[key] != secs)
    store = SQLiteStore(db, read_only=True)
    frame = store.records()
    duplicated = int(frame.duplicated(["job", "task", "candidate"]).sum())
    tasks = store.tasks()
    store.close()
    disagree = 0
    for job in jobs:
        by_hash = records_by_workload(folder / "crash-runs" / job)
        for row in tasks[tasks["job"] == job].itertuples():
            in_store = int(((frame["job"] == job) & (frame["task"] == row.task)).sum())
            disagree += in_store != len(by_hash.get(row.workload_hash, []))
    print("crash resume (measured, real TVM jobs on a real server)")
    print(f"  kills survived: {survived}")
    print(f"  records lost: {lost} (of {len(seen)} stored before a kill)")
    print(f"  records stored twice: {duplicated}")
    for info in final_jobs:
        print(f"  {info.id} {info.name}: {info.state}, {info.trials_done}/{info.trials_total} "
              f"trials (asked {2 * trials})")  # fmt: skip
    print(f"  tasks whose database and store disagree: {disagree}")
    if answers:
        print(f"  restart -> API answers: median {statistics.median(answers):.2f} s, "
              f"max {max(answers):.2f} s")  # fmt: skip
    if firsts:
        print(f"  restart -> first stage running again: median {statistics.median(firsts):.2f} s, "
              f"max {max(firsts):.2f} s (goal < 5 s)")  # fmt: skip


def _all_ended(client: ServerClient) -> bool:
    return all(j.state in TERMINAL_STATES for j in client.jobs())


def control_latency(folder: Path, jobs: int, requests: int, seed: int) -> None:
    rng = random.Random(seed)
    db = folder / "control.db"
    server = ServerProcess(db)
    server.start()
    client = ServerClient(server.url, timeout=60)
    try:
        ids = [
            client.submit(JobSpec(workloads=("matmul:32",), trials=10_000, name=f"busy {i}"))
            for i in range(jobs)
        ]
        while sum(j.state == "running" for j in client.jobs()) < jobs:
            time.sleep(0.5)
        acted, round_trips = [], []
        paused: set[str] = set()
        for n in range(requests):
            job = rng.choice(ids)
            sent = time.time()
            if n % 2:
                client.priority(job, rng.randint(-5, 5))
                change = "reprioritized"
            elif job in paused:
                client.resume(job)
                paused.discard(job)
                change = "resumed"
            else:
                client.pause(job)
                paused.add(job)
                change = "paused"
            round_trips.append(time.time() - sent)
            acted.append(_event_ts(db, job, change, sent) - sent)
            time.sleep(rng.uniform(0.05, 0.3))
        for job in ids:
            client.cancel(job)
    finally:
        server.stop()
    print(f"control latency (measured, {jobs} jobs running, {requests} requests)")
    print(f"  until the scheduler acted: p50 {_ms(acted, 50)}, p95 {_ms(acted, 95)} "
          "(goal p95 < 100 ms)")  # fmt: skip
    print(f"  API round trip: p50 {_ms(round_trips, 50)}, p95 {_ms(round_trips, 95)}")


def _event_ts(db: Path, job: str, change: str, since: float) -> float:
    store = SQLiteStore(db, read_only=True)
    try:
        for stored in reversed(store.read(kinds=["job"], job=job)):
            event = stored.event
            if event.change == change and event.ts >= since:  # type: ignore[attr-defined]
                return event.ts
    finally:
        store.close()
    raise RuntimeError(f"no {change} event of {job}")


def _ms(values: list[float], pct: int) -> str:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return f"{ordered[index] * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("crash", "control"))
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--trials-per-task", type=int, default=48)
    parser.add_argument("--control-jobs", type=int, default=8)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuneloom-server-bench-") as tmp:
        if args.only in (None, "crash"):
            crash_resume(Path(tmp), args.kills, args.trials_per_task, args.seed)
        if args.only in (None, "control"):
            control_latency(Path(tmp), args.control_jobs, args.requests, args.seed)


if __name__ == "__main__":
    main()
