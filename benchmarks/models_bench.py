"""Zoo models: TVM tuned vs TVM untuned vs TensorFlow vs TFLite, and one model's end-to-end
latency against tuning time.

For each model it runs ``tuneloom tune zoo:NAME --trials T --allocator A`` (a fresh process,
its own store; T = N trials per tunable task, spread by the allocator), then ``tuneloom
evaluate zoo:NAME --db STORE`` (every latency measured in its own fresh process, same inputs
and threads, median of repeats; outputs compared). The speedup is the
faster of TensorFlow and TFLite divided by TVM tuned, from the same evaluate run.

For ``--curve MODEL`` it then rebuilds that model's database as it stood at several points of
its tuning (the first k records, in commit order, with the tuning time at which the k-th was
measured, from the run's store) and times the model compiled with each, giving the
end-to-end latency-vs-tuning-time curve. ``--allocators gain,uniform`` tunes each model once
per allocator (same total trials, side by side in one run) to compare where the budget went.

    python benchmarks/models_bench.py --trials 32 [--models cnn,mobilenet,resnet,mlp]
        [--allocators gain,uniform] [--curve cnn --points 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.importers.ms_database import RECORD_FILE, WORKLOAD_FILE  # noqa: E402
from tuneloom.commands.bench import tuneloom_json  # noqa: E402

ZOO = ("cnn", "mobilenet", "resnet", "mlp")


def tuneloom(*argv: str) -> dict[str, Any]:
    """Run the CLI in a fresh process from the repository; its JSON document."""
    return tuneloom_json(*argv, cwd=ROOT)


def bench_model(
    name: str, args: argparse.Namespace, work: Path, allocator: str = "gain"
) -> dict[str, Any]:
    from tuner.metaschedule.targets import target_config
    from tuner.models.tasks import model_tasks

    _, tasks = model_tasks(f"zoo:{name}", target_config("llvm", 1))
    budget = args.trials * sum(1 for t in tasks if t.searched)
    store = work / f"{name}-{allocator}.db"
    tuned = tuneloom(
        "tune", f"zoo:{name}", "--trials", str(budget), "--allocator", allocator,
        "--batch", str(args.batch), "--db", str(store), "--no-library", "--json",
        *(["--population", str(args.population)] if args.population else []),
    )  # fmt: skip
    job = tuned["jobs"][0]
    evaluated = tuneloom(
        "evaluate", f"zoo:{name}", "--db", str(store), "--repeat", str(args.repeat), "--json"
    )
    baselines = evaluated["baselines"]
    framework_ms = min(baselines.values()) if baselines else None
    return {
        "model": name,
        "allocator": allocator,
        "trials_per_task": {t["name"]: t["trials"] for t in job["tasks"]},
        "tasks": len(job["tasks"]),
        "tuned_tasks": sum(1 for t in job["tasks"] if t["trials"]),
        "trials_measured": sum(t["trials"] for t in job["tasks"]),
        "tuning_s": tuned["wall_s"],
        "tvm_untuned_ms": evaluated["tvm_untuned_ms"],
        "tvm_tuned_ms": evaluated["tvm_tuned_ms"],
        "tensorflow_ms": baselines.get("tensorflow"),
        "tflite_ms": baselines.get("tflite"),
        "speedup_over_faster_framework": (
            framework_ms / evaluated["tvm_tuned_ms"] if framework_ms else None
        ),
        "speedup_over_untuned": evaluated["speedup_over_untuned"],
        "max_abs_error": evaluated["max_abs_error"],
        "outputs_match": evaluated["outputs_match"],
        "store": str(store),
        "database": job["db_dir"],
    }


def curve(row: dict[str, Any], points: int, repeat: int, work: Path) -> list[dict[str, Any]]:
    """Tuned latency of the model compiled with the first k records, for ``points`` values of
    k spread over the run, each with the tuning time when the k-th record was measured."""
    from collectors.stores import open_store

    store = open_store(row["store"], read_only=True)
    try:
        stages = store.stage_intervals()
        records = store.records()
    finally:
        store.close()
    started = float(stages["start"].min())
    # Record events are emitted by the update stage in commit order, one per record line.
    record_times = [float(t) - started for t in records["ts"]]
    lines = (Path(row["database"]) / RECORD_FILE).read_text().splitlines()
    if len(lines) != len(record_times):
        raise SystemExit(f"{len(lines)} database records but {len(record_times)} record events")
    result = [{"tuning_s": 0.0, "records": 0, "tvm_ms": row["tvm_untuned_ms"]}]
    for step in range(1, points + 1):
        count = max(1, round(len(lines) * step / points))
        folder = work / f"curve-{row['model']}-{count}"
        folder.mkdir()
        shutil.copy(Path(row["database"]) / WORKLOAD_FILE, folder / WORKLOAD_FILE)
        (folder / RECORD_FILE).write_text("\n".join(lines[:count]) + "\n")
        evaluated = tuneloom(
            "evaluate", f"zoo:{row['model']}", "--db", str(folder), "--baseline", "none",
            "--repeat", str(repeat), "--json",
        )  # fmt: skip
        result.append(
            {
                "tuning_s": round(record_times[count - 1], 2),
                "records": count,
                "tvm_ms": evaluated["tvm_tuned_ms"],
            }
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO))
    parser.add_argument(
        "--trials", type=int, default=32, help="budget: this many trials per tunable task"
    )
    parser.add_argument("--allocators", default="gain", help="comma-separated, e.g. gain,uniform")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--population", type=int, help="default: tune's")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--curve", default=None, help="model for the latency-vs-time curve")
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    with tempfile.TemporaryDirectory(prefix="tuneloom-models-bench-") as scratch:
        work = Path(scratch)
        allocators = [a.strip() for a in args.allocators.split(",") if a.strip()]
        rows = [bench_model(name, args, work, a) for name in names for a in allocators]
        curves = {}
        if args.curve:
            row = next((r for r in rows if r["model"] == args.curve), None)
            if row is None:
                row = bench_model(args.curve, args, work)
            curves[args.curve] = curve(row, args.points, args.repeat, work)
    for row in rows:
        row.pop("store"), row.pop("database")
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {len(_cpus())} cpus",
        "budget": {
            "trials_per_task": args.trials,
            "batch": args.batch,
            "population": args.population,
        },
        "models": rows,
        "curves": curves,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"budget: {args.trials} trials per task, batch {args.batch}; {result['machine']}")
    header = (
        f"{'model':<10} {'alloc':<8} {'tasks':>5} {'tune s':>7} {'untuned':>9} {'tuned':>8} "
        f"{'TF':>8} {'TFLite':>8} {'vs faster fw':>12} {'err':>8}"
    )
    print(header)
    for r in rows:
        speedup = r["speedup_over_faster_framework"]
        print(
            f"{r['model']:<10} {r['allocator']:<8} {r['tuned_tasks']:>2}/{r['tasks']:<2} "
            f"{r['tuning_s']:>7.1f} "
            f"{r['tvm_untuned_ms']:>9.3f} {r['tvm_tuned_ms']:>8.3f} "
            f"{_ms(r['tensorflow_ms'])} {_ms(r['tflite_ms'])} "
            f"{(f'{speedup:.2f}x' if speedup else '-'):>12} {r['max_abs_error']:>8.1e}"
        )
    for name, points in curves.items():
        print(f"\nend-to-end latency of {name} vs tuning time:")
        for p in points:
            print(f"  {p['tuning_s']:>8.1f} s  {p['records']:>5} records  {p['tvm_ms']:.3f} ms")


def _ms(value: float | None) -> str:
    return f"{value:>8.3f}" if value is not None else f"{'-':>8}"


def _cpus() -> list[int]:
    from tuner.cpus import available_cpus

    return list(available_cpus())


if __name__ == "__main__":
    main()
