"""Candidates that recompute a producer over and over (real MetaSchedule schedules, llvm):
the factor counts a block's runs per element it writes, and CPU searches reject those above
the limit."""

from __future__ import annotations

import pytest
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner.metaschedule.recompute import RECOMPUTE_LIMIT, LimitRecompute, recompute_factor
from tuner.metaschedule.settings import SMALL_SEARCH
from tuner.metaschedule.spaces import space_generator
from tuner.metaschedule.targets import target_config
from tuner.metaschedule.workloads import workload_module

CONV = "conv2d:1x16x28x28,32x3x3,pad=1"  # 16x30x30 padded input, 32x28x28 output


def _padding_at(loop: int | None) -> s_tir.Schedule:
    """The convolution, its loops ordered (batch, row, column, output channel, input channel,
    kernel row, kernel column), with its padding computed at the ``loop``-th of them (None:
    where it is, at the root)."""
    sch = s_tir.Schedule(workload_module(CONV))
    pad, conv = sch.get_sblock("pad"), sch.get_sblock("O")
    b, f, y, x, rc, ry, rx = sch.get_loops(conv)
    sch.reorder(b, y, x, f, rc, ry, rx)
    if loop is not None:
        sch.compute_at(pad, sch.get_loops(conv)[loop])
    return sch


def _factor(sch: s_tir.Schedule) -> float:
    return recompute_factor(sch.mod["main"])


def test_blocks_at_the_root_run_once_per_element() -> None:
    assert _factor(_padding_at(None)) == 1.0


def test_padding_under_the_output_rows_recomputes_its_halo() -> None:
    # Per output pixel: a 16x3x3 window of the 16x30x30 padded input.
    assert _factor(_padding_at(2)) == pytest.approx(28 * 28 * 16 * 3 * 3 / (16 * 30 * 30))


def test_padding_under_the_innermost_reduction_loop_runs_for_every_step() -> None:
    # One element for every step of every output element.
    factor = _factor(_padding_at(-1))
    assert factor == pytest.approx(28 * 28 * 32 * 16 * 3 * 3 / (16 * 30 * 30))
    assert factor > RECOMPUTE_LIMIT


def test_limit_recompute_rejects_only_schedules_above_the_limit() -> None:
    postproc = LimitRecompute()
    assert postproc.apply(_padding_at(None))
    assert postproc.apply(_padding_at(2))
    assert not postproc.apply(_padding_at(-1))
    assert LimitRecompute(limit=5.0).apply(_padding_at(2)) is False


@pytest.mark.parametrize("cores", [1, 2])
def test_cpu_searches_start_with_the_limit_and_sample_within_it(cores: int) -> None:
    target = Target(target_config("llvm", cores))
    generator = space_generator(target)
    assert not generator.postprocs[0].apply(_padding_at(-1))  # the limit comes first
    context = ms.TuneContext(
        workload_module(CONV), target=target, space_generator=generator, task_name="conv",
        search_strategy=SMALL_SEARCH.strategy(), rand_state=3, num_threads=1,
    )  # fmt: skip
    context.pre_tuning(
        max_trials=64,
        num_trials_per_iter=16,
        design_spaces=context.generate_design_space(),
        database=ms.database.MemoryDatabase(),
        cost_model=ms.cost_model.RandomModel(),
    )
    candidates = context.generate_measure_candidates()
    assert candidates
    assert all(_factor(c.sch) <= RECOMPUTE_LIMIT for c in candidates)
