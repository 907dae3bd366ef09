"""Start-up before the first search: MetaSchedule's tensor intrinsics, all targets' (as every
``TuneContext`` imports them) against the host architecture's only (``tuner.metaschedule.
intrinsics``), each in fresh processes, alternating, side by side in one run.

Each process imports TVM and MetaSchedule, loads the intrinsics one way, then builds a
``TuneContext`` for a conv2d and generates its design space (what a task's first select does
before it searches). Printed: the medians of the intrinsics step and of the whole start-up
(interpreter start to design space), and their ratios.

    python benchmarks/startup_bench.py [--rounds 3] [--json]

Takes about a minute on two cores; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, time
started = time.perf_counter()
import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target
from tuner.metaschedule.targets import target_config
from tuner.metaschedule.workloads import workload_module
target = Target(target_config("llvm", 1))
before = time.perf_counter()
if {whole}:
    import tvm.s_tir.tensor_intrin
else:
    from tuner.metaschedule.intrinsics import load_tensor_intrinsics
    load_tensor_intrinsics(target)
after = time.perf_counter()
ctx = ms.TuneContext(workload_module("conv2d:1x16x28x28,32x3x3,pad=1"), target=target,
                     space_generator="post-order-apply", task_name="probe")
ctx.generate_design_space()
print(json.dumps({{"intrinsics_s": after - before, "total_s": time.perf_counter() - started}}))
"""


def probe(whole: bool) -> dict[str, float]:
    """One fresh process; its intrinsics and total start-up seconds."""
    code = PROBE.format(whole=whole)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"probe failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"whole": [], "host": []}
    for _ in range(args.rounds):
        runs["whole"].append(probe(whole=True))
        runs["host"].append(probe(whole=False))
    result = {}
    for name, samples in runs.items():
        for key in ("intrinsics_s", "total_s"):
            result[f"{name}_{key}"] = statistics.median(s[key] for s in samples)
    result["intrinsics_ratio"] = result["host_intrinsics_s"] / result["whole_intrinsics_s"]
    result["total_ratio"] = result["host_total_s"] / result["whole_total_s"]
    result["rounds"] = args.rounds
    if args.json:
        print(json.dumps(result))
        return
    print(f"median of {args.rounds} fresh processes each")
    print(
        f"  intrinsics: every target {result['whole_intrinsics_s']:.2f} s, host only "
        f"{result['host_intrinsics_s']:.2f} s ({result['intrinsics_ratio']:.3f}x)"
    )
    print(
        f"  start-up to a first design space: {result['whole_total_s']:.2f} s vs "
        f"{result['host_total_s']:.2f} s ({result['total_ratio']:.3f}x)"
    )


if __name__ == "__main__":
    main()
