"""Budget allocation across a job's tasks, on scripted convergence histories."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuner.allocation import (
    AllocationSettings,
    TaskProgress,
    choose_task,
    gain_score,
    gradient_score,
    stop_reason,
)


def task(name: str, history: list[float], *, weight: float = 1.0, batch: int = 16,
         seconds: float | None = None) -> TaskProgress:  # fmt: skip
    trials = batch * len(history)
    return TaskProgress(
        name, weight, trials, tuple(history), (batch,) * len(history),
        seconds_per_trial=seconds,
    )  # fmt: skip


def test_every_allocator_gives_each_task_one_batch_first_in_the_jobs_order() -> None:
    tasks = [task("a", [1.0, 0.5]), task("b", []), task("c", [])]
    for allocator in ("gain", "gradient", "uniform"):
        assert choose_task(allocator, tasks) == "b"
    assert choose_task("gain", []) is None
    with pytest.raises(ValueError, match="unknown allocator 'best'"):
        choose_task("best", tasks)


def test_uniform_takes_the_task_with_the_fewest_batches() -> None:
    tasks = [task("a", [1.0, 0.9, 0.8]), task("b", [5.0, 4.0]), task("c", [3.0, 2.0])]
    assert choose_task("uniform", tasks) == "b"  # ties go to the job's order


def test_gradient_favours_the_task_with_the_larger_weighted_gradient() -> None:
    # Both improved alike, but c is called four times per run of the model.
    flat = [2.0, 1.9, 1.8, 1.7]
    tasks = [task("a", flat), task("c", flat, weight=4.0)]
    assert choose_task("gradient", tasks) == "c"
    # MetaSchedule's formula: alpha * backward + (1 - alpha) * forward, times the weight.
    settings = AllocationSettings()
    expected = 4.0 * (0.2 * (2.0 - 1.7) / 3 + 0.8 * 1.7 / 4)
    assert gradient_score(tasks[1], settings) == pytest.approx(expected)
    # A task without a valid measurement is skipped while others can gain.
    broken = task("x", [math.inf, math.inf])
    assert choose_task("gradient", [broken, task("a", flat)]) == "a"


def test_gain_favours_the_faster_falling_latency_per_second_of_tuning() -> None:
    # Same history, same weight; b's trials cost a quarter of a's time.
    history = [4.0, 3.0, 2.5, 2.2]
    slow, quick = task("a", history, seconds=2.0), task("b", history, seconds=0.5)
    assert choose_task("gain", [slow, quick]) == "b"
    assert choose_task("gradient", [slow, quick]) == "a"  # MetaSchedule ignores the cost
    # The larger expected gain wins at equal cost: a still falls, b has flattened.
    falling = task("a", [4.0, 3.0, 2.0, 1.0], seconds=1.0)
    flat = task("b", [1.0, 1.0, 1.0, 1.0], seconds=1.0)
    assert gain_score(falling, AllocationSettings()) > gain_score(flat, AllocationSettings())
    assert choose_task("gain", [flat, falling]) == "a"


def test_a_dead_task_with_a_small_share_stops_and_says_why() -> None:
    big = task("conv", [10.0, 8.0, 7.0, 6.5, 6.0], weight=3.0)
    dead = task("add", [0.02, 0.02, 0.02, 0.02], weight=2.0)
    reason = stop_reason(dead, [big, dead])
    assert reason is not None
    assert "0.0% better over its last 3 batches (48 trials)" in reason
    assert "0.2% of the model's estimated latency" in reason
    # Improving, or holding much of the latency, or too young to judge: it goes on.
    assert stop_reason(big, [big, dead]) is None
    heavy_dead = task("conv2", [6.0, 6.0, 6.0, 6.0], weight=3.0)
    assert stop_reason(heavy_dead, [heavy_dead, dead]) is None
    young = task("add", [0.02, 0.02], weight=2.0)
    assert stop_reason(young, [big, young]) is None
    falling = task("add", [0.04, 0.03, 0.025, 0.02], weight=2.0)
    assert stop_reason(falling, [big, falling]) is None


@given(
    st.lists(
        st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=6).map(sorted).map(lambda h: h[::-1]),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["gain", "gradient", "uniform"]),
)
def test_an_allocator_always_names_one_of_the_tasks(
    histories: list[list[float]], name: str
) -> None:
    tasks = [task(f"t{i}", h, seconds=0.1 * (i + 1)) for i, h in enumerate(histories)]
    assert choose_task(name, tasks) in {t.name for t in tasks}
