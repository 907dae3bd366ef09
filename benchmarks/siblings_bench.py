"""Sibling schedules on and off: the same model, trials and seed, tuned by ``tuneloom tune``
with a task's batches also measuring the best schedules of the job's other tasks of its op
class (``--siblings 1``, the default) and without them (``--siblings 0``).

For each model and seed, both runs in fresh processes one after the other (which goes first
alternates with the seed), then every final database compiled and timed (``tuneloom
evaluate``, outputs compared), and all the tuned models timed again in fresh processes,
alternating between them in ``--rounds`` rounds on the device's cores: the final latencies
and ratios are those medians; across seeds, geometric means. From each run's store: how many
trials measured siblings' schedules, and how many tasks hold a best that came from one; the
end-to-end estimate (the tasks' ``weight x best`` summed, scaled to the measured final
latency) after each quarter of the budget; and how soon each run had a model within 5 % of
the slower run's final one (``peer_bench.time_to_reach``: the estimate's point, checked by
compiling and timing the database cut there, then later points until one is).

    python benchmarks/siblings_bench.py [--models resnet,cnn] [--seeds 0,1,2]
        [--trials-per-task 32] [--rounds 5] [--json]

With ``--together``, the models are tuned at once, one job each in one ``tuneloom tune``
(``--trials-per-task`` each), with every running job's tasks as siblings
(``--siblings-from all-jobs``, the default) and with each job's own only (``--siblings-from
job``); then each model's databases are compiled and timed as above, and the sibling
records that came from the other model's tasks are counted.

On two cores each run takes 3-5 minutes (a run of two models together 6-9); run it on an
otherwise idle machine.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_bench import (  # noqa: E402
    cut_timer,
    device_target,
    estimate_curve,
    evaluate,
    time_alternating,
    time_to_reach,
    timed_process,
    timed_run,
)

ARMS = {"siblings": (), "alone": ("--siblings", "0")}  # name: extra tune options
SCOPES = {"all-jobs": (), "job": ("--siblings-from", "job")}  # with --together
QUARTERS = (0.25, 0.5, 0.75, 1.0)
REACH_MARGIN = 1.05  # time to reach: within this of the slower run's final latency


def sibling_counts(store_path: Path, job: str | None = None) -> dict[str, int]:
    """Read from the store's task events (``sibling=`` detail lines), of one ``job`` or all:
    records that measured a sibling's schedule (``records``), those from another job's
    tasks (``from_other_jobs``), and tasks whose best came from a sibling (``bests``)."""
    from collectors.reuse import best_origins, reuse_index
    from collectors.stores import open_store

    store = open_store(str(store_path), read_only=True)
    try:
        tasks, records = store.tasks(), store.records()
    finally:
        store.close()
    if job is not None:
        tasks, records = tasks[tasks["job"] == job], records[records["job"] == job]
    index = reuse_index(tasks)
    siblings = [s for found in index.values() for s in found.values() if s.sibling]
    origins = best_origins(records, index)
    return {
        "records": len(siblings),
        "from_other_jobs": sum(1 for s in siblings if "/" in s.source),
        "bests": int(origins["origin"].str.startswith("from sibling").sum()),
    }


def estimate_at(store_path: Path, final_ms: float) -> list[float]:
    """The end-to-end estimate (ms, scaled so that the last point is ``final_ms``) after each
    of ``QUARTERS`` of the run's records."""
    curve = estimate_curve(store_path)
    scale = final_ms / (curve[-1][2] * 1e3)
    points = []
    for share in QUARTERS:
        index = max(0, min(len(curve) - 1, round(share * len(curve)) - 1))
        points.append(curve[index][2] * 1e3 * scale)
    return points


def evaluate_and_time(
    model: str, runs: dict[str, dict[str, Any]], rounds: int, work: Path
) -> tuple[dict[str, Any], dict[str, float]]:
    """Every run's database compiled and checked (``tuneloom evaluate``), then the tuned
    models timed alternately: the evaluations and the median milliseconds, by run name."""
    evaluated = {
        name: evaluate(model, run["database"], keep=work / f"{model}-compiled-{name}")
        for name, run in runs.items()
    }
    final = time_alternating(
        model, {name: e["saved"]["tuned"] for name, e in evaluated.items()}, rounds
    )
    return evaluated, final


def bench_model(model: str, per_task: int, seeds: list[int], rounds: int, work: Path) -> dict:
    from tuner.models.tasks import model_tasks

    _, tasks = model_tasks(f"zoo:{model}", device_target())
    trials = per_task * sum(1 for t in tasks if t.searched)
    runs: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        order = list(ARMS) if seed % 2 == 0 else list(reversed(ARMS))
        for arm in order:
            store = work / f"{model}-{arm}-seed{seed}.db"
            started = time.time()
            wall = timed_process(
                [sys.executable, "-m", "tuneloom", "tune", f"zoo:{model}", "--trials",
                 str(trials), "--seed", str(seed), "--db", str(store), "--no-library",
                 *ARMS[arm], "--json"]
            )  # fmt: skip
            database = next((store.parent / f"{store.stem}-runs").iterdir())
            runs[f"{arm}@{seed}"] = {
                "store": store, "database": database, "wall_s": wall, "started": started
            }  # fmt: skip
    evaluated, final = evaluate_and_time(model, runs, rounds, work)
    per_seed = []
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed}
        # Within 5 % of the slower run's final latency (by evaluate, as each cut is timed):
        # when each run got there.
        slower = max(evaluated[f"{arm}@{seed}"]["tvm_tuned_ms"] for arm in ARMS)
        row["reach_target_ms"] = REACH_MARGIN * slower
        for arm in ARMS:
            name = f"{arm}@{seed}"
            run = runs[name]
            counts = sibling_counts(run["store"])
            curve = estimate_curve(run["store"])
            scale = evaluated[name]["tvm_tuned_ms"] / (curve[-1][2] * 1e3)
            time_cut = cut_timer(model, run["database"], work / f"{model}-cuts-{arm}-seed{seed}")
            reach = time_to_reach(row["reach_target_ms"], curve, scale, run["started"], time_cut)
            row[arm] = {
                "wall_s": round(runs[name]["wall_s"], 1),
                "ms": final[name],
                "evaluate_ms": evaluated[name]["tvm_tuned_ms"],
                "estimate_ms_at_quarters": [
                    round(v, 4) for v in estimate_at(runs[name]["store"], final[name])
                ],
                "sibling_records": counts["records"],
                "tasks_best_from_sibling": counts["bests"],
                "reached_s": reach["at_s"],
                "reach_checks": reach["checks"],
            }
        row["ratio"] = row["siblings"]["ms"] / row["alone"]["ms"]
        per_seed.append(row)

    def across(arm: str, key: str) -> float:
        return statistics.geometric_mean(row[arm][key] for row in per_seed)

    reach = [
        (row["siblings"]["reached_s"], row["alone"]["reached_s"])
        for row in per_seed
        if None not in (row["siblings"]["reached_s"], row["alone"]["reached_s"])
    ]
    return {
        "model": model,
        "trials": trials,
        "seeds": seeds,
        "rounds": rounds,
        "siblings_ms": across("siblings", "ms"),
        "alone_ms": across("alone", "ms"),
        "ratio": across("siblings", "ms") / across("alone", "ms"),
        "siblings_wall_s": across("siblings", "wall_s"),
        "alone_wall_s": across("alone", "wall_s"),
        "reach_ratio": statistics.geometric_mean(a / b for a, b in reach) if reach else None,
        "outputs_match": all(e["outputs_match"] for e in evaluated.values()),
        "per_seed": per_seed,
    }


def bench_together(
    models: list[str], per_task: int, seeds: list[int], rounds: int, work: Path
) -> dict:
    """The models tuned at once, siblings from every running job's tasks against each
    job's own; per model and seed, the final latencies (timed alternately) and ratios."""
    runs: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        order = list(SCOPES) if seed % 2 == 0 else list(reversed(SCOPES))
        for scope in order:
            store = work / f"together-{scope}-seed{seed}.db"
            wall, out = timed_run(
                [sys.executable, "-m", "tuneloom", "tune", *(f"zoo:{m}" for m in models),
                 "--trials-per-task", str(per_task), "--seed", str(seed), "--db", str(store),
                 "--no-library", *SCOPES[scope], "--json"]
            )  # fmt: skip
            jobs = {job["model"].removeprefix("zoo:"): job for job in json.loads(out)["jobs"]}
            for model in models:
                job = jobs[model]
                runs[f"{model}:{scope}@{seed}"] = {
                    "store": store, "job": job["id"], "database": Path(job["db_dir"]),
                    "wall_s": wall,
                }  # fmt: skip
    per_model = []
    for model in models:
        mine = {name: run for name, run in runs.items() if name.startswith(f"{model}:")}
        evaluated, final = evaluate_and_time(model, mine, rounds, work)
        per_seed = []
        for seed in seeds:
            row: dict[str, Any] = {"seed": seed}
            for scope in SCOPES:
                name = f"{model}:{scope}@{seed}"
                counts = sibling_counts(mine[name]["store"], mine[name]["job"])
                row[scope] = {
                    "wall_s": round(mine[name]["wall_s"], 1),
                    "ms": final[name],
                    "evaluate_ms": evaluated[name]["tvm_tuned_ms"],
                    "sibling_records": counts["records"],
                    "from_other_jobs": counts["from_other_jobs"],
                    "tasks_best_from_sibling": counts["bests"],
                }
            row["ratio"] = row["all-jobs"]["ms"] / row["job"]["ms"]
            per_seed.append(row)
        shared, own = (
            statistics.geometric_mean(row[scope]["ms"] for row in per_seed) for scope in SCOPES
        )
        per_model.append({
            "model": model, "shared_ms": shared, "own_ms": own, "ratio": shared / own,
            "outputs_match": all(e["outputs_match"] for e in evaluated.values()),
            "per_seed": per_seed,
        })  # fmt: skip
    return {"models": models, "trials_per_task": per_task, "seeds": seeds, "rounds": rounds,
            "per_model": per_model}  # fmt: skip


def print_together(result: dict) -> None:
    print(
        f"{' + '.join(f'zoo:{m}' for m in result['models'])} tuned together, "
        f"{result['trials_per_task']} trials per task, seeds {result['seeds']}"
    )
    for r in result["per_model"]:
        print(f"  zoo:{r['model']}")
        for row in r["per_seed"]:
            shared, own = row["all-jobs"], row["job"]
            print(
                f"    seed {row['seed']}: siblings from all jobs {shared['ms']:.4f} ms "
                f"({shared['sibling_records']} sibling records, {shared['from_other_jobs']} "
                f"from the other job, {shared['tasks_best_from_sibling']} bests from one; run "
                f"{shared['wall_s']:.0f} s), from its own job {own['ms']:.4f} ms "
                f"({own['sibling_records']} sibling records; run {own['wall_s']:.0f} s): "
                f"ratio {row['ratio']:.3f}"
            )
        print(
            f"    geometric mean: all jobs {r['shared_ms']:.4f} ms, own job {r['own_ms']:.4f} "
            f"ms: ratio {r['ratio']:.3f}; outputs match: {r['outputs_match']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet,cnn")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials-per-task", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--together",
        action="store_true",
        help="tune the models at once: siblings from every running job against each job's own",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.together:
        with tempfile.TemporaryDirectory(prefix="siblings-bench-") as tmp:
            together = bench_together(models, args.trials_per_task, seeds, args.rounds, Path(tmp))
        if args.json:
            print(json.dumps(together))
        else:
            print_together(together)
        return
    with tempfile.TemporaryDirectory(prefix="siblings-bench-") as tmp:
        results = [
            bench_model(m, args.trials_per_task, seeds, args.rounds, Path(tmp)) for m in models
        ]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(f"zoo:{r['model']}, {r['trials']} trials, seeds {r['seeds']}")
        for row in r["per_seed"]:
            on, off = row["siblings"], row["alone"]
            print(
                f"  seed {row['seed']}: with siblings {on['wall_s']:.0f} s -> {on['ms']:.4f} ms "
                f"({on['sibling_records']} sibling records, {on['tasks_best_from_sibling']} "
                f"bests from one); without {off['wall_s']:.0f} s -> {off['ms']:.4f} ms; "
                f"ratio {row['ratio']:.3f}"
            )
            print(
                f"    estimate after each quarter of the budget, ms: with "
                f"{on['estimate_ms_at_quarters']}, without {off['estimate_ms_at_quarters']}"
            )
            print(
                f"    within 5 % of the slower run's final latency "
                f"({row['reach_target_ms']:.4f} ms by evaluate) after: with {on['reached_s']} s, "
                f"without {off['reached_s']} s"
            )
        print(
            f"  geometric mean: with siblings {r['siblings_ms']:.4f} ms in "
            f"{r['siblings_wall_s']:.0f} s, without {r['alone_ms']:.4f} ms in "
            f"{r['alone_wall_s']:.0f} s: ratio {r['ratio']:.3f}; time to within 5 % of the "
            f"slower final latency, with / without: {r['reach_ratio']}; outputs match: "
            f"{r['outputs_match']}"
        )


if __name__ == "__main__":
    main()
