"""Tuning reuse: a held-back zoo model scheduled from a library of other tuned zoo models,
against full tuning of it, and warm-started tuning against cold tuning.

1. Library: ``tuneloom tune zoo:M --trials-per-task N --library LIB`` for each library model (or
   ``--library DIR`` to start from an existing one; the held-back model must not be in it).
2. Reuse: ``tuneloom reuse zoo:HELD --library LIB --db OUT`` (sources chosen automatically;
   the library's schedules built and profiled as one job's stages, then the model compiled and
   timed against untuned in fresh processes).
3. Full tuning (cold): ``tuneloom tune zoo:HELD --trials-per-task N --no-library``, then
   ``tuneloom evaluate`` with its database.
4. Warm start: ``tuneloom tune zoo:HELD --warm-start LIB --trials-per-task N --no-library``,
   evaluated the same way.

Figures: ``reuse_speedup`` (untuned / reused, one evaluate run), ``full_speedup`` (untuned /
fully tuned, one evaluate run), ``reuse_share_of_full_speedup`` (their ratio),
``reuse_time_share`` (reuse job time / full tuning job time; both the scheduler's wall time of
the job, without model import and process start), and ``warm_to_cold_time``: the time the
warm-started job's weighted end-to-end estimate (sum over tasks of weight x best latency so
far, the dashboard's estimate) took to reach the cold job's final estimate, over the time
the cold job took to reach it. None when the warm job did not reach it within the budget.

    python benchmarks/reuse_bench.py [--library-models resnet,mlp] [--model cnn]
        [--trials 32] [--library-trials 32] [--library DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuneloom.commands.bench import tuneloom_json  # noqa: E402


def tuneloom(*argv: str) -> dict[str, Any]:
    """Run the CLI in a fresh process from the repository; its JSON document."""
    return tuneloom_json(*argv, cwd=ROOT)


def search_args(args: argparse.Namespace, trials: int) -> list[str]:
    population = ["--population", str(args.population)] if args.population else []
    return ["--trials-per-task", str(trials), "--batch", str(args.batch),
            *population, "--seed", str(args.seed)]  # fmt: skip


def build_library(args: argparse.Namespace, library: Path, work: Path) -> list[dict[str, Any]]:
    rows = []
    for name in args.library_models:
        tuned = tuneloom(
            "tune", f"zoo:{name}", *search_args(args, args.library_trials),
            "--db", str(work / f"library-{name}.db"), "--library", str(library), "--json",
        )  # fmt: skip
        (job,) = tuned["jobs"]
        rows.append(
            {"model": f"zoo:{name}", "tuning_s": tuned["wall_s"],
             "schedules_added": job.get("library", {}).get("added")}
        )  # fmt: skip
    return rows


def estimate_curve(store: Path) -> list[tuple[float, float]]:
    """(seconds since the job was submitted, weighted end-to-end estimate in ms) after each
    record of the store's one job, from the first point every tunable task has a latency."""
    from collectors.sqlite_store import SQLiteStore
    from dashboard.figures.convergence import end_to_end

    with SQLiteStore(store, read_only=True) as opened:
        records, tasks, jobs = opened.records(), opened.tasks(), opened.jobs()
    tasks = tasks[tasks["tunable"].astype(bool)]
    records = records[records["task"].isin(set(tasks["task"]))]
    job_t0 = {str(j): float(t) for j, t in zip(jobs["job"], jobs["submitted_ts"], strict=True)}
    e2e = end_to_end(records, tasks, job_t0)
    return [(float(t), float(e)) for t, e in zip(e2e["t"], e2e["estimate_ms"], strict=True)
            if not math.isnan(e)]  # fmt: skip


def stage_seconds(store: str) -> dict[str, float]:
    """Seconds spent per stage kind (select, build, profile, update) in a store."""
    from collectors.sqlite_store import SQLiteStore

    with SQLiteStore(store, read_only=True) as opened:
        stages = opened.stage_intervals()
    spent = (stages["end"] - stages["start"]).groupby(stages["stage"]).sum()
    return {str(kind): round(float(secs), 3) for kind, secs in spent.items()}


def time_to_reach(curve: list[tuple[float, float]], level: float) -> float | None:
    """The first time the estimate is at or below ``level`` (with 0.1 % slack for rounding)."""
    for t, estimate in curve:
        if estimate <= level * 1.001:
            return t
    return None


def tune_held(args: argparse.Namespace, work: Path, name: str, *extra: str) -> dict[str, Any]:
    """Tune the held-back model (cold, or warm with ``extra``) and evaluate it."""
    store = work / f"{name}.db"
    tuned = tuneloom(
        "tune", f"zoo:{args.model}", *search_args(args, args.trials), *extra,
        "--db", str(store), "--no-library", "--json",
    )  # fmt: skip
    (job,) = tuned["jobs"]
    evaluated = tuneloom(
        "evaluate", f"zoo:{args.model}", "--db", job["db_dir"], "--baseline", "none",
        "--repeat", str(args.repeat), "--json",
    )  # fmt: skip
    return {
        "tuning_s": tuned["wall_s"],
        "trials": sum(t["trials"] for t in job["tasks"]),
        "tvm_untuned_ms": evaluated["tvm_untuned_ms"],
        "tvm_tuned_ms": evaluated["tvm_tuned_ms"],
        "speedup": evaluated["tvm_untuned_ms"] / evaluated["tvm_tuned_ms"],
        "outputs_match": evaluated["outputs_match"],
        "curve": estimate_curve(store),
        **({"reuse": job["reuse"]} if "reuse" in job else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library-models", default="resnet,mlp")
    parser.add_argument("--model", default="cnn", help="the held-back zoo model")
    parser.add_argument("--trials", type=int, default=32, help="trials per task, held-back")
    parser.add_argument("--library-trials", type=int, default=32, help="trials per task")
    parser.add_argument("--library", help="an existing library (skips tuning one)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--population", type=int, help="default: tune's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.library_models = [n.strip() for n in args.library_models.split(",") if n.strip()]
    if args.model in args.library_models:
        raise SystemExit(f"the held-back model {args.model} must not be a library model")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tuneloom-reuse-bench-") as scratch:
        work = Path(scratch)
        library = Path(args.library) if args.library else work / "library"
        library_rows = [] if args.library else build_library(args, library, work)
        reused = tuneloom(
            "reuse", f"zoo:{args.model}", "--library", str(library), "--db", str(work / "reuse"),
            "--eval-repeat", str(args.repeat), "--json",
        )  # fmt: skip
        reused["stage_s"] = stage_seconds(reused["store"])
        cold = tune_held(args, work, "cold")
        warm = tune_held(args, work, "warm", "--warm-start", str(library))
    result = summarize(args, library_rows, reused, cold, warm)
    result["bench_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_human(result)


def summarize(
    args: argparse.Namespace,
    library_rows: list[dict[str, Any]],
    reused: dict[str, Any],
    cold: dict[str, Any],
    warm: dict[str, Any],
) -> dict[str, Any]:
    evaluation = reused["evaluate"]
    reuse_speedup = evaluation["speedup"]
    cold_final = cold["curve"][-1][1]
    cold_time = time_to_reach(cold["curve"], cold_final)
    warm_time = time_to_reach(warm["curve"], cold_final)
    reuse_tasks = {
        name: {"best_origin": t["best_origin"], "best_s": t["best_s"],
               "untuned_s": t.get("untuned_s"), "candidates": len(t["reused"])}
        for name, t in reused["tasks"].items()
    }  # fmt: skip
    return {
        "machine": f"{platform.processor() or platform.machine()}, {_cpu_count()} cpus",
        "budget": {
            "held_back_model": f"zoo:{args.model}",
            "library_models": [f"zoo:{m}" for m in args.library_models] if library_rows else None,
            "library": args.library,
            "trials_per_task": args.trials,
            "library_trials_per_task": args.library_trials,
            "batch": args.batch,
            "population": args.population,
        },
        "reuse_speedup": round(reuse_speedup, 3),
        "full_speedup": round(cold["speedup"], 3),
        "reuse_share_of_full_speedup": round(reuse_speedup / cold["speedup"], 3),
        "reuse_time_share": round(reused["reuse_s"] / cold["tuning_s"], 4),
        "warm_to_cold_time": round(warm_time / cold_time, 3) if warm_time and cold_time else None,
        "details": {
            "library": library_rows,
            "sources": reused["sources"],
            "source_scores": reused["source_scores"],
            "reuse_s": reused["reuse_s"],
            "reuse_stage_s": reused["stage_s"],
            "reuse_ms": evaluation["tvm_reused_ms"],
            "reuse_untuned_ms": evaluation["tvm_untuned_ms"],
            "reuse_outputs_match": evaluation["outputs_match"],
            "reuse_tasks": reuse_tasks,
            "cold": {k: v for k, v in cold.items() if k != "curve"},
            "warm": {k: v for k, v in warm.items() if k not in ("curve", "reuse")},
            "warm_sources": warm.get("reuse", {}).get("sources"),
            "cold_final_estimate_ms": round(cold_final, 5),
            "cold_time_to_final_s": cold_time,
            "warm_time_to_cold_final_s": warm_time,
            "warm_final_estimate_ms": round(warm["curve"][-1][1], 5),
            "warm_first_estimate": warm["curve"][0] if warm["curve"] else None,
        },
    }


def print_human(result: dict[str, Any]) -> None:
    details = result["details"]
    budget = result["budget"]
    print(f"held back {budget['held_back_model']}; {budget['trials_per_task']} trials per task; "
          f"{result['machine']}")  # fmt: skip
    for row in details["library"]:
        print(f"  library: {row['model']} tuned in {row['tuning_s']:.0f} s")
    print(f"  sources chosen: {', '.join(details['sources']) or 'none'}")
    print(f"  reuse:  {result['reuse_speedup']:.2f}x over untuned in {details['reuse_s']:.0f} s")
    print(f"  full:   {result['full_speedup']:.2f}x over untuned in "
          f"{details['cold']['tuning_s']:.0f} s")  # fmt: skip
    print(f"  reuse share of the full speedup: {result['reuse_share_of_full_speedup']:.0%} "
          f"in {result['reuse_time_share']:.1%} of the time")  # fmt: skip
    ratio = result["warm_to_cold_time"]
    print(f"  warm start reached the cold final estimate in "
          f"{f'{ratio:.2f} of the cold time' if ratio else 'not within the budget'}")  # fmt: skip


def _cpu_count() -> int:
    from tuner.cpus import available_cpus

    return len(available_cpus())


if __name__ == "__main__":
    main()
