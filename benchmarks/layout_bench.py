"""How much a tuned kernel's measured time depends on the process that times it.

Tunes each workload briefly (``tuneloom tune`` as ``scheduler_real.py`` runs it, real TVM on
llvm), builds its best schedule once, then times that one library in ``--processes`` fresh
processes, each pinned to the device core with the tuner's own timing path
(``tuner.metaschedule.run.run_local``: inputs filled by TVM, ``time_evaluator``), first with
the address space randomized as usual, then with randomization off (the
``ADDR_NO_RANDOMIZE`` personality, what ``setarch -R`` sets). The processes alternate between
the two modes so that both see the same machine.

For each kernel and mode it prints the fastest, median and slowest process and their spread
(slowest / fastest - 1). A spread far above the spread within one process means the time
depends on where the process's memory landed, which no single measurement can tell.

    python benchmarks/layout_bench.py [--workload SPEC ...] [--processes 8] [--json]

Takes about two minutes on two cores. Run it on an otherwise idle machine.
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


def time_in_fresh_process(artifact: str, info: list[Any], core: int, randomized: bool) -> float:
    """The library's mean run time, measured by a new process pinned to ``core``."""
    cmd = [sys.executable, __file__, "--time-one", artifact, json.dumps(info), str(core)]
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


def time_one(artifact: str, info: list[Any], core: int) -> float:
    """In the child: time the library as the tuner's device worker does."""
    from tuner.metaschedule.run import EvalConfig, run_local

    os.sched_setaffinity(0, {core})
    config = EvalConfig(number=NUMBER, repeat=REPEAT, min_repeat_ms=MIN_REPEAT_MS)
    return statistics.fmean(run_local(artifact, info, config))


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
    parser.add_argument("--processes", type=int, default=8, help="fresh processes per mode")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--time-one", nargs=3, metavar=("ARTIFACT", "ARGS_INFO", "CORE"))
    args = parser.parse_args()
    if args.time_one:
        artifact, info, core = args.time_one
        print(time_one(artifact, json.loads(info), int(core)))
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
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.processes):
                for randomized in (True, False):
                    times[randomized].append(
                        time_in_fresh_process(artifact, info, core, randomized)
                    )
            kernels.append(
                {
                    "workload": spec,
                    "recorded_s": recorded,
                    "randomized": {"times_s": times[True], **spread(times[True])},
                    "not_randomized": {"times_s": times[False], **spread(times[False])},
                }
            )
    result = {"processes": args.processes, "device_core": core, "kernels": kernels}
    if args.json:
        print(json.dumps(result))
        return
    print(f"each tuned kernel timed in {args.processes} fresh processes per mode, core {core}")
    for kernel in kernels:
        print(f"  {kernel['workload']} (recorded while tuning {kernel['recorded_s'] * 1e6:.1f} us)")
        for mode in ("randomized", "not_randomized"):
            figures = kernel[mode]
            print(
                f"    addresses {mode.replace('_', ' '):<15} fastest "
                f"{figures['fastest_s'] * 1e6:8.1f}  median {figures['median_s'] * 1e6:8.1f}  "
                f"slowest {figures['slowest_s'] * 1e6:8.1f} us  spread {figures['spread']:6.1%}"
            )


if __name__ == "__main__":
    main()
