"""Policies as pure functions: ready stages + free resources + job views -> assignments."""

from __future__ import annotations

import pytest

from collectors.jobs import JobState, StageKind
from tuner._base import Assignment, JobView, StageRequest, TunerError, pool_for
from tuner.policies import POLICIES, Priority, ShortestRemaining, create_policy

DEVICE = "device:llvm"


def stage(job: str, kind: StageKind, task: str = "t", iteration: int = 0) -> StageRequest:
    return StageRequest(job, task, iteration, kind, pool_for(kind, DEVICE))


def view(job: str, order: int, **kw: object) -> JobView:
    fields: dict = {
        "id": job,
        "priority": 0,
        "state": JobState.RUNNING,
        "submitted_at": 0.0,
        "order": order,
        "ready_since": 0.0,
    }
    fields.update(kw)
    return JobView(**fields)


def plan(assignments: list[Assignment]) -> list[tuple[str, str, str]]:
    """(job, stage letter, resource) of each assignment, in the policy's order."""
    return [(a.stage.job, a.stage.kind.value[0].upper(), a.resource) for a in assignments]


def test_interleaved_gives_each_free_resource_the_longest_waiting_stage() -> None:
    jobs = {
        "a": view("a", 1, ready_since=5.0),
        "b": view("b", 2, ready_since=2.0),
        "c": view("c", 3, ready_since=4.0),
    }
    ready = [
        stage("a", StageKind.BUILD),
        stage("b", StageKind.SELECT),
        stage("c", StageKind.PROFILE),
    ]
    out = create_policy("interleaved").assign(ready, ["client:0", "device:llvm:0"], jobs, 9.0)
    assert plan(out) == [("b", "S", "client:0"), ("c", "P", "device:llvm:0")]


def test_interleaved_breaks_ties_by_submission_and_fills_every_resource_of_a_pool() -> None:
    jobs = {j: view(j, order, ready_since=1.0) for order, j in enumerate(["x", "y", "z"], 1)}
    ready = [stage(j, StageKind.SELECT) for j in ("z", "y", "x")]
    out = create_policy("interleaved").assign(ready, ["client:0", "client:1"], jobs, 3.0)
    assert plan(out) == [("x", "S", "client:0"), ("y", "S", "client:1")]


def test_interleaved_assigns_nothing_without_a_free_resource_of_the_pool() -> None:
    jobs = {"a": view("a", 1)}
    policy = create_policy("interleaved")
    assert policy.assign([stage("a", StageKind.PROFILE)], ["client:0"], jobs, 0.0) == []
    assert policy.assign([], ["client:0", "device:llvm:0"], jobs, 0.0) == []


def test_sequential_runs_only_the_first_active_job() -> None:
    jobs = {"a": view("a", 1), "b": view("b", 2, ready_since=0.0)}
    policy = create_policy("sequential")
    free = ["client:0", "device:llvm:0"]
    # a is busy with a stage (nothing ready): b must wait even though the client is free.
    assert policy.assign([stage("b", StageKind.SELECT)], free, jobs, 1.0) == []
    ready = [stage("b", StageKind.SELECT), stage("a", StageKind.PROFILE)]
    assert plan(policy.assign(ready, free, jobs, 1.0)) == [("a", "P", "device:llvm:0")]


def test_sequential_lets_the_next_job_run_while_the_first_is_paused() -> None:
    jobs = {"a": view("a", 1, state=JobState.PAUSED), "b": view("b", 2)}
    out = create_policy("sequential").assign([stage("b", StageKind.SELECT)], ["client:0"], jobs, 0)
    assert plan(out) == [("b", "S", "client:0")]


def test_synchronous_waits_for_every_active_job_then_stacks_them_on_one_resource() -> None:
    policy = create_policy("synchronous")
    assert policy.exclusive is False
    jobs = {"a": view("a", 1), "b": view("b", 2), "c": view("c", 3, state=JobState.PAUSED)}
    free = ["client:0", "client:1", "device:llvm:0"]
    assert policy.assign([stage("a", StageKind.BUILD)], free, jobs, 0.0) == []
    ready = [stage("b", StageKind.BUILD), stage("a", StageKind.BUILD)]
    assert plan(policy.assign(ready, free, jobs, 0.0)) == [
        ("a", "B", "client:0"),
        ("b", "B", "client:0"),
    ]


def test_synchronous_aligns_jobs_on_the_first_jobs_stage_kind() -> None:
    jobs = {"a": view("a", 1), "b": view("b", 2)}
    ready = [stage("a", StageKind.SELECT), stage("b", StageKind.PROFILE)]
    out = create_policy("synchronous").assign(ready, ["client:0", "device:llvm:0"], jobs, 0.0)
    assert plan(out) == [("a", "S", "client:0")]


def test_priority_runs_higher_priority_first_and_round_robins_equals() -> None:
    jobs = {
        "low": view("low", 1, priority=0, ready_since=0.0),
        "hi-late": view("hi-late", 2, priority=5, ready_since=3.0),
        "hi-early": view("hi-early", 3, priority=5, ready_since=1.0),
    }
    ready = [stage(j, StageKind.SELECT) for j in jobs]
    policy = Priority(aging=0.0)
    out = policy.assign(ready, ["client:0", "client:1"], jobs, 4.0)
    assert plan(out) == [("hi-early", "S", "client:0"), ("hi-late", "S", "client:1")]


def test_priority_aging_lets_a_long_waiting_job_overtake() -> None:
    jobs = {
        "low": view("low", 1, priority=0, ready_since=0.0),
        "hi": view("hi", 2, priority=2, ready_since=100.0),
    }
    ready = [stage("low", StageKind.SELECT), stage("hi", StageKind.SELECT)]
    policy = Priority(aging=0.01)  # one level per 100 s waited
    # At 150 s: low waited 150 s -> 1.5; hi waited 50 s -> 2.5.
    assert plan(policy.assign(ready, ["client:0"], jobs, 150.0))[0][0] == "hi"
    # At 500 s, hi just became ready again: low 0 + 5.0 beats hi 2 + 0.
    jobs["hi"] = view("hi", 2, priority=2, ready_since=500.0)
    assert plan(policy.assign(ready, ["client:0"], jobs, 500.0))[0][0] == "low"


def test_feed_device_prefers_builds_then_round_robin() -> None:
    jobs = {"a": view("a", 1, ready_since=0.0), "b": view("b", 2, ready_since=2.0)}
    ready = [stage("a", StageKind.UPDATE), stage("b", StageKind.BUILD)]
    out = create_policy("feed-device").assign(ready, ["client:0"], jobs, 3.0)
    assert plan(out) == [("b", "B", "client:0")]
    out = create_policy("interleaved").assign(ready, ["client:0"], jobs, 3.0)
    assert plan(out) == [("a", "U", "client:0")]


def test_shortest_remaining_prefers_least_expected_work() -> None:
    estimates = {StageKind.SELECT: 2.0, StageKind.PROFILE: 1.0}
    jobs = {
        "big": view("big", 1, trials_done=0, trials_total=100, stage_estimates=estimates),
        "small": view("small", 2, trials_done=60, trials_total=100, stage_estimates=estimates),
        # Fewest trials left but slow stages: 30 x 9 s, more than small's 40 x 3 s.
        "slow": view(
            "slow", 3, trials_done=70, trials_total=100,
            stage_estimates={StageKind.SELECT: 8.0, StageKind.PROFILE: 1.0},
        ),
    }  # fmt: skip
    ready = [stage(j, StageKind.SELECT) for j in jobs]
    policy = ShortestRemaining(aging=0.0)
    out = policy.assign(ready, ["client:0", "client:1"], jobs, 0.0)
    assert plan(out) == [("small", "S", "client:0"), ("slow", "S", "client:1")]


def test_shortest_remaining_feeds_the_device_and_ages() -> None:
    jobs = {
        "near": view("near", 1, trials_done=9, trials_total=10, ready_since=0.0),
        "far": view("far", 2, trials_done=0, trials_total=10, ready_since=0.0),
    }
    ready = [stage("near", StageKind.SELECT), stage("far", StageKind.BUILD)]
    assert plan(ShortestRemaining(aging=0.0).assign(ready, ["client:0"], jobs, 0.0))[0][0] == "far"
    no_feed = ShortestRemaining(aging=0.0, feed_device=False)
    assert plan(no_feed.assign(ready, ["client:0"], jobs, 0.0))[0][0] == "near"
    # Remaining 1 vs 10 (no estimates: 1 s a trial); far waited 20 s at 0.5/s: 10 - 10 = 0.
    jobs["near"] = view("near", 1, trials_done=9, trials_total=10, ready_since=20.0)
    aged = ShortestRemaining(aging=0.5, feed_device=False)
    assert plan(aged.assign(ready, ["client:0"], jobs, 20.0))[0][0] == "far"


def test_policies_are_pure() -> None:
    jobs = {"a": view("a", 1, ready_since=1.0), "b": view("b", 2, ready_since=0.5)}
    ready = [stage("a", StageKind.SELECT), stage("b", StageKind.BUILD)]
    for name in POLICIES:
        policy = create_policy(name)
        first = policy.assign(ready, ["client:0", "device:llvm:0"], jobs, 2.0)
        again = policy.assign(ready, ["client:0", "device:llvm:0"], jobs, 2.0)
        assert first == again, name
        assert len({a.resource for a in first}) == len(first) or not policy.exclusive


def test_create_policy_lists_valid_names_for_an_unknown_one() -> None:
    with pytest.raises(TunerError) as info:
        create_policy("fastest")
    message = str(info.value)
    assert "'fastest'" in message
    for name in ("interleaved", "sequential", "synchronous", "priority", "shortest-remaining"):
        assert name in message


def test_create_policy_rejects_unknown_and_bad_arguments() -> None:
    with pytest.raises(TunerError, match=r"unknown argument 'agin'.*aging"):
        create_policy("priority", agin=1.0)
    with pytest.raises(TunerError, match="takes no arguments"):
        create_policy("interleaved", aging=1.0)
    with pytest.raises(TunerError, match="aging must be"):
        create_policy("priority", aging=-1)
    with pytest.raises(TunerError, match="aging must be"):
        create_policy("shortest-remaining", aging=float("nan"))
    assert create_policy("priority", aging=0.5).aging == 0.5


def test_an_idle_device_is_lent_only_to_a_stage_that_ends_before_the_next_profile() -> None:
    from tuner.policies import lend_idle_devices

    select = stage("a", StageKind.SELECT)
    update = stage("b", StageKind.UPDATE)
    seconds = {select: 3.0, update: 1.0}
    spare = ["device:llvm:0"]

    def lent(waiting: list, next_profile: dict, known: dict = seconds) -> list:
        out = lend_idle_devices(spare, waiting, known.get, next_profile, 10.0)
        return [(a.stage.job, a.resource) for a in out]

    # No profile coming: the first stage in the queue takes the device.
    assert lent([select, update], {}) == [("a", "device:llvm:0")]
    # A profile expected in 2 s: the 3 s select would make it wait; the 1 s update fits.
    assert lent([select, update], {"device:llvm": 12.0}) == [("b", "device:llvm:0")]
    # A profile waiting already, or a stage of unknown length: nothing is lent.
    assert lent([select, update], {"device:llvm": 10.0}) == []
    assert lent([select], {}, known={}) == []
    # Another pool's profile does not hold this device back.
    assert lent([select], {"device:rpc:pi": 10.0}) == [("a", "device:llvm:0")]
