"""tuneloom against MetaSchedule itself: the same model, target and total trials, tuned by
``ms.relax_integration.tune_relax`` as a TVM user runs it and by ``tuneloom tune``.

For each model (side by side in one run, every latency measured in fresh processes on the
device's cores, outputs compared):

1. ``tune_relax`` with its defaults (gradient task scheduler, 64 trials per iteration,
   ``LocalBuilder``/``LocalRunner``, XGBoost) in a fresh process, ``max_trials_global`` = T,
   on the module after the passes ``compile_relax`` runs (legalization and fusion, as TVM's
   tutorials do first), with the first seed; the wall time of that process.
2. For each of ``--seeds``: ``tune_relax`` at 16 trials per iteration (every task tuned, as
   a user who knows it would run it) with that seed, and ``tuneloom tune zoo:M --trials T
   --seed S`` (its defaults: the whole budget spread by the ``gain`` allocator, tasks side
   by side), each in a fresh process; the wall time of each, and the time into tuneloom's
   process at which each of its records was measured. Both searches swing by 10-50 % from
   seed to seed at these budgets, so one seed says little about which tuner ends faster.
3. Every final database compiled and timed (``tuneloom evaluate``: outputs compared, untuned,
   TFLite and TensorFlow beside them); then all the tuned models timed again in fresh
   processes, alternating between them in ``--rounds`` rounds on the device's cores, so that
   they see the same machine: the final latencies and ratios are those medians (one
   evaluate's figures are kept beside them as ``*_evaluate_ms``), and the figures across
   seeds are their geometric means.
4. Time to reach, for each seed: the first point of tuneloom's run at which the model,
   compiled with the records measured so far and timed, is at least as fast as the
   ``tune_relax`` run's final model (defaults; 16 per iteration with the same seed). The
   point is found from tuneloom's end-to-end estimate (the tasks' ``weight x best`` summed,
   scaled to the measured final latency), then checked by timing the model compiled with the
   database cut there; if it is not yet as fast, later points are timed until one is. Each
   cut is timed by an ``evaluate``, so it is compared with the ``tune_relax`` run's evaluate
   figure, not with the alternating medians. Across seeds the worst share is reported.

    python benchmarks/peer_bench.py [--models cnn,resnet] [--trials-per-task 32]
        [--seeds 0,1,2] [--rounds 5] [--keep DIR] [--json]

T = trials-per-task x the model's tunable tasks (CNN 8 x 32 = 256, ResNet-style 11 x 32 =
352). On two cores each seed takes about 16 minutes for the CNN and 22 for the ResNet-style
model, plus one ``tune_relax`` with its defaults (5-6 minutes) and the timing; run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from models_bench import RECORD_FILE, WORKLOAD_FILE, tuneloom  # noqa: E402

MODELS = ("cnn", "resnet")
REPEAT = 10


def relax_worker(model: str, work_dir: str, trials: int, per_iter: int, seed: int) -> None:
    """``tune_relax`` as a TVM user calls it (in its own process) with ``seed``; ``per_iter``
    0 keeps its default trials per iteration."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.target import Target

    from tuner.models.loaders import load_model
    from tuner.models.tasks import prepare_module

    # TVM's own tutorial flow: the passes compile_relax runs (legalize, fuse), then tune_relax
    # (on a freshly imported module it finds no task).
    target = Target(device_target())
    prepared = prepare_module(load_model(f"zoo:{model}").mod, target)
    options = {"num_trials_per_iter": per_iter} if per_iter else {}
    ms.relax_integration.tune_relax(
        prepared, params={}, target=target, work_dir=work_dir, max_trials_global=trials,
        seed=seed, **options,
    )  # fmt: skip


def device_target() -> dict[str, Any]:
    """The target tuneloom tunes for on this machine (num-cores: the device's cores)."""
    from tuner.cpus import available_cpus, plan_cpus
    from tuner.metaschedule.targets import target_config

    return target_config("llvm", len(plan_cpus(available_cpus(), devices=1).devices[0]))


def timed_run(argv: list[str]) -> tuple[float, str]:
    """Run ``argv`` in a fresh process from the repository root: its wall time and stdout
    (a failure stops the benchmark with the end of its stderr)."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def timed_process(argv: list[str]) -> float:
    return timed_run(argv)[0]


def evaluate(
    model: str, database: Path | None, baselines: str = "none", keep: Path | None = None
) -> dict[str, Any]:
    """``tuneloom evaluate`` of the model with ``database`` (None: untuned); ``keep``: a
    folder to keep the compiled models in (their paths under ``saved``)."""
    argv = ["evaluate", f"zoo:{model}", "--baseline", baselines, "--repeat", str(REPEAT), "--json"]
    if database is not None:
        argv += ["--db", str(database)]
    if keep is not None:
        argv += ["--keep", str(keep)]
    return tuneloom(*argv)


def time_alternating(model: str, folders: dict[str, str], rounds: int) -> dict[str, float]:
    """Median milliseconds of each compiled model, timed in fresh processes on the device's
    cores, one after another in each of ``rounds`` rounds."""
    from tuner.cpus import available_cpus, plan_cpus
    from tuner.models.evaluate import time_saved_models_alternately
    from tuner.models.loaders import load_model

    cores = plan_cpus(available_cpus(), devices=1).devices[0]
    return time_saved_models_alternately(
        folders, load_model(f"zoo:{model}"), rounds=rounds, threads=1, cores=cores, repeat=REPEAT
    )


def cut_database(database: Path, records: int, out: Path) -> Path:
    """The database as it stood after its first ``records`` records (commit order)."""
    out.mkdir(parents=True)
    shutil.copy(database / WORKLOAD_FILE, out / WORKLOAD_FILE)
    lines = (database / RECORD_FILE).read_text().splitlines()
    (out / RECORD_FILE).write_text("\n".join(lines[:records]) + "\n")
    return out


def tuned_workloads(database: Path) -> int:
    """How many workloads of a MetaSchedule database have a measured record."""
    tuned = set()
    for line in (database / RECORD_FILE).read_text().splitlines():
        record = json.loads(line)
        if record[1][1] and max(record[1][1]) < 1e9:
            tuned.add(record[0])
    return len(tuned)


def estimate_curve(store_path: Path) -> list[tuple[float, int, float]]:
    """(record time, records so far, end-to-end estimate in seconds) after each record: the
    sum over tasks of weight x best latency so far (tasks without a measurement yet count
    at their first measured latency: the estimate is only compared late in the run)."""
    from collectors.stores import open_store

    store = open_store(str(store_path), read_only=True)
    try:
        tasks = store.tasks()
        records = store.records()
    finally:
        store.close()
    weight = dict(zip(tasks["task"], tasks["weight"], strict=False))
    first: dict[str, float] = {}
    for task, secs in zip(records["task"], records["mean_secs"], strict=True):
        if math.isfinite(secs) and task not in first:
            first[task] = secs
    best = dict(first)
    out = []
    for count, (ts, task, secs) in enumerate(
        zip(records["ts"], records["task"], records["mean_secs"], strict=True), start=1
    ):
        if math.isfinite(secs) and secs < best.get(task, math.inf):
            best[task] = secs
        out.append((float(ts), count, sum(weight.get(t, 1.0) * b for t, b in best.items())))
    return out


def time_to_reach(
    target_ms: float,
    curve: list[tuple[float, int, float]],
    scale: float,
    started: float,
    time_cut: Any,
) -> dict[str, Any]:
    """When tuneloom's model first ran at ``target_ms`` or faster: the first point whose
    scaled estimate says so, checked by timing the cut database, then every tenth point on
    and the last until one is (``at_s`` None if none)."""
    candidates = [c for c in curve if c[2] * 1e3 * scale <= target_ms]
    start_index = curve.index(candidates[0]) if candidates else len(curve) - 1
    checks = []
    step = max(1, len(curve) // 10)
    for index in sorted({*range(start_index, len(curve), step), len(curve) - 1}):
        ts, count, _ = curve[index]
        latency = time_cut(count)
        checks.append({"records": count, "at_s": round(ts - started, 2), "tvm_ms": latency})
        if latency <= target_ms:
            return {"at_s": round(ts - started, 2), "checks": checks}
    return {"at_s": None, "checks": checks}


def cut_timer(model: str, database: Path, work: Path) -> Any:
    """A function timing (by ``evaluate``, once per cut) the model compiled with the first
    ``count`` records of ``database``."""
    timed: dict[int, float] = {}

    def time_cut(count: int) -> float:
        if count not in timed:
            cut = cut_database(database, count, work / f"cut-{count}")
            timed[count] = evaluate(model, cut)["tvm_tuned_ms"]
        return timed[count]

    return time_cut


def bench_model(
    model: str, per_task: int, work: Path, rounds: int, seeds: list[int]
) -> dict[str, Any]:
    """Every run of ``model``: ``tune_relax`` with its defaults once (the first seed), then
    ``tune_relax`` at 16 per iteration and ``tuneloom tune`` with each seed; every database
    evaluated, the tuned models timed alternately, and each seed's time to reach."""
    from tuner.models.tasks import model_tasks

    _, tasks = model_tasks(f"zoo:{model}", device_target())
    trials = per_task * sum(1 for t in tasks if t.searched)

    def relax(per_iter: int, seed: int, out: Path) -> float:
        worker = [sys.executable, __file__, "--relax-worker", model, str(out)]
        return timed_process([*worker, str(trials), str(per_iter), str(seed)])

    relax_dir = work / f"{model}-tune-relax"
    relax_s = relax(0, seeds[0], relax_dir)
    runs = []
    for seed in seeds:
        relax16_dir = work / f"{model}-tune-relax-16-seed{seed}"
        relax16_s = relax(16, seed, relax16_dir)
        store = work / f"{model}-tuneloom-seed{seed}.db"
        started = time.time()
        tuneloom_s = timed_process(
            [sys.executable, "-m", "tuneloom", "tune", f"zoo:{model}", "--trials", str(trials),
             "--seed", str(seed), "--db", str(store), "--no-library", "--json"],
        )  # fmt: skip
        database = next((store.parent / f"{store.stem}-runs").iterdir())
        runs.append(
            {"seed": seed, "relax16_dir": relax16_dir, "relax16_s": relax16_s, "store": store,
             "database": database, "started": started, "tuneloom_s": tuneloom_s}
        )  # fmt: skip

    untuned = evaluate(model, None, baselines="tflite,tensorflow")
    evaluated = {"tune_relax": evaluate(model, relax_dir, keep=work / f"{model}-compiled-relax")}
    for run in runs:
        seed = run["seed"]
        evaluated[f"tune_relax_16@{seed}"] = evaluate(
            model, run["relax16_dir"], keep=work / f"{model}-compiled-relax-16-seed{seed}"
        )
        evaluated[f"tuneloom@{seed}"] = evaluate(
            model, run["database"], keep=work / f"{model}-compiled-tuneloom-seed{seed}"
        )
    final = time_alternating(
        model, {name: e["saved"]["tuned"] for name, e in evaluated.items()}, rounds
    )

    per_seed = []
    for run in runs:
        seed, database = run["seed"], run["database"]
        ours, relax16 = evaluated[f"tuneloom@{seed}"], evaluated[f"tune_relax_16@{seed}"]
        curve = estimate_curve(run["store"])
        scale = ours["tvm_tuned_ms"] / (curve[-1][2] * 1e3)  # estimate -> measured
        time_cut = cut_timer(model, database, work / f"{model}-cuts-seed{seed}")
        reach = time_to_reach(
            evaluated["tune_relax"]["tvm_tuned_ms"], curve, scale, run["started"], time_cut
        )
        reach16 = time_to_reach(relax16["tvm_tuned_ms"], curve, scale, run["started"], time_cut)
        per_seed.append(
            {
                "seed": seed,
                "tune_relax_16_wall_s": round(run["relax16_s"], 2),
                "tune_relax_16_ms": final[f"tune_relax_16@{seed}"],
                "tune_relax_16_evaluate_ms": relax16["tvm_tuned_ms"],
                "tune_relax_16_tasks_tuned": tuned_workloads(run["relax16_dir"]),
                "tuneloom_wall_s": round(run["tuneloom_s"], 2),
                "tuneloom_ms": final[f"tuneloom@{seed}"],
                "tuneloom_evaluate_ms": ours["tvm_tuned_ms"],
                "final_ratio_16": final[f"tuneloom@{seed}"] / final[f"tune_relax_16@{seed}"],
                "tuneloom_reached_tune_relax_s": reach["at_s"],
                "reach_share_of_tune_relax_wall": (
                    None if reach["at_s"] is None else reach["at_s"] / relax_s
                ),
                "checks": reach["checks"],
                "tuneloom_reached_tune_relax_16_s": reach16["at_s"],
                "reach_share_of_tune_relax_16_wall": (
                    None if reach16["at_s"] is None else reach16["at_s"] / run["relax16_s"]
                ),
                "checks_16": reach16["checks"],
            }
        )

    def across(key: str) -> float:
        return statistics.geometric_mean(row[key] for row in per_seed)

    def worst_share(key: str) -> float | None:
        shares = [row[key] for row in per_seed]
        return None if None in shares else max(shares)

    tuneloom_ms, relax16_ms = across("tuneloom_ms"), across("tune_relax_16_ms")
    return {
        "model": model,
        "trials": trials,
        "tasks": len(tasks),
        "seeds": seeds,
        "rounds": rounds,
        "tune_relax_wall_s": round(relax_s, 2),
        "tune_relax_ms": final["tune_relax"],
        "tune_relax_evaluate_ms": evaluated["tune_relax"]["tvm_tuned_ms"],
        "tune_relax_tasks_tuned": tuned_workloads(relax_dir),
        "tune_relax_16_wall_s": across("tune_relax_16_wall_s"),
        "tune_relax_16_ms": relax16_ms,
        "tuneloom_wall_s": across("tuneloom_wall_s"),
        "tuneloom_ms": tuneloom_ms,
        "tvm_untuned_ms": untuned["tvm_untuned_ms"],
        "tflite_ms": untuned["baselines"].get("tflite"),
        "tensorflow_ms": untuned["baselines"].get("tensorflow"),
        "outputs_match": all(e["outputs_match"] for e in (untuned, *evaluated.values())),
        "final_ratio": tuneloom_ms / final["tune_relax"],
        "final_ratio_16": tuneloom_ms / relax16_ms,
        "seeds_at_least_as_fast_16": sum(1 for r in per_seed if r["final_ratio_16"] <= 1.0),
        "reach_share_of_tune_relax_wall": worst_share("reach_share_of_tune_relax_wall"),
        "reach_share_of_tune_relax_16_wall": worst_share("reach_share_of_tune_relax_16_wall"),
        "per_seed": per_seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--trials-per-task", type=int, default=32)
    parser.add_argument(
        "--seeds", default="0", help="comma-separated seeds, one run of each tuner per seed"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating timing rounds of the tuned models"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="copy every run's databases and stores into this folder"
    )
    parser.add_argument(
        "--relax-worker", nargs=5, metavar=("MODEL", "DIR", "TRIALS", "PER_ITER", "SEED")
    )
    args = parser.parse_args()
    if args.relax_worker:
        model, work_dir, trials, per_iter, seed = args.relax_worker
        relax_worker(model, work_dir, int(trials), int(per_iter), int(seed))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        for model in args.models.split(","):
            rows.append(
                bench_model(model.strip(), args.trials_per_task, Path(tmp), args.rounds, seeds)
            )
        if args.keep is not None:
            shutil.copytree(tmp, args.keep, dirs_exist_ok=True)
    if args.json:
        print(json.dumps({"models": rows}))
        return
    print("tune_relax vs tuneloom tune, same target and total trials (geometric means over seeds)")
    for r in rows:
        print(
            f"  {r['model']:<7} {r['trials']} trials, seeds {r['seeds']}: tune_relax (defaults) "
            f"{r['tune_relax_wall_s']:.0f} s -> {r['tune_relax_ms']:.4f} ms "
            f"({r['tune_relax_tasks_tuned']} of {r['tasks']} tasks tuned) | tune_relax at 16 per "
            f"iteration {r['tune_relax_16_wall_s']:.0f} s -> {r['tune_relax_16_ms']:.4f} ms | "
            f"tuneloom {r['tuneloom_wall_s']:.0f} s -> {r['tuneloom_ms']:.4f} ms "
            f"({r['final_ratio']:.3f}x tune_relax, {r['final_ratio_16']:.3f}x tune_relax at 16, "
            f"at least as fast with {r['seeds_at_least_as_fast_16']} of {len(r['seeds'])} "
            f"seeds) | TFLite {r['tflite_ms']:.3f} ms, TensorFlow {r['tensorflow_ms']:.3f} ms"
        )
        for row in r["per_seed"]:
            print(
                f"          seed {row['seed']}: tune_relax at 16 {row['tune_relax_16_wall_s']:.0f}"
                f" s -> {row['tune_relax_16_ms']:.4f} ms, tuneloom {row['tuneloom_wall_s']:.0f} s"
                f" -> {row['tuneloom_ms']:.4f} ms ({row['final_ratio_16']:.3f}x)"
            )
            for label, suffix in (("tune_relax", ""), ("tune_relax at 16", "_16")):
                reach = row[f"tuneloom_reached_tune_relax{suffix}_s"]
                if reach is None:
                    print(f"            did not reach the final latency of {label}")
                    continue
                share = row[f"reach_share_of_tune_relax{suffix}_wall"]
                print(
                    f"            reached the final latency of {label} after {reach:.0f} s "
                    f"({share:.2f} of its wall; goal <= 0.6)"
                )


if __name__ == "__main__":
    main()
