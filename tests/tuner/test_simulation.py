"""Simulated jobs: seeded stage-time distributions, the driver, and whole simulated runs."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from collectors.jobs import STAGE_ORDER, StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from tuner._base import TunerError
from tuner.simulation import (
    DISTRIBUTIONS,
    THESIS_MEANS,
    SimulatedDriver,
    StageTimes,
    job_sizes,
    lower_bound,
    simulate,
    stage_times,
)


def test_thesis_means_split_update_and_select_as_documented() -> None:
    assert THESIS_MEANS[StageKind.BUILD] == 8.3
    assert THESIS_MEANS[StageKind.PROFILE] == 39.5
    assert THESIS_MEANS[StageKind.SELECT] + THESIS_MEANS[StageKind.UPDATE] == 44.0


@pytest.mark.parametrize("name", ["thesis", "thesis-gamma"])
def test_random_distributions_keep_the_means_and_spread(name: str) -> None:
    times = stage_times(name)
    rng = random.Random(7)
    for kind in STAGE_ORDER:
        draws = [times.sample(kind, rng) for _ in range(20_000)]
        mean = statistics.fmean(draws)
        assert mean == pytest.approx(THESIS_MEANS[kind], rel=0.02)
        assert statistics.pstdev(draws) / mean == pytest.approx(times.cv, rel=0.06)
        assert min(draws) > 0


def test_fixed_distribution_is_the_means() -> None:
    times = stage_times("thesis-fixed")
    rng = random.Random(1)
    assert [times.sample(k, rng) for k in STAGE_ORDER] == [THESIS_MEANS[k] for k in STAGE_ORDER]


def test_bad_distributions_are_refused() -> None:
    with pytest.raises(TunerError, match=r"unknown stage-time distribution 'paper'.*thesis"):
        stage_times("paper")
    with pytest.raises(TunerError, match="unknown shape"):
        StageTimes(THESIS_MEANS, "uniform")
    with pytest.raises(TunerError, match="stage profile: mean"):
        StageTimes({**THESIS_MEANS, StageKind.PROFILE: -1.0})
    assert set(DISTRIBUTIONS) >= {"thesis", "thesis-gamma", "thesis-fixed"}


def test_driver_plans_round_robin_over_tasks_and_draws_reproducibly() -> None:
    def drive(seed: int) -> tuple[list[tuple[str, int, StageKind]], list[float]]:
        driver = SimulatedDriver(
            "j1", tasks=["a", "b"], iterations=2, times=stage_times("thesis"), seed=seed
        )
        plan, took = [], []
        while (step := driver.next_stage()) is not None:
            plan.append(step)
            took.append(driver.run(*step, resource="client:0").duration)
        assert driver.trials() == (2 * 2 * 64, 2 * 2 * 64)
        assert driver.total_work() == pytest.approx(sum(took))
        return plan, took

    plan, took = drive(3)
    assert plan == [(t, i, k) for i in range(2) for t in ("a", "b") for k in STAGE_ORDER]
    assert drive(3)[1] == took
    assert drive(4)[1] != took


def test_driver_emits_task_and_simulated_record_events() -> None:
    store = MemoryStore()
    sink = EventSink(store, now=lambda: 5.0, clock="sim")
    driver = SimulatedDriver(
        "j1", tasks=["a"], iterations=2, times=stage_times("thesis"), seed=0, candidates=8,
        sink=sink, records=True,
    )  # fmt: skip
    while (step := driver.next_stage()) is not None:
        driver.run(*step, resource="client:0")
    tasks = store.tasks()
    assert list(tasks["task"]) == ["a"] and list(tasks["op"]) == ["simulated"]
    records = store.records()
    assert len(records) == 16
    assert set(records["origin"]) == {"simulated"} and set(records["clock"]) == {"sim"}
    ok = records.dropna(subset=["mean_secs"])
    assert (ok["mean_secs"] > 0).all()
    assert records["error_class"].isin(["build"]).sum() == len(records) - len(ok)


def test_lower_bound_takes_the_busiest_pool_or_the_longest_job() -> None:
    assert lower_bound({"client": 100.0, "device:x": 60.0}, {"client": 2, "device:x": 1}, 55) == 60
    assert lower_bound({"client": 100.0}, {"client": 1}, 120.0) == 120.0


def test_one_job_takes_exactly_its_own_work() -> None:
    result = simulate(jobs=1, tasks=2, iterations=3, seed=5)
    assert result.makespan_s == pytest.approx(result.lower_bound_s)
    assert result.mean_completion_s == pytest.approx(result.makespan_s)
    assert sum(result.utilization.values()) == pytest.approx(1.0)


def test_simulations_are_reproducible_and_seeded() -> None:
    first = simulate(jobs=3, seed=11, iterations=3)
    assert simulate(jobs=3, seed=11, iterations=3).to_dict() == first.to_dict()
    assert simulate(jobs=3, seed=12, iterations=3).makespan_s != first.makespan_s


def test_sequential_ratio_is_a_whole_iteration_over_its_client_part() -> None:
    result = simulate(jobs=4, policy="sequential", distribution="thesis-fixed", iterations=2)
    iteration = sum(THESIS_MEANS.values())
    client = iteration - THESIS_MEANS[StageKind.PROFILE]
    assert result.ratio == pytest.approx(iteration / client)
    assert result.makespan_s == pytest.approx(4 * 4 * 2 * iteration)


def test_interleaved_meets_the_goal_from_four_jobs() -> None:
    for jobs in (4, 8):
        result = simulate(jobs=jobs, policy="interleaved", seed=jobs)
        assert result.ratio <= 1.05, result.to_dict()
        assert result.utilization["client:0"] > 0.95


def test_synchronous_shares_resources_and_is_the_worst_case() -> None:
    sync = simulate(jobs=3, policy="synchronous", distribution="thesis-fixed", iterations=2)
    seq = simulate(jobs=3, policy="sequential", distribution="thesis-fixed", iterations=2)
    inter = simulate(jobs=3, policy="interleaved", distribution="thesis-fixed", iterations=2)
    # Processor sharing: three stages on one resource take three times as long, together.
    assert sync.makespan_s == pytest.approx(seq.makespan_s)
    assert sync.mean_completion_s == pytest.approx(sync.makespan_s)
    assert sync.mean_completion_s > seq.mean_completion_s
    assert sync.makespan_s > inter.makespan_s


def test_shortest_remaining_lowers_mean_completion_on_mixed_jobs() -> None:
    sizes = job_sizes(8, 4, mixed=True, seed=3)
    assert len(set(sizes)) > 1 and all(1 <= s <= 7 for s in sizes)
    inter = simulate(jobs=8, tasks=sizes, policy="interleaved", seed=3)
    srpt = simulate(jobs=8, tasks=sizes, policy="shortest-remaining", seed=3)
    assert srpt.mean_completion_s < 0.9 * inter.mean_completion_s
    # Same drawn work under both policies: the bound does not depend on the policy.
    assert srpt.lower_bound_s == pytest.approx(inter.lower_bound_s)


def test_more_devices_shorten_a_device_bound_mix() -> None:
    slow_device = StageTimes({**THESIS_MEANS, StageKind.PROFILE: 120.0}, "fixed", 0.0)
    one = simulate(jobs=4, devices=1, distribution=slow_device, iterations=2)
    two = simulate(jobs=4, devices=2, distribution=slow_device, iterations=2)
    assert two.makespan_s < 0.7 * one.makespan_s
    assert set(two.utilization) == {"client:0", "device:sim:0", "device:sim:1"}


def test_simulated_events_go_into_a_store_labelled_sim() -> None:
    store = MemoryStore()
    result = simulate(jobs=2, tasks=1, iterations=2, store=store, source="simulate-test")
    stages = store.stage_intervals()
    assert len(stages) == 2 * 2 * 4
    assert set(stages["clock"]) == {"sim"} and set(stages["source"]) == {"simulate-test"}
    assert stages["end"].max() == pytest.approx(result.makespan_s)
    jobs = store.jobs()
    assert list(jobs["state"]) == ["finished", "finished"]
    assert set(jobs["clock"]) == {"sim"} and set(jobs["target"]) == {"sim"}
    assert all(e.event.clock == "sim" for e in store.read())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jobs": 0}, "jobs must be a positive integer"),
        ({"clients": -1}, "clients must be a positive integer"),
        ({"devices": 0}, "devices must be a positive integer"),
        ({"iterations": 0}, "iterations must be"),
        ({"tasks": [1, 2], "jobs": 3}, "2 counts given for 3 jobs"),
        ({"policy": "fastest"}, "valid policies"),
        ({"distribution": "paper"}, "unknown stage-time distribution"),
    ],
)
def test_bad_input_starts_nothing(kwargs: dict, message: str) -> None:
    store = MemoryStore()
    with pytest.raises(TunerError, match=message):
        simulate(store=store, **kwargs)
    assert store.last_pos() == 0


def test_utilization_is_busy_time_over_makespan() -> None:
    result = simulate(jobs=2, tasks=1, iterations=2, distribution="thesis-fixed")
    client = 2 * 2 * (THESIS_MEANS[StageKind.SELECT] + 8.3 + THESIS_MEANS[StageKind.UPDATE])
    assert result.utilization["client:0"] == pytest.approx(client / result.makespan_s)
    assert math.isclose(result.lower_bound_s, client)
