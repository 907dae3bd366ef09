"""How much a tuned kernel's measured time depends on the process and thread that time it.

Tunes each workload briefly (``tuneloom tune`` as ``scheduler_real.py`` runs it, real TVM on
llvm), builds its best schedule once, then times that one library in ``--processes`` fresh
processes per arm, each pinned to the device core and timing with the tuner's own path
(``tuner.metaschedule.run.run_local``: inputs filled by TVM, ``time_evaluator``):

- ``new thread``: as the tuner's device worker times a candidate, on a thread of its own;
- ``main thread``: on the process's main thread (how the tuner timed before), address space
  randomized as usual;
- ``main thread, fixed addresses``: the same with randomization off (the
  ``ADDR_NO_RANDOMIZE`` personality, what ``setarch -R`` sets).

The arms alternate so that all see the same machine. For each kernel and arm it prints the
fastest, median and slowest process and their spread (slowest / fastest - 1). A spread far
above the spread within one process means a single measurement cannot be repeated by
another process.

    python benchmarks/layout_bench.py [--workload SPEC ...] [--processes 8] [--json]

Takes about three minutes on two cores. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
    tune,
)

WORKLOADS = ("matmul:192", "conv2d:1x16x28x28,32x3x3,pad=1")
ADDR_NO_RANDOMIZE = 0x0040000


def _no_randomization() -> None:
    """Runs in the child before ``exec``: the new program's addresses are not randomized."""
    libc = ctypes.CDLL(None, use_errno=True)
    current = libc.personality(0xFFFFFFFF)
    if current == -1 or libc.personality(current | ADDR_NO_RANDOMIZE) == -1:
        raise OSError(ctypes.get_errno(), "personality(ADDR_NO_RANDOMIZE) failed")


ARMS = {
    # name: (time on a thread of its own, address space randomized)
    "new_thread": (True, True),
    "main_thread": (False, True),
    "main_thread_fixed_addresses": (False, False),
}


def time_in_fresh_process(
    artifact: str, info: list[Any], core: int, *, own_thread: bool, randomized: bool
) -> float:
    """The library's mean run time, measured by a new process pinned to ``core``."""
    cmd = [sys.executable, __file__, "--time-one", artifact, json.dumps(info), str(core)]
    cmd += [] if own_thread else ["--main-thread"]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=None if randomized else _no_randomization,
    )
    if done.returncode != 0:
        raise SystemExit(f"timing process failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def time_one(artifact: str, info: list[Any], core: int, *, own_thread: bool) -> float:
    """In the child: time the library as the tuner's device worker does (or did, on the
    main thread)."""
    from tuner.metaschedule.run import EvalConfig, run_local

    os.sched_setaffinity(0, {core})
    config = EvalConfig(number=NUMBER, repeat=REPEAT, min_repeat_ms=MIN_REPEAT_MS)
    return statistics.fmean(run_local(artifact, info, config, own_thread=own_thread))


def spread(times: list[float]) -> dict[str, float]:
    return {
        "fastest_s": min(times),
        "median_s": statistics.median(times),
        "slowest_s": max(times),
        "spread": max(times) / min(times) - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload",
        action="append",
        help="a workload spec; repeat for several (default: " + " and ".join(WORKLOADS) + ")",
    )
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--processes", type=int, default=8, help="fresh processes per arm")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--time-one", nargs=3, metavar=("ARTIFACT", "ARGS_INFO", "CORE"))
    parser.add_argument("--main-thread", action="store_true", help="with --time-one")
    args = parser.parse_args()
    if args.time_one:
        artifact, info, core = args.time_one
        print(time_one(artifact, json.loads(info), int(core), own_thread=not args.main_thread))
        return

    from tuner.cpus import available_cpus, plan_cpus

    core = plan_cpus(available_cpus(), devices=1).devices[0][0]
    workloads = args.workload or list(WORKLOADS)
    kernels = []
    with tempfile.TemporaryDirectory(prefix="layout-bench-") as tmp:
        work = Path(tmp)
        tuned = tune("feed-device", work, args.trials, 0, "--lend", "off", workloads=workloads)
        for spec, job in zip(workloads, tuned["jobs"], strict=True):
            record, recorded = best_record(Path(job["db_dir"]))
            artifact, info = build_record(record, work)
            times: dict[str, list[float]] = {arm: [] for arm in ARMS}
            for _ in range(args.processes):
                for arm, (own_thread, randomized) in ARMS.items():
                    times[arm].append(
                        time_in_fresh_process(
                            artifact, info, core, own_thread=own_thread, randomized=randomized
                        )
                    )
            kernels.append(
                {
                    "workload": spec,
                    "recorded_s": recorded,
                    **{arm: {"times_s": t, **spread(t)} for arm, t in times.items()},
                }
            )
    result = {"processes": args.processes, "device_core": core, "kernels": kernels}
    if args.json:
        print(json.dumps(result))
        return
    print(f"each tuned kernel timed in {args.processes} fresh processes per arm, core {core}")
    for kernel in kernels:
        print(f"  {kernel['workload']} (recorded while tuning {kernel['recorded_s'] * 1e6:.1f} us)")
        for arm in ARMS:
            figures = kernel[arm]
            print(
                f"    {arm.replace('_', ' '):<28} fastest {figures['fastest_s'] * 1e6:8.1f}  "
                f"median {figures['median_s'] * 1e6:8.1f}  slowest "
                f"{figures['slowest_s'] * 1e6:8.1f} us  spread {figures['spread']:6.1%}"
            )


if __name__ == "__main__":
    main()
