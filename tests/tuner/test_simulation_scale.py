"""Simulated scale: many jobs on many resources stay fast and keep the invariants; device
kinds scale profile times."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

import pytest

from collectors.jobs import StageKind
from collectors.memory_store import MemoryStore
from tuner._base import TunerError
from tuner.simulation import (
    DeviceKind,
    StageTimes,
    kinds_of_jobs,
    parse_device_kinds,
    simulate,
)


def _stages(store: MemoryStore) -> list:
    return [s.event for s in store.read(0, kinds=["stage"])]


def test_two_hundred_jobs_run_fast_and_keep_every_invariant() -> None:
    store = MemoryStore()
    began = time.perf_counter()
    result = simulate(jobs=200, clients=16, devices=4, tasks=2, iterations=4, store=store, seed=3)
    took = time.perf_counter() - began
    assert took < 10, f"200 simulated jobs took {took:.1f} s"
    stages = _stages(store)
    assert len(stages) == result.dispatches == 200 * 2 * 4 * 4
    by_resource = defaultdict(list)
    for e in stages:
        by_resource[e.resource].append((e.start, e.end))
    for resource, spans in by_resource.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two stages at once on {resource}"
    by_task = defaultdict(list)
    for e in stages:
        by_task[(e.job, e.task)].append(e)
    for steps in by_task.values():  # a task's stages run in order, one at a time
        steps.sort(key=lambda e: e.start)
        assert [e.stage for e in steps] == ["select", "build", "profile", "update"] * 4
        assert all(b.start >= a.end for a, b in itertools.pairwise(steps))
    finished = [s.event for s in store.read(0, kinds=["job"]) if s.event.change == "finished"]
    assert len(finished) == 200
    assert result.makespan_s >= result.lower_bound_s > 0
    assert result.ratio <= 1.05
    assert 0 < result.per_dispatch_s < 1e-3


def test_device_kinds_scale_profile_times_and_get_their_own_pools() -> None:
    fixed = StageTimes({k: 1.0 + i for i, k in enumerate(StageKind)}, "fixed", 0.0)
    kinds = parse_device_kinds("fast:2:1.0, slow:1:2.5")
    store = MemoryStore()
    result = simulate(
        jobs=4, clients=2, tasks=1, iterations=2, distribution=fixed, device_kinds=kinds,
        store=store,
    )  # fmt: skip
    assert result.devices == 3
    assert set(result.utilization) == {
        "client:0", "client:1", "device:sim:fast:0", "device:sim:fast:1", "device:sim:slow:0"
    }  # fmt: skip
    jobs = {s.event.job: s.event.target for s in store.read(0, kinds=["job"])}
    profile = defaultdict(set)
    for e in _stages(store):
        pool = e.resource.rpartition(":")[0]
        if e.stage == "profile":
            profile[pool].add(round(e.end - e.start, 9))
            assert jobs[e.job] == f"sim:{pool.rpartition(':')[2]}"  # a job stays on its kind
        else:
            assert pool == "client"
    mean = fixed.means[StageKind.PROFILE]
    assert profile == {"device:sim:fast": {mean}, "device:sim:slow": {mean * 2.5}}
    assert result.to_dict()["device_kinds"][1] == {"name": "slow", "count": 1, "speed": 2.5}


def test_random_profile_draws_scale_by_the_kind_speed() -> None:
    one = simulate(jobs=1, tasks=1, iterations=3, device_kinds=[DeviceKind("a", 1, 1.0)])
    slow = simulate(jobs=1, tasks=1, iterations=3, device_kinds=[DeviceKind("a", 1, 3.0)])
    client = one.utilization["client:0"] * one.makespan_s
    assert slow.utilization["client:0"] * slow.makespan_s == pytest.approx(client)
    device_one = one.utilization["device:sim:a:0"] * one.makespan_s
    device_slow = slow.utilization["device:sim:a:0"] * slow.makespan_s
    assert device_slow == pytest.approx(3.0 * device_one)


def test_jobs_spread_over_kinds_by_capacity() -> None:
    fast, slow = DeviceKind("fast", 8, 1.0), DeviceKind("slow", 8, 2.5)
    spread = kinds_of_jobs(1000, [fast, slow])
    assert spread.count(fast) == round(1000 * 8 / (8 + 8 / 2.5))
    assert kinds_of_jobs(3, [fast]) == [fast] * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast:8", "NAME:COUNT:SPEED"),
        ("8:8:1", "NAME must start with a letter"),
        ("fast:x:1", "COUNT must be an integer"),
        ("fast:0:1", "COUNT must be positive"),
        ("fast:1:0", "SPEED must be a finite number > 0"),
        ("fast:1:inf", "SPEED must be a finite number > 0"),
        ("a:1:1,a:2:1", "given twice"),
    ],
)
def test_bad_device_kinds_are_refused_with_the_part_named(text: str, message: str) -> None:
    with pytest.raises(TunerError, match=message):
        parse_device_kinds(text)
