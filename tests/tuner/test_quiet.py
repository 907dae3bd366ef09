"""Quiet profiles: the pure plan of one dispatch pass, exact traces on scripted jobs, and which
timing a would-be best's record keeps."""

from __future__ import annotations

import math
from typing import Any

import pytest
from scheduling_helpers import ScriptedDriver, make_sink, starts

from collectors.jobs import StageKind
from tuner._base import Assignment, StageRequest
from tuner.clock import SimClock
from tuner.quiet import QuietPlan, median_timing, overtaken, plan_quiet, timings_disagree
from tuner.scheduler import Scheduler

C0, C1, D0, D1 = "client:0", "client:1", "device:llvm:0", "device:llvm:1"


def _quiet(job: str = "j1", since: float = 0.0) -> StageRequest:
    return StageRequest(job, "t", 0, StageKind.PROFILE, "device:llvm", since=since, quiet=True)


def _plan(waiting: list[StageRequest], free: list[str], **kwargs: Any) -> QuietPlan:
    options: dict[str, Any] = dict(
        client_work=False, quiet_running=False, hold_since=None, now=10.0, hold_s=1.0
    )
    options.update(kwargs)
    return plan_quiet(waiting, free, **options)


def test_a_quiet_profile_starts_when_no_client_work_runs_and_holds_the_clients() -> None:
    request = _quiet()
    plan = _plan([request], [C0, D0])
    assert plan.start == (Assignment(request, D0),)
    assert plan.hold == {C0}  # no select, build or update starts beside it
    assert plan.demote == () and plan.hold_since is None


def test_it_waits_for_running_client_work_without_holding_anything() -> None:
    plan = _plan([_quiet()], [D0], client_work=True)  # the one client runs a select
    assert plan.start == () and plan.hold == frozenset() and plan.demote == ()
    assert plan.no_lend == {D0}  # its device stays free for it
    assert plan.hold_since is None  # nothing idles on its account: no time limit runs


def test_a_busy_device_holds_nothing() -> None:
    plan = _plan([_quiet()], [C0], client_work=True)
    assert plan == QuietPlan()


def test_free_clients_wait_for_the_others_at_most_hold_s_then_it_is_demoted() -> None:
    request = _quiet()
    first = _plan([request], [C1, D0], client_work=True)  # client:0 still builds
    assert first.start == () and first.hold == {C1} and first.hold_since == 10.0
    later = _plan([request], [C1, D0], client_work=True, hold_since=10.0, now=10.5)
    assert later.hold == {C1} and later.hold_since == 10.0
    expired = _plan([request], [C1, D0], client_work=True, hold_since=10.0, now=11.0)
    assert expired.demote == (request,) and expired.hold == frozenset()


def test_a_request_that_waited_its_patience_is_demoted() -> None:
    old, new = _quiet("j1", since=0.0), _quiet("j2", since=9.0)
    plan = _plan([old, new], [C0, D0], client_work=True, patience_s=5.0)
    assert plan.demote == (old,)
    plan = _plan([old, new], [C0, D0, D1], patience_s=5.0)
    assert plan.start == (Assignment(new, D0),) and plan.demote == (old,)


def test_a_batch_ready_after_its_turn_does_not_take_its_device_it_runs_now_instead() -> None:
    request = _quiet(since=3.0)
    plan = _plan([request], [D0], client_work=True, queued={"device:llvm": [5.0]})
    assert plan.demote == (request,)  # runs as any profile, first: its turn came first
    assert overtaken([request], [D0], {"device:llvm": [5.0]}) == [request]


def test_batches_ready_before_it_go_first_and_it_waits_for_a_quiet_moment() -> None:
    request = _quiet(since=3.0)
    plan = _plan([request], [D0], client_work=True, queued={"device:llvm": [1.0, 5.0]})
    assert plan.demote == () and plan.no_lend == {D0}
    # With a second free device the batch ready after it would take that one: it runs there.
    assert overtaken([request], [D0, D1], {"device:llvm": [1.0, 5.0]}) == [request]


def test_a_device_left_over_for_it_means_nothing_passes_it() -> None:
    request = _quiet(since=3.0)
    assert overtaken([request], [D0, D1], {"device:llvm": [5.0]}) == []
    assert overtaken([request], [D0], {}) == []
    assert overtaken([request], [D0], {"device:cuda": [5.0]}) == []  # another pool's batch


def test_requests_take_the_free_devices_in_their_turns() -> None:
    first, second = _quiet("a", since=3.0), _quiet("b", since=4.0)
    assert overtaken([first, second], [D0], {"device:llvm": [5.0]}) == [first]
    assert overtaken([first, second], [D0, D1], {"device:llvm": [5.0, 6.0]}) == [first, second]


def test_while_one_runs_free_clients_are_held_and_nothing_is_lent() -> None:
    plan = _plan([], [C0, C1, D1], quiet_running=True)
    assert plan.hold == {C0, C1} and plan.no_lend == {C0, C1, D1}
    assert plan.start == () and plan.demote == ()


def test_several_start_at_once_on_the_free_devices_of_their_pools() -> None:
    a, b, c = _quiet("a"), _quiet("b"), _quiet("c")
    plan = _plan([a, b, c], [C0, D0, D1])
    assert plan.start == (Assignment(a, D0), Assignment(b, D1))
    assert plan.demote == ()  # c waits for a device


# --- the scheduler ---------------------------------------------------------------------------


def _run(
    policy: str,
    resources: list[str],
    jobs: dict[str, dict[str, Any]],
    **scheduler_options: Any,
) -> tuple[list[tuple[float, str, str, str]], Scheduler]:
    clock = SimClock()
    sink = make_sink(clock)
    scheduler = Scheduler(
        resources, policy, clock=clock, sink=sink, id_prefix="q", **scheduler_options
    )
    names = {}
    for label, kwargs in jobs.items():
        job = scheduler.submit_job(
            ScriptedDriver(label, **kwargs),
            name=label,
            target="llvm",
            device_pool="device:llvm",
            tasks=["t"],
            trials_total=1,
        )
        names[job] = label
    scheduler.run()
    return starts(sink, names), scheduler


def _times(select: float) -> dict[StageKind, float]:
    return {StageKind.SELECT: select, StageKind.BUILD: 1, StageKind.PROFILE: 1, StageKind.UPDATE: 1}


def test_the_quiet_profile_waits_for_the_running_select_and_holds_the_client_for_its_time() -> None:
    trace, scheduler = _run(
        "feed-device",
        [C0, D0],
        {"A": dict(quiet=True, times=_times(2)), "B": dict(iterations=2, times=_times(5))},
    )
    assert trace == [
        (0.0, "A", "S", C0),
        (2.0, "A", "B", C0),
        (3.0, "B", "S", C0),
        (3.0, "A", "P", D0),  # A's batch, beside B's select
        (8.0, "A", "P", D0),  # A's would-be best again, once B's select ended...
        (9.0, "B", "B", C0),  # ...and B's build, ready at 8, waited for it
        (10.0, "A", "U", C0),
        (10.0, "B", "P", D0),
        (11.0, "B", "U", C0),
        (12.0, "B", "S", C0),
        (17.0, "B", "B", C0),
        (18.0, "B", "P", D0),
        (19.0, "B", "U", C0),
    ]
    assert (scheduler.stats.quiet_profiles, scheduler.stats.quiet_demoted) == (1, 0)


def test_a_would_be_best_keeps_its_batchs_turn_for_the_device() -> None:
    profile = {StageKind.PROFILE: 2}
    jobs = {
        "A": dict(quiet=True, times={**_times(1), **profile}),
        "B": dict(times={**_times(0.5), **profile}),
        "C": dict(times={**_times(5), **profile}),  # its select: the client busy 3.5 to 8.5
    }
    trace, scheduler = _run("feed-device", [C0, D0], jobs)
    # A's batch was ready at 2, B's at 3.5: when A's batch ends at 4 and no quiet moment
    # comes, A's would-be best runs first, beside C's select, not after B's batch.
    assert [t for t in trace if t[3] == D0] == [
        (2.0, "A", "P", D0),
        (4.0, "A", "P", D0),
        (6.0, "B", "P", D0),
        (9.5, "C", "P", D0),
    ]
    assert (scheduler.stats.quiet_profiles, scheduler.stats.quiet_demoted) == (0, 1)
    waited, scheduler = _run("feed-device", [C0, D0], jobs, quiet_keeps_turn=False)
    assert (4.0, "B", "P", D0) in waited and (8.5, "A", "P", D0) in waited
    assert (scheduler.stats.quiet_profiles, scheduler.stats.quiet_demoted) == (1, 0)


def test_with_two_clients_a_quiet_profile_that_cannot_get_both_is_demoted_after_the_hold() -> None:
    jobs = {"A": dict(quiet=True, times=_times(2)), "B": dict(times=_times(10))}
    trace, scheduler = _run("feed-device", [C0, C1, D0], jobs, quiet_hold_s=1.5)
    assert (0.0, "A", "S", C0) in trace and (0.0, "B", "S", C1) in trace
    # A's batch at 3; from 4 its would-be best waits with client:0 held, for 1.5 s, while
    # B's select runs on: then it runs as any profile, beside that select.
    assert (4.0, "A", "U", C0) not in trace
    assert (5.5, "A", "P", D0) in trace and (6.5, "A", "U", C0) in trace
    assert (scheduler.stats.quiet_profiles, scheduler.stats.quiet_demoted) == (0, 1)
    waited, _ = _run("feed-device", [C0, C1, D0], jobs, quiet_hold_s=math.inf)
    assert (10.0, "A", "P", D0) in waited  # unbounded: once B's select ended


def test_timings_disagree_beyond_the_tolerance_of_the_faster_either_way() -> None:
    assert not timings_disagree(100e-6, 102e-6) and not timings_disagree(102e-6, 100e-6)
    assert timings_disagree(100e-6, 104e-6) and timings_disagree(104e-6, 100e-6)
    assert not timings_disagree(100e-6, 104e-6, tolerance=0.05)


def test_the_median_timing_is_the_middle_one_by_mean_whichever_way_the_outlier_lies() -> None:
    slow, fast, usual = (1.3e-4, 1.2e-4), (0.80e-4,), (1.01e-4, 0.99e-4)
    assert median_timing([slow, usual, fast]) == usual
    assert median_timing([fast, slow, usual]) == usual
    assert median_timing([usual]) == usual
    assert median_timing([slow, fast]) == fast  # of two, the faster
    with pytest.raises(ValueError, match="no timings"):
        median_timing([])
