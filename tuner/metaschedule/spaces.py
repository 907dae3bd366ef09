"""The design spaces a task is searched in.

MetaSchedule's own for the target (``post-order-apply`` with the rules, post-processors and
mutators it picks for it), except for a CPU target of one core: there a parallel loop runs
on the calling thread anyway, yet every call of the kernel still goes through the thread
pool's launch (and reads ``TVM_NUM_THREADS`` from the environment), and a reduction split
by ``rfactor`` to be parallel only adds a pass over its partial sums. So for one core the
spaces have no parallel loops and no rfactor: the same rules otherwise, their parallel
limit switched off (``max_jobs_per_core=-1``). Measured in ``benchmarks/README.md`` ("The
VM's functions compiled, and kernels for one core").

On every CPU target the post-processors start with ``LimitRecompute``
(``tuner.metaschedule.recompute``): no candidate computes a producer inside its consumer's
loops so deep that it runs over and over for each element it writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner.metaschedule.recompute import LimitRecompute

DEFAULT = "post-order-apply"
NO_PARALLELISM = -1  # ``max_jobs_per_core`` that turns the parallel annotation off


def runs_on_one_core(target: Target) -> bool:
    """Whether ``target``'s kernels run on a single CPU core (an llvm target of one core)."""
    return target.kind.name == "llvm" and int(target.attrs.get("num-cores", 0)) == 1


def space_generator(target: Target | Mapping[str, Any] | str) -> Any:
    """The space generator for a task on ``target`` (a ``TuneContext``'s
    ``space_generator``): MetaSchedule's default, on a CPU with ``LimitRecompute`` first
    among its post-processors, and for one core without parallel loops and rfactor."""
    target = target if isinstance(target, Target) else Target(target)
    if target.kind.name != "llvm":
        return DEFAULT
    default = ms.TuneContext(
        _probe_module(), target=target, space_generator=DEFAULT, task_name="probe"
    ).space_generator
    postprocs = [LimitRecompute(), *(postproc.clone() for postproc in default.postprocs)]
    if not runs_on_one_core(target):
        return ms.space_generator.PostOrderApply(
            sch_rules=[rule.clone() for rule in default.sch_rules],
            postprocs=postprocs,
            mutator_probs={m.clone(): float(p) for m, p in default.mutator_probs.items()},
        )
    rules = []
    for rule in default.sch_rules:
        if isinstance(rule, ms.schedule_rule.AddRFactor):
            continue
        if isinstance(rule, ms.schedule_rule.ParallelizeVectorizeUnroll):
            rule = ms.schedule_rule.ParallelizeVectorizeUnroll(
                max_jobs_per_core=NO_PARALLELISM,
                max_vectorize_extent=int(rule.max_vectorize_extent),
                unroll_max_steps=[int(step) for step in rule.unroll_max_steps],
                unroll_explicit=bool(rule.unroll_explicit),
            )
        else:
            rule = rule.clone()
        rules.append(rule)
    mutators = {
        mutator.clone(): float(probability)
        for mutator, probability in default.mutator_probs.items()
        if not isinstance(mutator, ms.mutator.MutateParallel)
    }
    return ms.space_generator.PostOrderApply(
        sch_rules=rules, postprocs=postprocs, mutator_probs=mutators
    )


def _probe_module() -> Any:
    """A small workload: the rules MetaSchedule picks depend on the target, not on it."""
    from tuner.metaschedule.workloads import workload_module

    return workload_module("matmul:16")
