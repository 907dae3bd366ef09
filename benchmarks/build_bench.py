"""Build cost of one batch of MetaSchedule candidates: default LocalBuilder vs the build pool.

Draws a batch of candidates (16 by default) from a seeded MetaSchedule search over a
workload and builds the same batch, side by side and alternating in rounds, with:

- ``default``: ``ms.builder.LocalBuilder()`` as MetaSchedule configures it: a new process
  pool per batch whose workers each import ``tvm.s_tir.tensor_intrin``.
- ``lean_f_build``: ``LocalBuilder(f_build=...)`` with a build function that skips that
  import (still a new pool per batch).
- ``pool_cold``: tuneloom's ``BuildPool`` (long-lived workers pinned to the client cores),
  first batch, worker start-up included.
- ``pool_warm``: the same pool on a later batch (what every batch after the first costs).
- ``pool_all_cores_warm``: a pool with one worker per core of the machine, unpinned like
  ``LocalBuilder``'s workers (same cores as the two above it; a tuning run keeps the device
  cores for profiling instead).

Prints the median (and fastest) seconds per batch of each and the ratios of the medians
against ``default``, measured in one run; ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from typing import Any


def lean_build(mod: Any, target: Any, _params: Any) -> Any:
    """The default build without importing tvm.s_tir.tensor_intrin in the worker."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target=target)


def candidates(workload: str, count: int, seed: int, target: Any) -> list[Any]:
    """``count`` distinct scheduled modules from a seeded MetaSchedule search."""
    from tvm.s_tir import meta_schedule as ms

    from tuner.metaschedule.workloads import workload_module

    ctx = ms.TuneContext(
        workload_module(workload),
        target=target,
        space_generator="post-order-apply",
        search_strategy=ms.search_strategy.EvolutionarySearch(
            population_size=max(64, 2 * count), init_min_unmeasured=min(50, count)
        ),
        task_name=workload,
        rand_state=seed,
        num_threads=1,
    )
    ctx.pre_tuning(
        max_trials=1 << 20,
        num_trials_per_iter=count,
        design_spaces=ctx.generate_design_space(),
        database=ms.database.MemoryDatabase(),
        cost_model=ms.cost_model.RandomModel(seed=seed),
    )
    found = ctx.generate_measure_candidates() or []
    ctx.post_tuning()
    if len(found) < count:
        raise SystemExit(f"the search gave {len(found)} candidates, wanted {count}")
    return [c.sch.mod for c in found[:count]]


def time_local_builder(builder: Any, mods: list[Any], target: Any) -> tuple[float, int]:
    from tvm.s_tir import meta_schedule as ms

    started = time.perf_counter()
    results = builder.build([ms.builder.BuilderInput(mod, target) for mod in mods])
    seconds = time.perf_counter() - started
    for result in results:
        if result.artifact_path:
            shutil.rmtree(os.path.dirname(result.artifact_path), ignore_errors=True)
    return seconds, sum(1 for r in results if r.error_msg)


def time_pool(pool: Any, mods: list[Any], target: Any) -> tuple[float, int]:
    from tuner.metaschedule.build import remove_artifact

    started = time.perf_counter()
    results = pool.build(mods, target)
    seconds = time.perf_counter() - started
    for result in results:
        remove_artifact(result.artifact)
    return seconds, sum(1 for r in results if r.error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="matmul:128", help="workload spec (matmul:128)")
    parser.add_argument("--candidates", type=int, default=16, help="batch size (16)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per method (3)")
    parser.add_argument("--seed", type=int, default=1, help="search seed (1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    from tvm.s_tir import meta_schedule as ms
    from tvm.target import Target

    from tuner.cpus import available_cpus, plan_cpus
    from tuner.metaschedule.build import BuildPool
    from tuner.metaschedule.targets import target_config

    plan = plan_cpus(available_cpus(), devices=1)
    target = Target(target_config("llvm", len(plan.devices[0])))
    mods = candidates(args.workload, args.candidates, args.seed, target)

    samples: dict[str, list[float]] = {
        "default": [],
        "lean_f_build": [],
        "pool_cold": [],
        "pool_warm": [],
        "pool_all_cores_warm": [],
    }
    errors = dict.fromkeys(samples, 0)
    for _ in range(args.rounds):
        for name, builder in (
            ("default", ms.builder.LocalBuilder()),
            ("lean_f_build", ms.builder.LocalBuilder(f_build=lean_build)),
        ):
            seconds, failed = time_local_builder(builder, mods, target)
            samples[name].append(seconds)
            errors[name] += failed
        with BuildPool(plan.client) as pool:
            for name in ("pool_cold", "pool_warm"):
                seconds, failed = time_pool(pool, mods, target)
                samples[name].append(seconds)
                errors[name] += failed
        with BuildPool(None, workers=os.cpu_count() or 1) as pool:
            pool.start()
            seconds, failed = time_pool(pool, mods, target)
            samples["pool_all_cores_warm"].append(seconds)
            errors["pool_all_cores_warm"] += failed

    median = {name: statistics.median(values) for name, values in samples.items()}
    result = {
        "workload": args.workload,
        "candidates": args.candidates,
        "rounds": args.rounds,
        "cpus": plan.describe(),
        "local_builder_workers": os.cpu_count(),
        "pool_workers": len(plan.client),
        "seconds_per_batch": {k: round(v, 3) for k, v in median.items()},
        "fastest_seconds_per_batch": {k: round(min(v), 3) for k, v in samples.items()},
        "samples": {k: [round(s, 3) for s in v] for k, v in samples.items()},
        "build_errors": errors,
        "speedup_vs_default": {
            k: round(median["default"] / v, 2) for k, v in median.items() if k != "default"
        },
    }
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(
            f"build cost of {args.candidates} candidates of {args.workload} "
            f"(median of {args.rounds} rounds; {plan.describe()})"
        )
        for name, seconds in median.items():
            ratio = "" if name == "default" else f"  {median['default'] / seconds:5.1f}x faster"
            fastest = min(samples[name])
            print(f"  {name:<20} {seconds:7.2f} s (fastest {fastest:6.2f} s){ratio}")
        if any(errors.values()):
            print(f"  build errors: {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
