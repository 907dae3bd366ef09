"""Scheduler benchmark on simulated jobs (no TVM): makespan, completion times, overhead.

Figures (simulated seconds unless a name ends in ``_wall``):

- ``makespan``: thesis stage times, 1 client + 1 device, N identical jobs (4 tasks x 8
  iterations each): makespan / lower bound per policy, mean over seeds (and the worst seed),
  and mean job completion time relative to ``interleaved``. Goal: interleaved <= 1.05 from
  4 jobs up.
- ``mixed``: the same with mixed-size jobs (1..7 tasks): where the estimate-driven
  ``shortest-remaining`` policy beats ``interleaved`` (mean completion time).
- ``priority``: one priority-5 job among 8: its completion time under ``priority`` and under
  ``interleaved``.
- ``overhead``: the scheduler's own decision time per dispatched stage (policy + bookkeeping,
  drivers excluded), measured with ``time.perf_counter`` in one process, and as a share of the
  run: of the simulated makespan (what the same decisions would cost a real run with those
  stage times), and of the measured wall time of a short wall-clock run whose stages sleep
  the thesis times scaled down 1000x (8.3 ms builds, ...).

Usage: ``python benchmarks/scheduler_sim.py [--json] [--seeds N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from tuner.clock import WallClock
from tuner.scheduler import Scheduler
from tuner.simulation import (
    SIM_DEVICE_POOL,
    SimulatedDriver,
    job_sizes,
    simulate,
    stage_times,
)

POLICIES = ("interleaved", "sequential", "synchronous", "feed-device", "shortest-remaining")
TASKS, ITERATIONS = 4, 8


def makespan_table(jobs_list: list[int], seeds: int, *, mixed: bool) -> dict[str, Any]:
    """Per job count and policy: makespan / lower bound and mean completion vs interleaved."""
    table: dict[str, Any] = {}
    for jobs in jobs_list:
        rows: dict[str, dict[str, float]] = {}
        runs = {
            p: [
                simulate(
                    jobs=jobs,
                    policy=p,
                    seed=seed,
                    tasks=job_sizes(jobs, TASKS, mixed=mixed, seed=seed),
                    iterations=ITERATIONS,
                )
                for seed in range(seeds)
            ]
            for p in POLICIES
        }
        base = [r.mean_completion_s for r in runs["interleaved"]]
        for policy, results in runs.items():
            ratios = [r.ratio for r in results]
            completion = [r.mean_completion_s / b for r, b in zip(results, base, strict=True)]
            rows[policy] = {
                "makespan_over_bound": statistics.fmean(ratios),
                "makespan_over_bound_worst": max(ratios),
                "mean_completion_vs_interleaved": statistics.fmean(completion),
                "client_utilization": statistics.fmean(r.utilization["client:0"] for r in results),
            }
        table[str(jobs)] = rows
    return table


def priority_figure(seeds: int) -> dict[str, float]:
    """Completion time of one priority-5 job among 8, under priority and interleaved."""
    out: dict[str, float] = {}
    priorities = [0] * 7 + [5]  # the urgent job is submitted last
    for policy in ("interleaved", "priority"):
        times = [
            simulate(
                jobs=8, policy=policy, seed=s, tasks=TASKS, iterations=ITERATIONS,
                priorities=priorities,
            ).completion_s["sim-8"]
            for s in range(seeds)
        ]  # fmt: skip
        out[f"{policy}_s"] = statistics.fmean(times)
    out["priority_over_interleaved"] = out["priority_s"] / out["interleaved_s"]
    return out


def sim_overhead(seeds: int) -> dict[str, Any]:
    """Decision time per dispatch on simulated runs of 16 jobs, with and without a store."""
    out: dict[str, Any] = {}
    for policy in ("interleaved", "shortest-remaining"):
        for with_store in (False, True):
            per, share = [], []
            for seed in range(seeds):
                result = simulate(
                    jobs=16, policy=policy, seed=seed, tasks=TASKS, iterations=ITERATIONS,
                    store=MemoryStore() if with_store else None,
                )  # fmt: skip
                per.append(result.decision_s / result.dispatches)
                share.append(result.decision_s / result.makespan_s)
            key = f"{policy}{'_memory_store' if with_store else ''}"
            out[key] = {
                "per_dispatch_ms": 1e3 * statistics.fmean(per),
                "share_of_simulated_makespan": statistics.fmean(share),
            }
    return out


def wall_overhead(scale: float = 1e-3, jobs: int = 4) -> dict[str, Any]:
    """A wall-clock run of sleeping simulated stages (thesis times x ``scale``)."""
    clock = WallClock()
    sink = EventSink(MemoryStore(), now=clock.now, clock="wall")
    scheduler = Scheduler(
        ["client:0", f"{SIM_DEVICE_POOL}:0"], "interleaved", clock=clock, sink=sink
    )
    times = stage_times("thesis").scaled(scale)
    for index in range(jobs):
        tasks = [f"t{t}" for t in range(2)]
        scheduler.submit_job(
            lambda job, i=index, tasks=tasks: SimulatedDriver(
                job, tasks=tasks, iterations=2, times=times, seed=i, sleep=True
            ),
            name=f"wall-{index}",
            target="sim",
            device_pool=SIM_DEVICE_POOL,
            tasks=tasks,
            trials_total=2 * 2 * 64,
        )
    began = time.perf_counter()
    scheduler.run()
    wall = time.perf_counter() - began
    stats = scheduler.stats
    return {
        "stage_time_scale": scale,
        "jobs": jobs,
        "dispatches": stats.dispatches,
        "wall_s": wall,
        "per_dispatch_ms_wall": 1e3 * stats.per_dispatch_s,
        "share_of_wall_time": stats.decision_s / wall,
        "client_utilization_wall": scheduler.busy_time()["client:0"] / wall,
    }


def run(seeds: int) -> dict[str, Any]:
    began = time.perf_counter()
    result = {
        "clock": "sim",
        "note": "simulated seconds (except *_wall figures); thesis stage times, seeded",
        "setup": {
            "clients": 1,
            "devices": 1,
            "tasks_per_job": TASKS,
            "iterations_per_task": ITERATIONS,
            "seeds": seeds,
            "distribution": "thesis (lognormal, cv 0.3)",
        },
        "makespan": makespan_table([2, 4, 16], seeds, mixed=False),
        "mixed": makespan_table([4, 8, 16], seeds, mixed=True),
        "priority": priority_figure(seeds),
        "overhead": {"sim": sim_overhead(max(1, seeds // 2)), "wall": wall_overhead()},
    }
    result["benchmark_wall_s"] = time.perf_counter() - began
    return result


def human(result: dict[str, Any]) -> str:
    lines = ["Scheduler benchmark (simulated; thesis stage times; 1 client + 1 device)"]
    for title, key in (("identical jobs", "makespan"), ("mixed-size jobs", "mixed")):
        lines.append(
            f"\n{title}: makespan / lower bound (worst seed), mean completion vs interleaved"
        )
        for jobs, rows in result[key].items():
            for policy, row in rows.items():
                lines.append(
                    f"  {jobs:>3} jobs  {policy:<19} {row['makespan_over_bound']:6.3f} "
                    f"({row['makespan_over_bound_worst']:.3f})   "
                    f"{row['mean_completion_vs_interleaved']:6.3f}"
                )
    p = result["priority"]
    lines.append(
        f"\npriority-5 job among 8: completes at {p['priority_s']:.0f} s under priority, "
        f"{p['interleaved_s']:.0f} s under interleaved ({p['priority_over_interleaved']:.2f}x)"
    )
    lines.append("\noverhead per dispatch (decision time, drivers excluded)")
    for name, row in result["overhead"]["sim"].items():
        lines.append(
            f"  sim  16 jobs {name:<32} {row['per_dispatch_ms']:.3f} ms  "
            f"({row['share_of_simulated_makespan']:.1e} of the simulated makespan)"
        )
    w = result["overhead"]["wall"]
    lines.append(
        f"  wall {w['jobs']} jobs, stages x{w['stage_time_scale']:g}: "
        f"{w['per_dispatch_ms_wall']:.3f} ms  "
        f"({w['share_of_wall_time']:.2%} of {w['wall_s']:.2f} s wall)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per figure (default 5)")
    args = parser.parse_args(argv)
    if args.seeds <= 0:
        parser.error("--seeds must be positive")
    result = run(args.seeds)
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(human(result))
    return 0 if all(math.isfinite(v) for v in _numbers(result)) else 1


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


if __name__ == "__main__":
    sys.exit(main())
