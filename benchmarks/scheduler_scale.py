"""Scheduler at scale, **simulated**: the curve for 10 / 100 / 1000 jobs on 64 clients and 16
devices (thesis stage times, 4 tasks x 8 iterations per job).

Per job count and policy: the wall seconds of the whole simulated run (one process, measured),
the stages dispatched, the scheduler's own decision time per dispatch (policy and
bookkeeping, drivers excluded; ``time.perf_counter``) and makespan / lower bound (simulated).
``interleaved`` and ``feed-device`` keep their queue incrementally; the other policies decide
from every ready stage on every pass and run at 10 and 100 jobs only.

Side by side in the same run: ``interleaved`` decided the straightforward way (the policy's
``assign`` on every ready stage, every pass) at 10, 100 and 200 jobs, with the speed-up and a
check that both made the same decisions (equal makespans); the 1000-job run with 16 devices of
two kinds (``fast:8:1.0,slow:8:2.5``); and ``tuneloom simulate --jobs 1000 --clients 64
--devices 16 --json`` as a command, with and without ``--db`` (a SQLite store), timed from
outside (interpreter start included).

Usage: ``python benchmarks/scheduler_scale.py [--json] [--jobs 10,100,1000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.policies import Interleaved  # noqa: E402
from tuner.simulation import parse_device_kinds, simulate  # noqa: E402

CLIENTS, DEVICES, TASKS, ITERATIONS = 64, 16, 4, 8
FAST = ("interleaved", "feed-device")
OTHERS = ("sequential", "synchronous", "priority", "shortest-remaining")
KINDS = "fast:8:1.0,slow:8:2.5"


class StraightforwardInterleaved(Interleaved):
    """``interleaved`` decided by ``assign`` over every ready stage on every pass."""

    static_order = False


def one(jobs: int, policy: Any, **kwargs: Any) -> dict[str, Any]:
    """One simulated run under ``policy`` (a name or a policy object), timed."""
    began = time.perf_counter()
    result = simulate(
        jobs=jobs, clients=CLIENTS, devices=DEVICES, tasks=TASKS, iterations=ITERATIONS,
        policy=policy, **kwargs,
    )  # fmt: skip
    wall = time.perf_counter() - began
    return {
        "wall_s": round(wall, 3),
        "dispatches": result.dispatches,
        "per_dispatch_ms": round(1e3 * result.per_dispatch_s, 4),
        "makespan_s": result.makespan_s,
        "makespan_over_lower_bound": round(result.ratio, 4),
    }


def command(jobs: int, db: Path | None) -> dict[str, Any]:
    """``tuneloom simulate`` as a user runs it, timed from outside."""
    args = [sys.executable, "-m", "tuneloom", "simulate", "--jobs", str(jobs)]
    args += ["--clients", str(CLIENTS), "--devices", str(DEVICES), "--json"]
    if db is not None:
        args += ["--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=True)
    wall = time.perf_counter() - began
    result = json.loads(out.stdout)
    row = {
        "wall_s": round(wall, 2),
        "makespan_over_lower_bound": result["makespan_over_lower_bound"],
    }
    if db is not None:
        row["db_mb"] = round(db.stat().st_size / 2**20, 1)
    return row


def run(job_counts: list[int]) -> dict[str, Any]:
    began = time.perf_counter()
    curve: dict[str, dict[str, Any]] = {}
    for jobs in job_counts:
        rows = {p: one(jobs, p) for p in FAST}
        if jobs <= 100:
            rows.update({p: one(jobs, p) for p in OTHERS})
        curve[str(jobs)] = rows
    straight: dict[str, Any] = {}
    for jobs in (10, 100, 200):
        plain = one(jobs, StraightforwardInterleaved())
        kept = curve.get(str(jobs), {}).get("interleaved") or one(jobs, "interleaved")
        straight[str(jobs)] = {
            "straightforward_wall_s": plain["wall_s"],
            "kept_queue_wall_s": kept["wall_s"],
            "speedup": round(plain["wall_s"] / kept["wall_s"], 1),
            "straightforward_per_dispatch_ms": plain["per_dispatch_ms"],
            "kept_queue_per_dispatch_ms": kept["per_dispatch_ms"],
            "same_decisions": plain["makespan_s"] == kept["makespan_s"],
        }
    biggest = max(job_counts)
    kinds = one(biggest, "interleaved", device_kinds=parse_device_kinds(KINDS))
    with tempfile.TemporaryDirectory() as tmp:
        cli = {
            "no_store": command(biggest, None),
            "sqlite_store": command(biggest, Path(tmp) / "sim.db"),
        }
    return {
        "clock": "sim",
        "note": "simulated runs; wall_s and per_dispatch_ms are measured on this machine",
        "setup": {
            "clients": CLIENTS,
            "devices": DEVICES,
            "tasks_per_job": TASKS,
            "iterations_per_task": ITERATIONS,
            "distribution": "thesis (lognormal, cv 0.3), seed 0",
        },
        "curve": curve,
        "straightforward_vs_kept_queue": straight,
        f"device_kinds_{biggest}_jobs": {"kinds": KINDS, **kinds},
        f"command_{biggest}_jobs": cli,
        "benchmark_wall_s": round(time.perf_counter() - began, 1),
    }


def human(result: dict[str, Any]) -> str:
    lines = [
        "Scheduler at scale (simulated; 64 clients + 16 devices; thesis stage times; "
        "wall and per-dispatch times measured)",
        f"{'jobs':>5} {'policy':<19} {'wall s':>8} {'dispatches':>10} {'ms/dispatch':>11} "
        f"{'makespan/bound':>14}",
    ]
    for jobs, rows in result["curve"].items():
        for policy, row in rows.items():
            lines.append(
                f"{jobs:>5} {policy:<19} {row['wall_s']:8.2f} {row['dispatches']:10d} "
                f"{row['per_dispatch_ms']:11.4f} {row['makespan_over_lower_bound']:14.4f}"
            )
    lines.append("\ninterleaved, straightforward (assign over every ready stage) vs kept queue")
    for jobs, row in result["straightforward_vs_kept_queue"].items():
        lines.append(
            f"{jobs:>5} jobs: {row['straightforward_wall_s']:.2f} s vs "
            f"{row['kept_queue_wall_s']:.2f} s ({row['speedup']}x); "
            f"same decisions: {row['same_decisions']}"
        )
    for key, row in result.items():
        if key.startswith("device_kinds_"):
            lines.append(
                f"\n{key.replace('_', ' ')} ({row['kinds']}): {row['wall_s']:.2f} s wall, "
                f"{row['per_dispatch_ms']:.4f} ms/dispatch, makespan/bound "
                f"{row['makespan_over_lower_bound']:.4f}"
            )
        if key.startswith("command_"):
            lines.append(
                f"tuneloom simulate, {key.split('_')[1]} jobs: {row['no_store']['wall_s']} s; "
                f"with --db {row['sqlite_store']['wall_s']} s ({row['sqlite_store']['db_mb']} MB)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jobs", default="10,100,1000", help="job counts (default 10,100,1000)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.jobs.split(",")]
    if not counts or min(counts) <= 0:
        parser.error("--jobs takes positive integers, e.g. 10,100,1000")
    result = run(counts)
    print(json.dumps(result) if args.json else human(result))
    numbers = [
        row["makespan_over_lower_bound"]
        for rows in result["curve"].values()
        for row in rows.values()
    ]
    return 0 if all(math.isfinite(n) for n in numbers) else 1


if __name__ == "__main__":
    sys.exit(main())
