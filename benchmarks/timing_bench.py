"""How long the device is held per candidate: TVM's own ``time_evaluator`` sizing against
tuneloom's (``tuner.metaschedule.run``: ``number`` sized from a probe run), side by side.

TVM grows ``number`` until one repeat lasts ``min_repeat_ms``, aiming at the minimum itself,
so about half the time the first sized repeat falls just short, is thrown away, and it and
every later repeat run 1.6 times longer. tuneloom probes one run first and sizes every
repeat 10 % over the minimum. This times the same candidates both ways, alternating, in one
device worker pinned as the tuner pins it:

- the candidates are every valid schedule of a short MetaSchedule search (``ms.tune_tir``)
  on each of ``scheduler_real.py``'s workloads, built with the tuner's build function;
- for each timing setting (``number,repeat,min_repeat_ms``; the tuner's default and
  ``scheduler_real.py``'s), every candidate is timed by TVM's way and by tuneloom's in
  alternating order, ``--rounds`` times.

Printed per setting: device seconds per candidate of each way and their ratio (tuneloom /
TVM), the time the repeats themselves needed (``repeat`` x ``min_repeat_ms``), and how far
tuneloom's latencies sit from TVM's (median over rounds per candidate; the geometric mean
of the ratios and the largest deviation), beside how far each way's own rounds spread.

    python benchmarks/timing_bench.py [--trials 16] [--rounds 3] [--json]

Takes about 5 minutes on two cores; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduler_real import (  # noqa: E402
    MIN_REPEAT_MS,
    NUMBER,
    REPEAT,
    WORKLOADS,
    build_record,
    run_tune_tir,
    valid_records,
)

DEFAULT_SETTINGS = ("3,1,40", f"{NUMBER},{REPEAT},{MIN_REPEAT_MS}")
WAYS = ("tvm", "tuneloom")


def candidates(work: Path, trials: int) -> list[tuple[str, str, list[Any]]]:
    """(workload, artifact, args info) of every valid record of a short search per workload."""
    dirs, _ = run_tune_tir(list(WORKLOADS), work, trials, 0, parallel=False)
    out = []
    for spec, db_dir in zip(WORKLOADS, dirs, strict=True):
        for record, _ in valid_records(db_dir):
            artifact, info = build_record(record, work)
            out.append((spec, artifact, info))
    return out


def timed_once(way: str, artifact: str, args_info: list[Any], config: Any) -> tuple[float, float]:
    """Runs in the device worker: (seconds the timing held the device, mean latency)."""
    import tvm

    from tuner.metaschedule import run
    from tuner.threads import on_new_thread

    rt_mod = tvm.runtime.load_module(artifact)
    dev = tvm.runtime.device("cpu", 0)
    fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure")
    args = run._allocate(dev, args_info, fill)

    def tvm_own() -> list[float]:
        evaluator = rt_mod.time_evaluator(
            rt_mod.entry_name,
            dev,
            number=config.number,
            repeat=config.repeat,
            min_repeat_ms=config.min_repeat_ms,
        )
        return [float(s) for s in evaluator(*args).results]

    def tuneloom_way() -> list[float]:
        return run._time(rt_mod, dev, args, config)

    started = time.perf_counter()
    secs = on_new_thread(tvm_own if way == "tvm" else tuneloom_way)
    return time.perf_counter() - started, statistics.fmean(secs)


def measure(kernels: list[tuple[str, str, list[Any]]], setting: str, rounds: int) -> dict:
    """Both ways over every candidate, alternating which goes first, ``rounds`` times."""
    from tuner.cpus import available_cpus, plan_cpus
    from tuner.metaschedule.processes import PinnedWorker
    from tuner.metaschedule.run import RUN_IMPORTS, EvalConfig

    number, repeat, min_repeat_ms = (int(x) for x in setting.split(","))
    config = EvalConfig(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)
    plan = plan_cpus(available_cpus(), devices=1)
    held = {way: 0.0 for way in WAYS}
    latency: dict[tuple[int, str], list[float]] = {}
    with PinnedWorker(plan.devices[0], imports=RUN_IMPORTS, name="timing") as worker:
        for r in range(rounds):
            for k, (_, artifact, info) in enumerate(kernels):
                order = WAYS if (r + k) % 2 == 0 else WAYS[::-1]
                for way in order:
                    wall, mean = worker.call(timed_once, way, artifact, info, config, timeout=60)
                    held[way] += wall
                    latency.setdefault((k, way), []).append(mean)
    timed = rounds * len(kernels)
    ratios = [
        statistics.median(latency[(k, "tuneloom")]) / statistics.median(latency[(k, "tvm")])
        for k in range(len(kernels))
    ]
    return {
        "setting": {"number": number, "repeat": repeat, "min_repeat_ms": min_repeat_ms},
        "candidates": len(kernels),
        "timings_per_way": timed,
        "needed_s": repeat * min_repeat_ms / 1e3,
        "tvm_s_per_candidate": held["tvm"] / timed,
        "tuneloom_s_per_candidate": held["tuneloom"] / timed,
        "held_ratio": held["tuneloom"] / held["tvm"],
        "latency_ratio_geomean": math.exp(statistics.fmean(math.log(x) for x in ratios)),
        "latency_ratio_max_deviation": max(abs(x - 1) for x in ratios),
        # how much one way's own rounds spread per candidate (median over candidates): the
        # noise the deviation above is to be read against
        "round_spread_median": {
            way: statistics.median(
                max(latency[(k, way)]) / min(latency[(k, way)]) - 1 for k in range(len(kernels))
            )
            for way in WAYS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="search trials per workload")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(DEFAULT_SETTINGS),
        metavar="N,R,MS",
        help="timing settings, number,repeat,min_repeat_ms (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuneloom-timing-") as scratch:
        kernels = candidates(Path(scratch), args.trials)
        results = [measure(kernels, setting, args.rounds) for setting in args.settings]
    if args.json:
        print(json.dumps({"workloads": list(WORKLOADS), "results": results}, indent=2))
        return
    print(f"{len(kernels)} candidates from {len(WORKLOADS)} workloads, {args.rounds} rounds")
    print(
        f"{'number,repeat,ms':<18} {'needed s':>9} {'TVM s':>8} {'tuneloom s':>11} "
        f"{'ratio':>7} {'latency geomean':>16} {'max dev':>8} {'spread TVM':>11} {'tuneloom':>9}"
    )
    for row in results:
        s = row["setting"]
        print(
            f"{s['number']},{s['repeat']},{s['min_repeat_ms']:<13} {row['needed_s']:>9.3f} "
            f"{row['tvm_s_per_candidate']:>8.3f} {row['tuneloom_s_per_candidate']:>11.3f} "
            f"{row['held_ratio']:>7.3f} {row['latency_ratio_geomean']:>16.4f} "
            f"{row['latency_ratio_max_deviation']:>8.3f} "
            f"{row['round_spread_median']['tvm']:>11.3f} "
            f"{row['round_spread_median']['tuneloom']:>9.3f}"
        )


if __name__ == "__main__":
    main()
