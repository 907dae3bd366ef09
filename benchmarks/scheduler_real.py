"""Real TVM figures for the scheduler: speed, measurement fidelity, search quality, overhead.

Runs on this machine with the llvm target, everything measured (nothing simulated):

1. Wall time of four small jobs under ``interleaved``, ``feed-device`` (``tune``'s default:
   builds first) and ``sequential`` (``tuneloom tune``, same workloads, trials and seeds), and
   their ratios to ``sequential`` (each ``--lend off``); and ``interleaved`` with the idle
   device lent to client stages (``--lend any``).
2. Fidelity: each job's best candidate is re-measured alone (nothing else running, the same
   pinned device worker and timing settings the tuner uses) and compared with the latency
   recorded while tuning under ``interleaved``, ``feed-device`` (and ``sequential``, where
   the client idles while the device profiles, and lending), and under a naive run (the four
   jobs' full MetaSchedule loops, ``ms.tune_tir``, as parallel processes, no scheduler).
3. Quality at equal trials: the best latency of the decomposed loop against ``ms.tune_tir``
   run alone on the same workload and trials, both re-measured alone
   (``tune_tir best / tuneloom best``: >= 1 means tuneloom found a kernel at least as fast).
4. Scheduler overhead per dispatch and as a share of the interleaved run's wall time.

    python benchmarks/scheduler_real.py [--trials 32] [--json]

Takes about 10-15 minutes on two cores. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKLOADS = (
    "matmul:128",
    "matmul:192",
    "conv2d:1x16x28x28,32x3x3,pad=1",
    "conv2d:1x32x14x14,64x3x3,pad=1",
)
BATCH = 16
# Timing settings for every measurement here (tuner, tune_tir baselines, re-measurement):
# three repeats of at least 100 ms each, MetaSchedule's default minimum per repeat.
NUMBER, REPEAT, MIN_REPEAT_MS = 3, 3, 100


def tune(policy: str, workdir: Path, trials: int, seed: int, *extra: str) -> dict[str, Any]:
    """One ``tuneloom tune`` run in a fresh process; returns its JSON result."""
    db = workdir / f"{policy}{'-'.join(('', *extra)).replace(' ', '')}.db"
    cmd = [sys.executable, "-m", "tuneloom", "tune", "--policy", policy, "--db", str(db), *extra]
    for spec in WORKLOADS:
        cmd += ["--workload", spec]
    cmd += ["--trials", str(trials), "--batch", str(BATCH), "--seed", str(seed), "--json"]
    cmd += ["--number", str(NUMBER), "--repeat", str(REPEAT)]
    cmd += ["--min-repeat-ms", str(MIN_REPEAT_MS)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"tuneloom tune --policy {policy} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def lean_build(mod: Any, target: Any, _params: Any) -> Any:
    """MetaSchedule's default build without importing tensor intrinsics in every worker.

    With the stock builder, four parallel loops on two cores lose whole batches to build
    timeouts (each worker spends ~10 s importing ``tvm.s_tir.tensor_intrin``), which would
    leave nothing to compare; this keeps the loops' builds comparable to the tuner's.
    """
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target=target)


def naive_worker(spec: str, work_dir: str, trials: int, seed: int) -> None:
    """A full MetaSchedule loop (``ms.tune_tir``) for one workload: the naive baseline."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.target import Target

    from tuner.metaschedule.targets import target_config
    from tuner.metaschedule.workloads import parse_workload, workload_module

    ms.tune_tir(
        workload_module(parse_workload(spec)),
        Target(target_config("llvm", 1)),
        work_dir,
        max_trials_global=trials,
        num_trials_per_iter=BATCH,
        seed=seed,
        builder=ms.builder.LocalBuilder(f_build=lean_build),
        runner=ms.runner.LocalRunner(
            evaluator_config=ms.runner.EvaluatorConfig(
                number=NUMBER, repeat=REPEAT, min_repeat_ms=MIN_REPEAT_MS
            )
        ),
    )


def run_tune_tir(specs: list[str], workdir: Path, trials: int, seed: int, parallel: bool):
    """``ms.tune_tir`` per workload, all at once (naive) or one after another (alone)."""
    dirs = [workdir / f"{'naive' if parallel else 'alone'}-{i}" for i in range(len(specs))]
    started = time.perf_counter()
    procs = []
    for spec, out in zip(specs, dirs, strict=True):
        cmd = [sys.executable, __file__, "--naive-worker", spec, str(out), str(trials), str(seed)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if parallel:
            procs.append(proc)
        else:
            _wait(proc)
    for proc in procs:
        _wait(proc)
    return dirs, time.perf_counter() - started


def _wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"tune_tir worker failed:\n{err.decode()[-3000:]}")


def best_record(db_dir: Path) -> tuple[Any, float]:
    """The fastest valid record of a MetaSchedule database, with its recorded mean latency."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(
        path_workload=str(db_dir / "database_workload.json"),
        path_tuning_record=str(db_dir / "database_tuning_record.json"),
    )
    best, best_s = None, float("inf")
    for record in db.get_all_tuning_records():
        secs = [float(s) for s in record.run_secs or []]
        if secs and max(secs) < 1e9 and statistics.fmean(secs) < best_s:
            best, best_s = record, statistics.fmean(secs)
    if best is None:
        raise SystemExit(f"no valid record in {db_dir}")
    return best, best_s


def measure_alone(records: list[Any], repeats: int = 5) -> list[float]:
    """Re-measure records one by one on the pinned device worker, nothing else running.

    Uses the tuner's own build and timing path; each value is the median of ``repeats``
    measurements of the record's mean latency.
    """
    import tvm

    from tuner.cpus import available_cpus, plan_cpus
    from tuner.metaschedule.build import build_and_export
    from tuner.metaschedule.run import EvalConfig, LocalProfiler

    plan = plan_cpus(available_cpus(), devices=1)
    timing = EvalConfig(number=NUMBER, repeat=REPEAT, min_repeat_ms=MIN_REPEAT_MS)
    profiler = LocalProfiler(plan.devices[0], evaluator=timing, timeout_s=60.0, name="alone")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for record in records:
                sch = tvm.s_tir.Schedule(record.workload.mod)
                record.trace.apply_to_schedule(sch, remove_postproc=False)
                artifact = build_and_export(sch.mod, record.target, tmp)
                info = [a.as_json() for a in record.args_info]
                means = []
                for _ in range(repeats):
                    outcome = profiler.profile([artifact], [info]).outcomes[0]
                    if outcome is None or outcome.run_secs is None:
                        raise SystemExit(f"re-measuring failed: {outcome}")
                    means.append(statistics.fmean(outcome.run_secs))
                out.append(statistics.median(means))
        finally:
            profiler.close()
    return out


def deviation(measured: float, alone: float) -> float:
    return abs(measured - alone) / alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=32, help="trials per job (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--naive-worker", nargs=4, metavar=("SPEC", "DIR", "TRIALS", "SEED"))
    args = parser.parse_args()
    if args.naive_worker:
        spec, out, trials, seed = args.naive_worker
        naive_worker(spec, out, int(trials), int(seed))
        return

    with tempfile.TemporaryDirectory(prefix="scheduler-real-") as tmp:
        work = Path(tmp)
        runs = {
            p: tune(p, work, args.trials, args.seed, "--lend", "off")
            for p in ("interleaved", "feed-device", "sequential")
        }
        lent = tune("interleaved", work, args.trials, args.seed, "--lend", "any")
        naive_dirs, naive_wall = run_tune_tir(list(WORKLOADS), work, args.trials, args.seed, True)
        alone_dirs, alone_wall = run_tune_tir(list(WORKLOADS), work, args.trials, args.seed, False)

        inter_best = [best_record(Path(job["db_dir"])) for job in runs["interleaved"]["jobs"]]
        seq_best = [best_record(Path(job["db_dir"])) for job in runs["sequential"]["jobs"]]
        lent_best = [best_record(Path(job["db_dir"])) for job in lent["jobs"]]
        feed_best = [best_record(Path(job["db_dir"])) for job in runs["feed-device"]["jobs"]]
        naive_best = [best_record(d) for d in naive_dirs]
        ttir_best = [best_record(d) for d in alone_dirs]
        records = inter_best + seq_best + lent_best + naive_best + ttir_best + feed_best
        alone = measure_alone([r for r, _ in records])
        n = len(WORKLOADS)
        inter_alone, seq_alone, lent_alone = alone[:n], alone[n : 2 * n], alone[2 * n : 3 * n]
        naive_alone, ttir_alone = alone[3 * n : 4 * n], alone[4 * n : 5 * n]
        feed_alone = alone[5 * n :]

    inter, feed, seq = runs["interleaved"], runs["feed-device"], runs["sequential"]
    stats = inter.get("scheduler", {})
    per_job = []
    for i, spec in enumerate(WORKLOADS):
        ours = inter_alone[i]  # the interleaved run's best, re-measured alone
        per_job.append(
            {
                "workload": spec,
                "interleaved_recorded_s": inter_best[i][1],
                "interleaved_alone_s": inter_alone[i],
                "interleaved_deviation": deviation(inter_best[i][1], inter_alone[i]),
                "feed_device_recorded_s": feed_best[i][1],
                "feed_device_alone_s": feed_alone[i],
                "feed_device_deviation": deviation(feed_best[i][1], feed_alone[i]),
                "sequential_recorded_s": seq_best[i][1],
                "sequential_alone_s": seq_alone[i],
                "sequential_deviation": deviation(seq_best[i][1], seq_alone[i]),
                "lending_recorded_s": lent_best[i][1],
                "lending_alone_s": lent_alone[i],
                "lending_deviation": deviation(lent_best[i][1], lent_alone[i]),
                "naive_recorded_s": naive_best[i][1],
                "naive_alone_s": naive_alone[i],
                "naive_deviation": deviation(naive_best[i][1], naive_alone[i]),
                "tuneloom_best_alone_s": ours,
                "tune_tir_best_alone_s": ttir_alone[i],
                "quality_ratio": ttir_alone[i] / ours,
            }
        )
    result = {
        "clock": "wall (measured, real TVM on llvm)",
        "trials_per_job": args.trials,
        "batch": BATCH,
        "timing": {"number": NUMBER, "repeat": REPEAT, "min_repeat_ms": MIN_REPEAT_MS},
        "workloads": list(WORKLOADS),
        "interleaved_wall_s": inter["wall_s"],
        "sequential_wall_s": seq["wall_s"],
        "interleaved_over_sequential": inter["wall_s"] / seq["wall_s"],
        "feed_device_wall_s": feed["wall_s"],
        "feed_device_over_sequential": feed["wall_s"] / seq["wall_s"],
        "interleaved_lending_wall_s": lent["wall_s"],
        "lending_over_sequential": lent["wall_s"] / seq["wall_s"],
        "resources_interleaved_lending": lent["resources"],
        "naive_parallel_wall_s": naive_wall,
        "tune_tir_alone_wall_s": alone_wall,
        "fidelity_interleaved_max_deviation": max(j["interleaved_deviation"] for j in per_job),
        "fidelity_feed_device_max_deviation": max(j["feed_device_deviation"] for j in per_job),
        "fidelity_sequential_max_deviation": max(j["sequential_deviation"] for j in per_job),
        "fidelity_lending_max_deviation": max(j["lending_deviation"] for j in per_job),
        "fidelity_naive_max_deviation": max(j["naive_deviation"] for j in per_job),
        "quality_min_ratio": min(j["quality_ratio"] for j in per_job),
        "quality_geomean_ratio": statistics.geometric_mean(j["quality_ratio"] for j in per_job),
        "sequential_best_alone_s": dict(zip(WORKLOADS, seq_alone, strict=True)),
        "dispatch_overhead_ms": stats.get("per_dispatch_ms"),
        "overhead_share_of_wall": stats.get("share_of_wall"),
        "resources_interleaved": inter["resources"],
        "resources_feed_device": feed["resources"],
        "resources_sequential": seq["resources"],
        "jobs": per_job,
        "cpus": os.sched_getaffinity(0).__len__(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"4 jobs x {args.trials} trials, real TVM on llvm ({result['cpus']} cores)")
    print(
        f"  wall interleaved {inter['wall_s']:.1f} s, sequential {seq['wall_s']:.1f} s, "
        f"ratio {result['interleaved_over_sequential']:.3f} (goal <= 0.60); "
        f"naive parallel tune_tir {naive_wall:.1f} s"
    )
    print(
        f"  feed-device (tune's default) {feed['wall_s']:.1f} s, ratio to sequential "
        f"{result['feed_device_over_sequential']:.3f} (goal <= 0.60)"
    )
    print(
        f"  interleaved with the device lent to client stages (--lend any) {lent['wall_s']:.1f} s,"
        f" ratio to sequential {result['lending_over_sequential']:.3f}"
    )
    for job in per_job:
        print(
            f"  {job['workload']:<34} alone {job['interleaved_alone_s'] * 1e6:9.2f} us  "
            f"interleaved dev {job['interleaved_deviation']:6.1%}  "
            f"feed-device dev {job['feed_device_deviation']:6.1%}  "
            f"sequential dev {job['sequential_deviation']:6.1%}  "
            f"lent dev {job['lending_deviation']:6.1%}  "
            f"naive dev {job['naive_deviation']:6.1%}  quality {job['quality_ratio']:.3f}"
        )
    print(
        f"  max deviation: interleaved {result['fidelity_interleaved_max_deviation']:.1%} "
        f"(goal <= 3%), feed-device {result['fidelity_feed_device_max_deviation']:.1%}, "
        f"sequential {result['fidelity_sequential_max_deviation']:.1%}, "
        f"lent {result['fidelity_lending_max_deviation']:.1%}, "
        f"naive {result['fidelity_naive_max_deviation']:.1%}"
    )
    print(f"  quality (tune_tir / tuneloom, alone): min {result['quality_min_ratio']:.3f}")
    print(
        f"  dispatch overhead {result['dispatch_overhead_ms']} ms "
        f"({result['overhead_share_of_wall']} of wall)"
    )


if __name__ == "__main__":
    main()
