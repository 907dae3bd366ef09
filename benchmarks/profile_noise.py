"""What disturbs a profile: one tuned kernel timed on the device core while the client core
does nothing, spins, streams memory, or builds, interleaved in one run.

The tuner pins client work (selects, builds) to one core and profiles to another. This times
the same compiled kernels on the device worker (the tuner's own pinned worker and timing
path) while the other core runs, one at a time in shuffled rounds:

- ``idle``: nothing;
- ``spin``: a pure arithmetic loop (no memory traffic: what a shared physical core or a
  lower all-core clock costs);
- ``cache``: copies of a 1 MiB array (the client's own L2, nothing beyond);
- ``stream``: copies of 256 MiB arrays (L3 and memory bandwidth);
- ``build``: the tuner's build function compiling candidates over and over.

Each condition's median latency is divided by the idle one, per kernel. The kernels are the
best of a short MetaSchedule search (so they are as compute-bound as tuned kernels are).

    python benchmarks/profile_noise.py [--rounds 6] [--json]

Takes about 3 minutes on two cores; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
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
    best_record,
    build_record,
    run_tune_tir,
)

WORKLOADS = ("matmul:192", "conv2d:1x32x14x14,64x3x3,pad=1")
CONDITIONS = ("idle", "spin", "cache", "stream", "build")
SEARCH_TRIALS = 16
SETTLE_S = 0.5


def _spin() -> None:
    x = 0
    while True:
        for i in range(1_000_000):
            x = (x * 31 + i) & 0xFFFF


def _copy_loop(nbytes: int) -> None:
    import numpy as np

    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    while True:
        np.copyto(dst, src)
        np.copyto(src, dst)


def _build_loop(spec: str) -> None:
    import tvm
    from tvm.target import Target

    from tuner.metaschedule.build import build_and_export
    from tuner.metaschedule.targets import target_config
    from tuner.metaschedule.workloads import parse_workload, workload_module

    mod = workload_module(parse_workload(spec))
    target = Target(target_config("llvm", 1))
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            build_and_export(tvm.s_tir.Schedule(mod).mod, target, tmp)


def _neighbour(condition: str, core: int) -> mp.Process | None:
    """Start ``condition``'s load pinned to the client core (None for idle)."""
    targets = {
        "spin": (_spin, ()),
        "cache": (_copy_loop, (1 << 20,)),
        "stream": (_copy_loop, (256 << 20,)),
        "build": (_build_loop, (WORKLOADS[-1],)),
    }
    if condition == "idle":
        return None
    fn, args = targets[condition]
    proc = mp.get_context("spawn").Process(target=_pinned, args=(core, fn, args), daemon=True)
    proc.start()
    return proc


def _pinned(core: int, fn: Any, args: tuple) -> None:
    from tuner.cpus import pin_process

    pin_process([core])
    fn(*args)


def tuned_artifacts(work: Path) -> list[tuple[str, str, list]]:
    """(workload, artifact path, args info) of each workload's best after a short search."""
    dirs, _ = run_tune_tir(list(WORKLOADS), work, SEARCH_TRIALS, 0, parallel=False)
    out = []
    for spec, db_dir in zip(WORKLOADS, dirs, strict=True):
        record, _ = best_record(db_dir)
        artifact, info = build_record(record, work)
        out.append((spec, artifact, info))
    return out


def measure(kernels: list[tuple[str, str, list]], rounds: int, seed: int) -> dict[str, Any]:
    """Median latency per (kernel, condition) over shuffled rounds, and ratios to idle."""
    from tuner.cpus import available_cpus, plan_cpus
    from tuner.metaschedule.run import EvalConfig, LocalProfiler

    plan = plan_cpus(available_cpus(), devices=1)
    client_core = plan.client[0]
    timing = EvalConfig(number=NUMBER, repeat=REPEAT, min_repeat_ms=MIN_REPEAT_MS)
    profiler = LocalProfiler(plan.devices[0], evaluator=timing, timeout_s=60.0, name="noise")
    samples: dict[tuple[str, str], list[float]] = {}
    order = random.Random(seed)
    try:
        profiler.start()
        for _ in range(rounds):
            conditions = list(CONDITIONS)
            order.shuffle(conditions)
            for condition in conditions:
                neighbour = _neighbour(condition, client_core)
                time.sleep(SETTLE_S if neighbour is None else SETTLE_S + 1.0)
                try:
                    for spec, artifact, info in kernels:
                        outcome = profiler.profile([artifact], [info]).outcomes[0]
                        if outcome is None or outcome.run_secs is None:
                            raise SystemExit(f"timing {spec} failed: {outcome}")
                        samples.setdefault((spec, condition), []).append(
                            statistics.fmean(outcome.run_secs)
                        )
                finally:
                    if neighbour is not None:
                        neighbour.kill()
                        neighbour.join()
    finally:
        profiler.close()
    rows = []
    for spec, _, _ in kernels:
        idle = statistics.median(samples[(spec, "idle")])
        row = {"workload": spec, "idle_us": idle * 1e6}
        for condition in CONDITIONS[1:]:
            row[f"{condition}_ratio"] = statistics.median(samples[(spec, condition)]) / idle
        rows.append(row)
    return {
        "client_core": client_core,
        "device_cores": list(plan.devices[0]),
        "rounds": rounds,
        "kernels": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuneloom-noise-") as scratch:
        kernels = tuned_artifacts(Path(scratch))
        result = measure(kernels, args.rounds, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"device cores {result['device_cores']}, neighbour on core {result['client_core']}")
    print(f"{'workload':<34} {'idle us':>9}" + "".join(f" {c:>8}" for c in CONDITIONS[1:]))
    for row in result["kernels"]:
        ratios = "".join(f" {row[f'{c}_ratio']:>8.3f}" for c in CONDITIONS[1:])
        print(f"{row['workload']:<34} {row['idle_us']:>9.2f}{ratios}")


if __name__ == "__main__":
    main()
