"""Real TVM figures for the scheduler: speed, measurement fidelity, search quality, overhead.

Runs on this machine with the llvm target, everything measured (nothing simulated):

1. Wall time of four small jobs under ``interleaved``, ``feed-device`` (``tune``'s default:
   builds first) and ``sequential`` (``tuneloom tune``, same workloads, trials and seeds), and
   their ratios to ``sequential`` (each ``--lend off``); ``feed-device`` with would-be bests
   timed again in the same profile instead of a quiet one (``--retime inline``), for the
   quiet profiles' cost side by side; and ``interleaved`` with the idle device lent to
   client stages (``--lend any``).
2. Fidelity: each job's best candidate is re-measured alone (nothing else running, the same
   pinned device worker and timing settings the tuner uses) and compared with the latency
   recorded while tuning under ``interleaved``, ``feed-device`` (and ``sequential``, where
   the client idles while the device profiles, and lending), and under a naive run (the four
   jobs' full MetaSchedule loops, ``ms.tune_tir``, as parallel processes, no scheduler).
   Each run's bests are re-measured right after that run, in ``--layouts`` fresh device
   processes (median, and their spread: a process's memory layout alone moves some kernels'
   times by a third, see ``layout_bench.py``). The tuner times a would-be best again in a
   quiet profile (``tuner/quiet.py``); how many ran quietly, and how many waited too long
   and ran beside client work, is printed for each run. The ``feed-device`` bests are
   re-measured a second time too: how far the two medians differ is what the reference
   itself moves on the day (a floor under any run's deviation).
3. Quality at equal trials: the best latency of the decomposed loop against ``ms.tune_tir``
   run alone on the same workload and trials, both re-measured alone
   (``tune_tir best / tuneloom best``: >= 1 means tuneloom found a kernel at least as fast).
4. Scheduler overhead per dispatch and as a share of the interleaved run's wall time.

    python benchmarks/scheduler_real.py [--trials 32] [--layouts 5] [--json]

Takes about 15-20 minutes on two cores. Run it on an otherwise idle machine.
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
from typing import Any, NamedTuple

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


def tune(
    policy: str,
    workdir: Path,
    trials: int,
    seed: int,
    *extra: str,
    workloads: tuple[str, ...] | list[str] = WORKLOADS,
) -> dict[str, Any]:
    """One ``tuneloom tune`` run of ``workloads`` (a job each) in a fresh process; returns its
    JSON result."""
    db = workdir / f"{policy}{'-'.join(('', *extra)).replace(' ', '')}.db"
    cmd = [sys.executable, "-m", "tuneloom", "tune", "--policy", policy, "--db", str(db), *extra]
    for spec in workloads:
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


def valid_records(db_dir: Path) -> list[tuple[Any, float]]:
    """Every record of a MetaSchedule database that ran, with its recorded mean latency."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(
        path_workload=str(db_dir / "database_workload.json"),
        path_tuning_record=str(db_dir / "database_tuning_record.json"),
    )
    out = []
    for record in db.get_all_tuning_records():
        secs = [float(s) for s in record.run_secs or []]
        if secs and max(secs) < 1e9:
            out.append((record, statistics.fmean(secs)))
    return out


def best_record(db_dir: Path) -> tuple[Any, float]:
    """The fastest valid record of a MetaSchedule database, with its recorded mean latency."""
    records = valid_records(db_dir)
    if not records:
        raise SystemExit(f"no valid record in {db_dir}")
    return min(records, key=lambda pair: pair[1])


def build_record(record: Any, out_dir: Path) -> tuple[str, list[Any]]:
    """A tuning record's schedule built with the tuner's build function: the library's path
    and the arguments it takes."""
    import tvm

    from tuner.metaschedule.build import build_and_export

    sch = tvm.s_tir.Schedule(record.workload.mod)
    record.trace.apply_to_schedule(sch, remove_postproc=False)
    artifact = build_and_export(sch.mod, record.target, str(out_dir))
    return artifact, [a.as_json() for a in record.args_info]


class Alone(NamedTuple):
    """A record's latency re-measured alone: the median over fresh device processes, and
    the fastest and slowest of them."""

    median: float
    low: float
    high: float


def device_profiler() -> Any:
    """A fresh device worker, pinned to the core the tuner profiles on and timing with this
    script's settings."""
    from tuner.cpus import available_cpus, plan_cpus
    from tuner.metaschedule.run import EvalConfig, LocalProfiler

    cores = plan_cpus(available_cpus(), devices=1).devices[0]
    timing = EvalConfig(number=NUMBER, repeat=REPEAT, min_repeat_ms=MIN_REPEAT_MS)
    return LocalProfiler(cores, evaluator=timing, timeout_s=60.0)


def time_once(profiler: Any, artifact: str, info: list[Any]) -> float:
    """One timing of a built candidate by ``profiler``: its mean seconds per run."""
    outcome = profiler.profile([artifact], [info]).outcomes[0]
    if outcome is None or not outcome.run_secs:
        raise SystemExit(f"timing {artifact} failed: {outcome}")
    return statistics.fmean(outcome.run_secs)


class AloneTimer:
    """Re-measures records alone, with the tuner's own build and timing path on the pinned
    device core, in ``layouts`` fresh device processes one after another: the memory layout
    a process draws (address space randomization) has moved one kernel's time by a third
    (``layout_bench.py``), so each value is the median over processes, with their spread."""

    def __init__(self, scratch: Path, layouts: int = 5) -> None:
        self.scratch, self.layouts = scratch, layouts

    def records(self, records: list[Any]) -> list[Alone]:
        built = [build_record(record, self.scratch) for record in records]
        samples: list[list[float]] = [[] for _ in records]
        for _ in range(self.layouts):
            profiler = device_profiler()
            try:
                for sample, (artifact, info) in zip(samples, built, strict=True):
                    sample.append(time_once(profiler, artifact, info))
            finally:
                profiler.close()
        return [Alone(statistics.median(x), min(x), max(x)) for x in samples]


def deviation(measured: float, alone: Alone) -> float:
    return abs(measured - alone.median) / alone.median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=32, help="trials per job (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layouts", type=int, default=5, help="fresh device processes per re-measure (5)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--naive-worker", nargs=4, metavar=("SPEC", "DIR", "TRIALS", "SEED"))
    args = parser.parse_args()
    if args.layouts < 1:
        parser.error("--layouts must be at least 1")
    if args.naive_worker:
        spec, out, trials, seed = args.naive_worker
        naive_worker(spec, out, int(trials), int(seed))
        return

    with tempfile.TemporaryDirectory(prefix="scheduler-real-") as tmp:
        work = Path(tmp)
        timer = AloneTimer(work, args.layouts)

        def alone_now(dirs: list[Path]) -> tuple[list[tuple[Any, float]], list[Alone]]:
            """The runs' best records, re-measured alone right after the run."""
            best = [best_record(d) for d in dirs]
            return best, timer.records([r for r, _ in best])

        runs, best, alone = {}, {}, {}
        arms = {  # run name: (policy, further options)
            "interleaved": ("interleaved", ()),
            "feed-device": ("feed-device", ()),
            "inline": ("feed-device", ("--retime", "inline")),
            "sequential": ("sequential", ()),
        }
        for name, (policy, extra) in arms.items():
            runs[name] = tune(policy, work, args.trials, args.seed, "--lend", "off", *extra)
            dirs = [Path(job["db_dir"]) for job in runs[name]["jobs"]]
            best[name], alone[name] = alone_now(dirs)
            if name == "feed-device":  # the reference itself, measured twice
                again = timer.records([record for record, _ in best[name]])
        lent = tune("interleaved", work, args.trials, args.seed, "--lend", "any")
        best["lent"], alone["lent"] = alone_now([Path(job["db_dir"]) for job in lent["jobs"]])
        specs = list(WORKLOADS)
        naive_dirs, naive_wall = run_tune_tir(specs, work, args.trials, args.seed, True)
        best["naive"], alone["naive"] = alone_now(naive_dirs)
        alone_dirs, alone_wall = run_tune_tir(specs, work, args.trials, args.seed, False)
        best["tune_tir"], alone["tune_tir"] = alone_now(alone_dirs)
    inter, feed, seq = runs["interleaved"], runs["feed-device"], runs["sequential"]
    inline = runs["inline"]
    stats = inter.get("scheduler", {})
    names = {"interleaved": "interleaved", "feed-device": "feed_device", "inline":
             "feed_device_inline", "sequential": "sequential", "lent": "lending",
             "naive": "naive"}  # fmt: skip
    per_job = []
    for i, spec in enumerate(WORKLOADS):
        job: dict[str, Any] = {"workload": spec}
        for run, key in names.items():
            recorded, measured = best[run][i][1], alone[run][i]
            job[f"{key}_recorded_s"] = recorded
            job[f"{key}_alone_s"] = measured.median
            job[f"{key}_alone_range_s"] = [measured.low, measured.high]
            job[f"{key}_deviation"] = deviation(recorded, measured)
            job[f"{key}_within_layouts"] = measured.low <= recorded <= measured.high
        ours = alone["interleaved"][i].median  # the interleaved run's best, re-measured alone
        job["tuneloom_best_alone_s"] = ours
        job["tune_tir_best_alone_s"] = alone["tune_tir"][i].median
        job["quality_ratio"] = alone["tune_tir"][i].median / ours
        job["alone_repeat_deviation"] = deviation(again[i].median, alone["feed-device"][i])
        job["layout_spread"] = max(
            alone[run][i].high / alone[run][i].low - 1 for run in (*names, "tune_tir")
        )
        per_job.append(job)
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
        "feed_device_inline_wall_s": inline["wall_s"],
        "feed_device_inline_over_sequential": inline["wall_s"] / seq["wall_s"],
        "interleaved_lending_wall_s": lent["wall_s"],
        "lending_over_sequential": lent["wall_s"] / seq["wall_s"],
        "resources_interleaved_lending": lent["resources"],
        "naive_parallel_wall_s": naive_wall,
        "tune_tir_alone_wall_s": alone_wall,
        "fidelity_interleaved_max_deviation": max(j["interleaved_deviation"] for j in per_job),
        "fidelity_feed_device_max_deviation": max(j["feed_device_deviation"] for j in per_job),
        "fidelity_feed_device_inline_max_deviation": max(
            j["feed_device_inline_deviation"] for j in per_job
        ),
        "fidelity_sequential_max_deviation": max(j["sequential_deviation"] for j in per_job),
        "alone_repeat_max_deviation": max(j["alone_repeat_deviation"] for j in per_job),
        "fidelity_lending_max_deviation": max(j["lending_deviation"] for j in per_job),
        "fidelity_naive_max_deviation": max(j["naive_deviation"] for j in per_job),
        "quality_min_ratio": min(j["quality_ratio"] for j in per_job),
        "quality_geomean_ratio": statistics.geometric_mean(j["quality_ratio"] for j in per_job),
        "sequential_best_alone_s": {
            spec: alone["sequential"][i].median for i, spec in enumerate(WORKLOADS)
        },
        "alone_layouts": args.layouts,
        "layout_spread_max": max(j["layout_spread"] for j in per_job),
        "interleaved_within_layouts": sum(j["interleaved_within_layouts"] for j in per_job),
        "quiet_profiles": {
            name: [run.get("scheduler", {}).get(k) for k in ("quiet_profiles", "quiet_demoted")]
            for name, run in {**runs, "lent": lent}.items()
            if name != "sequential"
        },
        "dispatch_overhead_ms": stats.get("per_dispatch_ms"),
        "overhead_share_of_wall": stats.get("share_of_wall"),
        "resources_interleaved": inter["resources"],
        "resources_feed_device": feed["resources"],
        "resources_feed_device_inline": inline["resources"],
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
        f"  feed-device with would-be bests timed again in the same profile (--retime inline) "
        f"{inline['wall_s']:.1f} s, ratio to sequential "
        f"{result['feed_device_inline_over_sequential']:.3f}"
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
            f"inline dev {job['feed_device_inline_deviation']:6.1%}  "
            f"sequential dev {job['sequential_deviation']:6.1%}  "
            f"lent dev {job['lending_deviation']:6.1%}  "
            f"naive dev {job['naive_deviation']:6.1%}  quality {job['quality_ratio']:.3f}"
        )
    print(
        f"  max deviation: interleaved {result['fidelity_interleaved_max_deviation']:.1%} "
        f"(goal <= 3%), feed-device {result['fidelity_feed_device_max_deviation']:.1%}, "
        f"inline {result['fidelity_feed_device_inline_max_deviation']:.1%}, "
        f"sequential {result['fidelity_sequential_max_deviation']:.1%}, "
        f"lent {result['fidelity_lending_max_deviation']:.1%}, "
        f"naive {result['fidelity_naive_max_deviation']:.1%}"
    )
    print(
        f"  alone = median of {args.layouts} fresh device processes; the same kernel differed "
        f"by up to {result['layout_spread_max']:.1%} between them; interleaved bests within "
        f"that spread: {result['interleaved_within_layouts']} of {len(per_job)}; the "
        f"feed-device bests re-measured again: their medians moved by up to "
        f"{result['alone_repeat_max_deviation']:.1%} (what the reference itself moves)"
    )
    quiet = ", ".join(f"{k} {q} ({d} demoted)" for k, (q, d) in result["quiet_profiles"].items())
    print(f"  would-be bests timed again with no client work beside them: {quiet}")
    print(f"  quality (tune_tir / tuneloom, alone): min {result['quality_min_ratio']:.3f}")
    print(
        f"  dispatch overhead {result['dispatch_overhead_ms']} ms "
        f"({result['overhead_share_of_wall']} of wall)"
    )


if __name__ == "__main__":
    main()
