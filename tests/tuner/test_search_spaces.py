"""Design spaces per target (real MetaSchedule, llvm): kernels for one core have no parallel
loops and no rfactor, the rest of MetaSchedule's rules stay; more cores keep its rules."""

from __future__ import annotations

import pytest
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner.metaschedule.spaces import DEFAULT, runs_on_one_core, space_generator
from tuner.metaschedule.targets import target_config
from tuner.metaschedule.workloads import workload_module

WORKLOADS = ("matmul:128", "conv2d:1x16x28x28,32x3x3,pad=1")


def _candidates(workload: str, cores: int) -> tuple[list[str], list[str]]:
    """(each design space's trace, each post-processed candidate's TIR)."""
    target = Target(target_config("llvm", cores))
    context = ms.TuneContext(
        workload_module(workload), target=target, space_generator=space_generator(target),
        task_name="t", rand_state=1,
    )  # fmt: skip
    spaces = context.generate_design_space()
    traces, scripts = [], []
    for space in spaces:
        traces.append(str(space.trace))
        if all(postproc.apply(space) for postproc in context.space_generator.postprocs):
            scripts.append(space.mod.script())
    return traces, scripts


@pytest.mark.parametrize("workload", WORKLOADS)
def test_kernels_for_one_core_have_no_parallel_loops_or_rfactor(workload: str) -> None:
    traces, scripts = _candidates(workload, 1)
    assert scripts, "post-processing rejected every design space"
    assert not any("meta_schedule.parallel" in t or "rfactor" in t.lower() for t in traces)
    assert not any("T.parallel" in s for s in scripts)
    # The rest of MetaSchedule's rules are still there: tiles to search, vector loops.
    assert any("sample_perfect_tile" in t for t in traces)
    assert any("T.vectorized" in s for s in scripts)


@pytest.mark.parametrize("workload", WORKLOADS)
def test_kernels_for_two_cores_keep_metaschedules_parallel_loops(workload: str) -> None:
    traces, scripts = _candidates(workload, 2)
    assert any("meta_schedule.parallel" in t for t in traces)
    assert any("T.parallel" in s for s in scripts)


def test_only_a_cpu_target_of_one_core_drops_parallel_rules() -> None:
    one, two = Target(target_config("llvm", 1)), Target(target_config("llvm", 2))
    assert runs_on_one_core(one) and not runs_on_one_core(two)
    assert space_generator(target_config("cuda", 1)) == DEFAULT
    generator = space_generator(dict(target_config("llvm", 1)))
    names = [type(rule).__name__ for rule in generator.sch_rules]
    assert "AddRFactor" not in names and "MultiLevelTiling" in names
    assert not any(type(m).__name__ == "MutateParallel" for m in generator.mutator_probs)
    default = space_generator(two)  # MetaSchedule's rules and mutators, all of them
    assert "AddRFactor" in [type(rule).__name__ for rule in default.sch_rules]
    assert any(type(m).__name__ == "MutateParallel" for m in default.mutator_probs)
