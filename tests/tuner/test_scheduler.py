"""The scheduler on scripted jobs: exact assignment traces, controls mid-run, failures,
wall-clock threads, and the invariants under random job mixes (hypothesis)."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scheduling_helpers import (
    ABBREV,
    ScriptedDriver,
    TaskParallelDriver,
    changes,
    job_events,
    make_sink,
    stage_events,
    starts,
)

from collectors.events import JobEvent
from collectors.jobs import STAGE_ORDER, JobSpec, JobState, StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from tuner._base import PlannedJob, TunerError
from tuner.clock import SimClock, WallClock
from tuner.policies import POLICIES, Priority, create_policy
from tuner.scheduler import Scheduler

RESOURCES = ["client:0", "device:llvm:0"]
C, D = RESOURCES


def scripted(
    policy: Any,
    jobs: dict[str, dict[str, Any]],
    *,
    resources: list[str] = RESOURCES,
    priorities: dict[str, int] | None = None,
) -> tuple[Scheduler, EventSink, dict[str, str], dict[str, ScriptedDriver]]:
    """A scheduler on a SimClock with one ScriptedDriver per job label (submitted in order)."""
    clock = SimClock()
    sink = make_sink(clock)
    scheduler = Scheduler(resources, policy, clock=clock, sink=sink, id_prefix="test")
    names: dict[str, str] = {}
    drivers: dict[str, ScriptedDriver] = {}
    for label, kwargs in jobs.items():
        driver = ScriptedDriver(label, **kwargs)
        job = scheduler.submit_job(
            driver,
            name=label,
            target="llvm",
            device_pool="device:llvm",
            tasks=["t"],
            trials_total=driver.trials()[1],
            priority=(priorities or {}).get(label, 0),
        )
        names[job] = label
        drivers[label] = driver
    return scheduler, sink, names, drivers


def ids(names: dict[str, str]) -> dict[str, str]:
    return {label: job for job, label in names.items()}


# --- exact traces (select 3 s, build 1 s, profile 4 s, update 2 s; see scheduling_helpers) ---

TWO_ROUNDS = {"A": {"iterations": 2}, "B": {"iterations": 2}}


def test_interleaved_trace() -> None:
    scheduler, sink, names, _ = scripted("interleaved", TWO_ROUNDS)
    scheduler.run()
    assert starts(sink, names) == [
        (0, "A", "S", C), (3, "B", "S", C), (6, "A", "B", C),
        (7, "B", "B", C), (7, "A", "P", D), (11, "A", "U", C), (11, "B", "P", D),
        (13, "A", "S", C), (16, "B", "U", C), (18, "A", "B", C),
        (19, "B", "S", C), (19, "A", "P", D), (22, "B", "B", C),
        (23, "A", "U", C), (23, "B", "P", D), (27, "B", "U", C),
    ]  # fmt: skip
    assert scheduler.clock.now() == 29
    assert {names[j]: end for j, (_, end) in scheduler.job_times().items()} == {"A": 25, "B": 29}


def test_sequential_trace() -> None:
    scheduler, sink, names, _ = scripted("sequential", TWO_ROUNDS)
    scheduler.run()
    one_job = [("S", C, 0), ("B", C, 3), ("P", D, 4), ("U", C, 8)]
    expected = []
    for label, offset in (("A", 0), ("B", 20)):
        for rnd in (0, 10):
            expected += [(offset + rnd + t, label, s, r) for s, r, t in one_job]
    assert starts(sink, names) == expected
    assert scheduler.clock.now() == 40


def test_synchronous_trace_shares_one_resource() -> None:
    scheduler, sink, names, _ = scripted("synchronous", TWO_ROUNDS)
    scheduler.run()
    # Both jobs' stages run together on one resource, each at half speed.
    phases = [(0, "S", C, 6), (6, "B", C, 8), (8, "P", D, 16), (16, "U", C, 20)]
    expected = []
    for rnd in (0, 20):
        for start, s, r, end in phases:
            expected += [(start + rnd, "A", s, r, end + rnd), (start + rnd, "B", s, r, end + rnd)]
    events = stage_events(sink)
    got = [(e.start, names[e.job], e.stage[0].upper(), e.resource, e.end) for e in events]
    assert sorted(got) == sorted(expected)
    assert scheduler.clock.now() == 40


def test_priority_trace() -> None:
    scheduler, sink, names, _ = scripted(Priority(aging=0.0), TWO_ROUNDS, priorities={"B": 5})
    scheduler.run()
    assert starts(sink, names) == [
        (0, "B", "S", C), (3, "B", "B", C), (4, "A", "S", C), (4, "B", "P", D),
        (7, "A", "B", C), (8, "B", "U", C), (8, "A", "P", D), (10, "B", "S", C),
        (13, "B", "B", C), (14, "A", "U", C), (14, "B", "P", D), (16, "A", "S", C),
        (19, "B", "U", C), (21, "A", "B", C), (22, "A", "P", D), (26, "A", "U", C),
    ]  # fmt: skip
    assert scheduler.clock.now() == 28


def test_feed_device_trace_beats_interleaved_on_the_same_script() -> None:
    scheduler, sink, names, _ = scripted("feed-device", TWO_ROUNDS)
    scheduler.run()
    assert starts(sink, names) == [
        (0, "A", "S", C), (3, "A", "B", C), (4, "B", "S", C), (4, "A", "P", D),
        (7, "B", "B", C), (8, "A", "U", C), (8, "B", "P", D), (10, "A", "S", C),
        (13, "A", "B", C), (14, "B", "U", C), (14, "A", "P", D), (16, "B", "S", C),
        (19, "B", "B", C), (20, "A", "U", C), (20, "B", "P", D), (24, "B", "U", C),
    ]  # fmt: skip
    assert scheduler.clock.now() == 26  # interleaved: 29


def test_shortest_remaining_trace_finishes_the_small_job_first() -> None:
    jobs = {"A": {"iterations": 2}, "B": {"iterations": 1}}
    scheduler, sink, names, _ = scripted("shortest-remaining", jobs)
    scheduler.run()
    assert starts(sink, names) == [
        (0, "B", "S", C), (3, "B", "B", C), (4, "A", "S", C), (4, "B", "P", D),
        (7, "A", "B", C), (8, "B", "U", C), (8, "A", "P", D), (12, "A", "U", C),
        (14, "A", "S", C), (17, "A", "B", C), (18, "A", "P", D), (22, "A", "U", C),
    ]  # fmt: skip
    done = {names[j]: end for j, (_, end) in scheduler.job_times().items()}
    assert done == {"A": 24, "B": 10}


def test_multiple_devices_and_tasks_run_in_parallel() -> None:
    resources = ["client:0", "client:1", "device:llvm:0", "device:llvm:1"]
    jobs = {"A": {"tasks": ("x", "y")}, "B": {"tasks": ("x", "y")}}
    scheduler, sink, _, drivers = scripted("interleaved", jobs, resources=resources)
    scheduler.run()
    # Two identical jobs on two clients and two devices never wait for each other.
    assert scheduler.clock.now() == 20
    for driver in drivers.values():
        assert [(t, k) for t, _, k, _ in driver.runs] == [
            (t, k) for t in ("x", "y") for k in STAGE_ORDER
        ]
    used = {e.resource for e in stage_events(sink)}
    assert used == set(resources)


# --- events, stats, busy time -------------------------------------------------------------


def parallel_job(
    policy: str, tasks: list[str], *, resources: list[str] = RESOURCES, iterations: int = 1
) -> tuple[Scheduler, EventSink, dict[str, str]]:
    """One job whose tasks run side by side (TaskParallelDriver), on a SimClock."""
    clock = SimClock()
    sink = make_sink(clock)
    scheduler = Scheduler(resources, policy, clock=clock, sink=sink, id_prefix="test")
    driver = TaskParallelDriver("J", tasks=tasks, iterations=iterations)
    job = scheduler.submit_job(driver, **_job_info(tasks=tasks))
    return scheduler, sink, {job: "J"}


def task_starts(sink: EventSink) -> list[tuple[float, str, str, str]]:
    return [(e.start, e.task, ABBREV[StageKind(e.stage)], e.resource) for e in stage_events(sink)]


def test_one_job_overlaps_its_own_client_and_device_work_across_tasks() -> None:
    scheduler, sink, _ = parallel_job("interleaved", ["t1", "t2"])
    scheduler.run()
    # While t1 profiles on the device, t2 builds on the client.
    assert task_starts(sink) == [
        (0, "t1", "S", C), (3, "t2", "S", C), (6, "t1", "B", C), (7, "t2", "B", C),
        (7, "t1", "P", D), (11, "t1", "U", C), (11, "t2", "P", D), (15, "t2", "U", C),
    ]  # fmt: skip
    assert scheduler.clock.now() == 17  # one task after the other: 20
    _assert_exclusive(stage_events(sink))


def test_feed_device_lets_a_lone_jobs_profiles_start_sooner() -> None:
    scheduler, sink, _ = parallel_job("feed-device", ["t1", "t2"])
    scheduler.run()
    assert task_starts(sink) == [
        (0, "t1", "S", C), (3, "t1", "B", C), (4, "t2", "S", C), (4, "t1", "P", D),
        (7, "t2", "B", C), (8, "t1", "U", C), (8, "t2", "P", D), (12, "t2", "U", C),
    ]  # fmt: skip
    assert scheduler.clock.now() == 14


def test_a_job_with_many_ready_tasks_does_not_crowd_out_a_job_with_one() -> None:
    clock = SimClock()
    sink = make_sink(clock)
    resources = ["client:0", "client:1", "device:llvm:0"]
    scheduler = Scheduler(resources, "interleaved", clock=clock, sink=sink, id_prefix="test")
    wide = TaskParallelDriver("W", tasks=[f"w{i}" for i in range(6)], parallel=6)
    narrow = ScriptedDriver("N")
    w = scheduler.submit_job(wide, **_job_info(name="W"))
    n = scheduler.submit_job(narrow, **_job_info(name="N"))
    scheduler.run(until=0.0)
    first = [(e[1], e[4], e[5]) for e in wide.log + narrow.log if e[0] == "start"]
    # Both clients start at once: one stage of each job, not two of the wide one.
    assert sorted(first) == [
        ("N", StageKind.SELECT, "client:1"), ("W", StageKind.SELECT, "client:0"),
    ]  # fmt: skip
    scheduler.run()
    assert {i.id: i.state for i in scheduler.list()} == {w: JobState.FINISHED, n: JobState.FINISHED}


def test_job_and_stage_events_describe_the_run() -> None:
    scheduler, sink, names, drivers = scripted("interleaved", {"A": {"candidates": 16}})
    scheduler.run()
    job = ids(names)["A"]
    assert job == "j1-test"
    assert changes(sink, job) == ["submitted", "started", "finished"]
    submitted = job_events(sink, job)[0]
    assert (submitted.name, submitted.target, submitted.policy) == ("A", "llvm", "interleaved")
    assert submitted.trials == 16 and submitted.tasks == ("t",)
    events = stage_events(sink)
    assert [(e.stage, e.start, e.end, e.status) for e in events] == [
        ("select", 0, 3, "ok"),
        ("build", 3, 4, "ok"),
        ("profile", 4, 8, "ok"),
        ("update", 8, 10, "ok"),
    ]
    assert all(e.clock == "sim" and e.candidates == 16 and e.iteration == 0 for e in events)
    assert drivers["A"].closed == [False]
    assert scheduler.list()[0].state == JobState.FINISHED
    assert scheduler.list()[0].trials_done == 16


def test_busy_time_and_stats() -> None:
    scheduler, _, _, _ = scripted("interleaved", TWO_ROUNDS)
    scheduler.run()
    # Per job and round: client 3 + 1 + 2 s, device 4 s.
    assert scheduler.busy_time() == {C: 24.0, D: 16.0}
    assert scheduler.stats.dispatches == 16
    assert scheduler.stats.completions == 16
    assert scheduler.stats.passes >= 16
    assert 0 < scheduler.stats.per_dispatch_s < 0.05


def test_job_ids_are_unique_per_scheduler() -> None:
    clock = SimClock()
    first = Scheduler(RESOURCES, "interleaved", clock=clock)
    second = Scheduler(RESOURCES, "interleaved", clock=clock)
    assert first.id_prefix != second.id_prefix
    a = first.submit_job(ScriptedDriver("a"), **_job_info())
    b = first.submit_job(ScriptedDriver("b"), **_job_info())
    assert a == f"j1-{first.id_prefix}" and b == f"j2-{first.id_prefix}"


def test_default_prefix_avoids_job_ids_already_in_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimClock()
    sink = make_sink(clock)
    sink.emit(JobEvent, job="j1-abcd", change="submitted")
    draws = iter(["abcd", "abcd", "beef"])
    monkeypatch.setattr("tuner.scheduler.secrets.token_hex", lambda n: next(draws))
    scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink)
    assert scheduler.id_prefix == "beef"
    assert scheduler.submit_job(ScriptedDriver("a"), **_job_info()) == "j1-beef"


# --- control mid-run ------------------------------------------------------------------------


def test_pause_lets_the_running_stage_finish_and_holds_nothing_until_resumed() -> None:
    scheduler, sink, names, drivers = scripted("interleaved", TWO_ROUNDS)
    a, b = ids(names)["A"], ids(names)["B"]
    clock = scheduler.clock
    clock.call_at(1.0, lambda: scheduler.pause(a))
    scheduler.run()
    # Only B can run; the simulated clock stops when nothing else can happen.
    assert scheduler.list()[0].state == JobState.PAUSED
    a_stages = [e for e in stage_events(sink) if e.job == a]
    assert [(e.stage, e.start, e.end) for e in a_stages] == [("select", 0, 3)]
    assert changes(sink, b)[-1] == "finished"
    assert len(drivers["A"].runs) == 1
    paused_at = clock.now()
    scheduler.resume(a)
    scheduler.run()
    a_stages = [e for e in stage_events(sink) if e.job == a]
    assert len(a_stages) == 8
    assert a_stages[1].start == paused_at  # resumed at once: the build waited while paused
    assert changes(sink, a) == ["submitted", "started", "paused", "resumed", "finished"]
    assert "select stage finishes first" in (job_events(sink, a)[2].detail or "")


def test_pause_reason_goes_into_the_job_event() -> None:
    scheduler, sink, names, _ = scripted("interleaved", {"A": {}, "B": {}})
    b = ids(names)["B"]
    scheduler.pause(b, reason="device:rpc:cpu has no server")
    assert job_events(sink, b)[-1].change == "paused"
    assert job_events(sink, b)[-1].detail == "device:rpc:cpu has no server"


def test_pause_and_resume_a_queued_job() -> None:
    scheduler, sink, names, _ = scripted("interleaved", {"A": {}, "B": {}})
    b = ids(names)["B"]
    scheduler.pause(b)
    scheduler.run()
    assert scheduler.list()[1].state == JobState.PAUSED
    assert all(e.job != b for e in stage_events(sink))
    scheduler.resume(b)
    assert scheduler.list()[1].state == JobState.QUEUED
    scheduler.run()
    assert changes(sink, b) == ["submitted", "paused", "resumed", "started", "finished"]


def test_reprioritize_mid_run_changes_the_order() -> None:
    jobs = {"A": {"iterations": 2}, "B": {"iterations": 2}, "C": {"iterations": 2}}
    scheduler, sink, names, _ = scripted(Priority(aging=0.0), jobs)
    c = ids(names)["C"]
    scheduler.clock.call_at(2.0, lambda: scheduler.reprioritize(c, 9))
    scheduler.run()
    selects = [(e.start, names[e.job]) for e in stage_events(sink) if e.stage == "select"]
    # Without the change B would select at 3; C jumps the queue (and builds before B selects).
    assert selects[:3] == [(0, "A"), (3, "C"), (7, "B")]
    event = job_events(sink, c)[1]
    assert (event.change, event.priority, event.detail) == ("reprioritized", 9, "priority 0 -> 9")
    assert [i.priority for i in scheduler.list()] == [0, 0, 9]


def test_cancel_abandons_a_simulated_stage_and_closes_the_driver() -> None:
    scheduler, sink, names, drivers = scripted("interleaved", TWO_ROUNDS)
    a, b = ids(names)["A"], ids(names)["B"]
    scheduler.clock.call_at(1.0, lambda: scheduler.cancel(a))
    scheduler.run()
    a_stages = [e for e in stage_events(sink) if e.job == a]
    assert [(e.stage, e.start, e.end, e.status) for e in a_stages] == [
        ("select", 0, 1, "cancelled")
    ]
    # B takes the freed client at once.
    assert next(e.start for e in stage_events(sink) if e.job == b) == 1
    assert drivers["A"].closed == [True]
    assert drivers["B"].closed == [False]
    assert changes(sink, a) == ["submitted", "started", "cancelled"]
    assert scheduler.list()[0].state == JobState.CANCELLED
    assert scheduler.busy_time()[C] == 1 + 2 * 6  # A's abandoned second, B's two rounds


def test_cancel_a_queued_job() -> None:
    scheduler, sink, names, drivers = scripted("interleaved", {"A": {}})
    a = ids(names)["A"]
    scheduler.cancel(a)
    scheduler.run()
    assert stage_events(sink) == []
    assert drivers["A"].closed == [True]
    assert changes(sink, a) == ["submitted", "cancelled"]


def test_illegal_controls_raise_clear_errors() -> None:
    scheduler, _, names, _ = scripted("interleaved", {"A": {}, "B": {}})
    a, b = ids(names)["A"], ids(names)["B"]
    with pytest.raises(TunerError, match="unknown job 'j9-nope'"):
        scheduler.pause("j9-nope")
    with pytest.raises(TunerError, match="not paused"):
        scheduler.resume(a)
    scheduler.pause(a)
    with pytest.raises(TunerError, match="already paused"):
        scheduler.pause(a)
    with pytest.raises(TunerError, match="integer"):
        scheduler.reprioritize(a, "high")  # type: ignore[arg-type]
    scheduler.resume(a)
    scheduler.cancel(b)
    with pytest.raises(TunerError, match="already cancelled"):
        scheduler.cancel(b)
    scheduler.run()
    for control in (scheduler.resume, scheduler.pause, scheduler.cancel):
        with pytest.raises(TunerError, match="finished"):
            control(a)
    with pytest.raises(TunerError, match="finished"):
        scheduler.reprioritize(a, 3)


# --- failures ----------------------------------------------------------------------------


def test_failed_stage_is_reported_and_the_driver_decides_what_next() -> None:
    scheduler, sink, names, _ = scripted("interleaved", {"A": {"fail_runs": [1]}})
    scheduler.run()
    events = stage_events(sink)
    assert [(e.stage, e.status, e.error) for e in events] == [
        ("select", "ok", None),
        ("build", "error", "build failed"),
        ("profile", "ok", None),
        ("update", "ok", None),
    ]
    assert changes(sink, ids(names)["A"])[-1] == "finished"


def test_a_raising_driver_fails_its_job_only() -> None:
    jobs = {"A": {"raise_runs": [1], "iterations": 2}, "B": {"iterations": 2}}
    scheduler, sink, names, drivers = scripted("interleaved", jobs)
    scheduler.run()
    a, b = ids(names)["A"], ids(names)["B"]
    failed = job_events(sink, a)[-1]
    assert failed.change == "failed"
    assert "RuntimeError: A crashed in build" in (failed.detail or "")
    a_stages = [e for e in stage_events(sink) if e.job == a]
    assert [(e.stage, e.status) for e in a_stages] == [("select", "ok"), ("build", "error")]
    assert a_stages[1].start == a_stages[1].end
    assert drivers["A"].closed == [False]
    assert changes(sink, b)[-1] == "finished"
    assert scheduler.list()[0].state == JobState.FAILED
    assert "crashed" in (scheduler.list()[0].detail or "")


def test_a_driver_that_cannot_plan_fails_its_job() -> None:
    scheduler, sink, names, _ = scripted("interleaved", {"A": {"raise_on_next": 2}})
    scheduler.run()
    last = job_events(sink, ids(names)["A"])[-1]
    assert last.change == "failed"
    assert "cannot plan its next stage" in (last.detail or "")
    assert len(stage_events(sink)) == 2


# --- bad input ------------------------------------------------------------------------------


def _job_info(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": "job",
        "target": "llvm",
        "device_pool": "device:llvm",
        "tasks": ["t"],
        "trials_total": 1,
    }
    info.update(overrides)
    return info


def test_bad_scheduler_setup_is_refused() -> None:
    clock = SimClock()
    with pytest.raises(TunerError, match="at least one resource"):
        Scheduler([], "interleaved", clock=clock)
    with pytest.raises(TunerError, match="listed twice"):
        Scheduler(["client:0", "client:0"], "interleaved", clock=clock)
    with pytest.raises(TunerError, match="POOL:INDEX"):
        Scheduler(["client"], "interleaved", clock=clock)
    with pytest.raises(TunerError, match="valid policies"):
        Scheduler(RESOURCES, "best", clock=clock)


def test_bad_submissions_are_refused_and_nothing_is_queued() -> None:
    clock = SimClock()
    sink = make_sink(clock)
    scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink)
    driver = ScriptedDriver("a")
    with pytest.raises(TunerError, match="pool 'device:rpc:pi'"):
        scheduler.submit_job(driver, **_job_info(device_pool="device:rpc:pi"))
    with pytest.raises(TunerError, match="trials_total must be >= 0"):
        scheduler.submit_job(driver, **_job_info(trials_total=-1))
    with pytest.raises(TunerError, match="name"):
        scheduler.submit_job(driver, **_job_info(name=""))
    with pytest.raises(TunerError, match="priority"):
        scheduler.submit_job(driver, **_job_info(priority=1.5))
    with pytest.raises(TunerError, match="no job factory"):
        scheduler.submit(JobSpec(workloads=("matmul:64",)))
    assert scheduler.list() == []
    assert sink.store.last_pos() == 0


def _planned(driver: ScriptedDriver, spec: JobSpec, pool: str = "device:llvm") -> PlannedJob:
    return PlannedJob(driver, spec.label, pool, spec.workloads, target="llvm")


def test_submit_plans_jobs_with_the_factory() -> None:
    clock = SimClock()
    sink = make_sink(clock)
    built: list[tuple[str, JobSpec]] = []

    def factory(job: str, spec: JobSpec) -> PlannedJob:
        built.append((job, spec))
        pool = f"device:{spec.device}" if spec.device else "device:llvm"
        return _planned(ScriptedDriver(job, candidates=spec.trials), spec, pool)

    scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink, job_factory=factory)
    spec = JobSpec(workloads=("matmul:64",), trials=8, priority=2, name="mm")
    job = scheduler.submit(spec)
    assert built == [(job, spec)]
    info = scheduler.list()[0]
    assert (info.name, info.priority, info.tasks, info.trials_total) == ("mm", 2, ("matmul:64",), 8)
    assert scheduler.catalog().devices == ("llvm",)
    closed: list[ScriptedDriver] = []

    def refused(job: str, spec: JobSpec) -> PlannedJob:
        closed.append(ScriptedDriver(job))
        return _planned(closed[-1], spec, "device:rpc:pi")

    with pytest.raises(TunerError, match="pool 'device:rpc:pi'"):
        Scheduler(RESOURCES, "interleaved", clock=clock, job_factory=refused).submit(spec)
    assert closed[0].closed == [True]  # the refused job's driver is released
    with pytest.raises(TunerError, match="returned ScriptedDriver"):
        Scheduler(
            RESOURCES, "interleaved", clock=clock, job_factory=lambda job, s: ScriptedDriver(job)
        ).submit(spec)
    scheduler.run()
    assert changes(sink, job) == ["submitted", "started", "finished"]


def test_an_invalid_policy_decision_is_a_loud_bug() -> None:
    class Greedy(Priority):
        name = "greedy"

        def assign(self, ready, free, jobs, now):  # type: ignore[no-untyped-def]
            return [create_policy("interleaved").assign(ready, free, jobs, now)[0]] * 2

    scheduler, _, _, _ = scripted(Greedy(), {"A": {}, "B": {}})
    with pytest.raises(RuntimeError, match="policy 'greedy' assigned two stages of one task"):
        scheduler.run()


# --- wall clock: worker threads, control from other threads -----------------------------------

TINY = {
    StageKind.SELECT: 0.004,
    StageKind.BUILD: 0.002,
    StageKind.PROFILE: 0.006,
    StageKind.UPDATE: 0.002,
}


def test_wall_clock_runs_stages_on_worker_threads() -> None:
    clock = WallClock()
    sink = make_sink(clock)
    scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink)
    drivers = [ScriptedDriver(f"w{i}", iterations=2, times=TINY, sleep=True) for i in range(3)]
    jobs = [scheduler.submit_job(d, **_job_info(name=d.label)) for d in drivers]
    began = time.time()
    scheduler.run(until=time.time() + 60)
    assert [i.state for i in scheduler.list()] == [JobState.FINISHED] * 3
    events = stage_events(sink)
    assert len(events) == 3 * 8
    assert all(e.clock == "wall" and began <= e.start <= e.end <= time.time() for e in events)
    _assert_exclusive(events)
    for job in jobs:
        mine = [e for e in events if e.job == job]
        assert all(a.end <= b.start for a, b in itertools.pairwise(mine))
    for driver in drivers:
        assert all(name.startswith("tuneloom-") for name in driver.threads)
        assert driver.closed == [False]
    # Interleaving overlaps the jobs: quicker than running them back to back.
    assert scheduler.busy_time()[C] > 0 and scheduler.stats.dispatches == 24


def test_wall_clock_failure_in_a_worker_fails_the_job_not_the_loop() -> None:
    clock = WallClock()
    sink = make_sink(clock)
    scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink)
    bad = scheduler.submit_job(
        ScriptedDriver("bad", times=TINY, sleep=True, raise_runs=[2]), **_job_info()
    )
    good = scheduler.submit_job(ScriptedDriver("good", times=TINY, sleep=True), **_job_info())
    scheduler.run(until=time.time() + 60)
    assert changes(sink, bad)[-1] == "failed"
    assert "crashed in profile" in (job_events(sink, bad)[-1].detail or "")
    assert changes(sink, good)[-1] == "finished"


def test_background_loop_takes_controls_from_other_threads() -> None:
    clock = WallClock()
    sink = make_sink(clock)
    slow = {**TINY, StageKind.PROFILE: 0.05}
    made: dict[str, ScriptedDriver] = {}

    def factory(job: str, spec: JobSpec) -> PlannedJob:
        made[job] = ScriptedDriver(job, iterations=spec.trials, times=slow, sleep=True)
        return _planned(made[job], spec)

    scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink, job_factory=factory)
    scheduler.start_background()
    try:
        with pytest.raises(RuntimeError, match="background"):
            scheduler.run()
        first = scheduler.submit(JobSpec(workloads=("a",), trials=6))
        second = scheduler.submit(JobSpec(workloads=("b",), trials=2))
        _wait_for(lambda: len(made[first].runs) >= 2)
        scheduler.pause(first)
        paused_runs = len(made[first].runs)
        _wait_for(lambda: _state(scheduler, second) == JobState.FINISHED)
        # Paused: only the stage already dispatched at the pause may still have run; without
        # the pause the first job would have run about as many stages as the second (8).
        assert len(made[first].runs) <= paused_runs + 1
        scheduler.reprioritize(first, 3)
        scheduler.resume(first)
        _wait_for(lambda: _state(scheduler, first) == JobState.FINISHED)
        third = scheduler.submit(JobSpec(workloads=("c",), trials=50))
        _wait_for(lambda: len(made[third].runs) >= 1)
        scheduler.cancel(third)
        _wait_for(lambda: made[third].closed == [True])
    finally:
        scheduler.stop()
    assert changes(sink, first) == [
        "submitted", "started", "paused", "reprioritized", "resumed", "finished",
    ]  # fmt: skip
    assert changes(sink, third)[-1] == "cancelled"
    third_stages = [e for e in stage_events(sink) if e.job == third]
    assert len(third_stages) == len(made[third].runs) < 200
    _assert_exclusive(stage_events(sink))


def _state(scheduler: Scheduler, job: str) -> JobState:
    return next(i.state for i in scheduler.list() if i.id == job)


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def _assert_exclusive(events: list[Any]) -> None:
    by_resource: dict[str, list[Any]] = {}
    for e in events:
        by_resource.setdefault(e.resource, []).append(e)
    for resource, held in by_resource.items():
        held.sort(key=lambda e: (e.start, e.end))
        for a, b in itertools.pairwise(held):
            assert a.end <= b.start, f"{resource} held twice: {a} and {b}"


def _quiet_beside_client_work(events: list[Any], drivers: dict[str, ScriptedDriver]) -> int:
    """How many profiles their drivers wanted quiet overlap a select, build or update."""
    client_work = [e for e in events if e.stage != "profile"]
    count = 0
    for job, driver in drivers.items():
        quiet = {driver.steps[i] for i in range(len(driver.steps)) if driver.is_quiet(i)}
        profiles = sorted(
            (e for e in events if e.job == job and e.stage == "profile"), key=lambda e: e.start
        )
        seen: set[tuple[str, int]] = set()
        for e in profiles:
            second = (e.task, e.iteration) in seen
            seen.add((e.task, e.iteration))
            if not second or (e.task, e.iteration, StageKind.PROFILE) not in quiet:
                continue
            count += any(w.start < e.end and e.start < w.end for w in client_work)
    return count


# --- invariants under random job mixes ------------------------------------------------------

durations = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0])
job_mix = st.lists(
    st.tuples(
        st.integers(1, 2),  # tasks
        st.integers(1, 3),  # iterations
        st.fixed_dictionaries({k: durations for k in STAGE_ORDER}),
        st.integers(0, 3),  # priority
    ),
    min_size=1,
    max_size=4,
)
actions = st.lists(
    st.tuples(
        st.floats(0, 40, allow_nan=False),
        st.sampled_from(["pause", "resume", "reprioritize", "cancel"]),
        st.integers(0, 3),
        st.integers(0, 5),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mix=job_mix,
    controls=actions,
    policy=st.sampled_from(sorted(POLICIES)),
    clients=st.integers(1, 2),
    devices=st.integers(1, 2),
    parallel=st.integers(1, 3),
    lend=st.booleans(),
    quiet=st.booleans(),
    keeps_turn=st.booleans(),
)
def test_invariants_hold_under_random_jobs_and_controls(
    mix: list[tuple[int, int, dict[StageKind, float], int]],
    controls: list[tuple[float, str, int, int]],
    policy: str,
    clients: int,
    devices: int,
    parallel: int,
    lend: bool,
    quiet: bool,
    keeps_turn: bool,
) -> None:
    """``parallel`` > 1: each job's tasks run side by side (that many at once at most);
    ``lend``: idle devices take client stages; ``quiet``: every iteration's profile is
    followed by one its driver wants quiet (waiting as long as it takes, or with
    ``keeps_turn`` until a batch ready after its own would take its device)."""
    clock = SimClock()
    store = MemoryStore()
    sink = EventSink(store, now=clock.now, clock="sim")
    resources = [f"client:{i}" for i in range(clients)]
    resources += [f"device:llvm:{i}" for i in range(devices)]
    lendable = [r for r in resources if r.startswith("device:")] if lend else []
    scheduler = Scheduler(
        resources,
        policy,
        clock=clock,
        sink=sink,
        lendable=lendable,
        quiet_hold_s=math.inf,
        quiet_patience_s=math.inf,
        quiet_keeps_turn=keeps_turn,
    )
    log: list[tuple[Any, ...]] = []
    drivers: dict[str, ScriptedDriver] = {}
    for tasks, iterations, times, priority in mix:
        names = [f"t{i}" for i in range(tasks)]
        kwargs: dict[str, Any] = dict(
            tasks=names, iterations=iterations, times=times, log=log, quiet=quiet
        )
        if parallel > 1:
            driver: ScriptedDriver = TaskParallelDriver("", parallel=parallel, **kwargs)
        else:
            driver = ScriptedDriver("", **kwargs)
        job = scheduler.submit_job(driver, **_job_info(priority=priority))
        driver.label = job
        drivers[job] = driver
    jobs = list(drivers)

    def act(action: str, job: str, value: int) -> None:
        try:
            if action == "reprioritize":
                scheduler.reprioritize(job, value)
            else:
                getattr(scheduler, action)(job)
        except TunerError:
            return  # an illegal transition; the state must not have changed
        log.append((action, job))

    for when, action, index, value in controls:
        target = jobs[index % len(jobs)]
        clock.call_at(when, lambda a=action, j=target, v=value: act(a, j, v))
    scheduler.run()
    for info in scheduler.list():  # let every paused job finish
        if info.state == JobState.PAUSED:
            scheduler.resume(info.id)
            log.append(("resume", info.id))
    scheduler.run()

    events = [s.event for s in store.read(kinds=["stage"])]  # in emission (end) order
    states = {i.id: i.state for i in scheduler.list()}
    for job, driver in drivers.items():
        mine = [e for e in events if e.job == job]
        # A task's stages run in order, one at a time, exactly as its driver planned them;
        # a serial job's stages too.
        for task in {e.task for e in mine} if parallel > 1 else [None]:
            held = [e for e in mine if task is None or e.task == task]
            planned = [s for s in driver.steps if task is None or s[0] == task]
            assert [(e.task, e.iteration, e.stage) for e in held] == [
                (t, i, k.value) for t, i, k in planned[: len(held)]
            ]
            assert all(a.end <= b.start for a, b in itertools.pairwise(held))
        # Every job that was not cancelled finished its whole plan.
        if states[job] != JobState.CANCELLED:
            assert states[job] == JobState.FINISHED
            assert len(mine) == len(driver.steps)
            assert driver.closed == [False]
        else:
            assert driver.closed == [True]
            for task in {e.task for e in mine}:  # abandoned: only each task's last stage
                held = [e for e in mine if e.task == task or parallel == 1]
                assert all(e.status != "cancelled" for e in held[:-1])
        terminal = [c for c in changes(sink, job) if c in ("finished", "cancelled", "failed")]
        assert len(terminal) == 1 and changes(sink, job)[0] == "submitted"
    if create_policy(policy).exclusive:
        _assert_exclusive(events)  # lent or not, a profile never shares its device
        # No client work beside a quiet profile, but beside those demoted to keep their turn.
        beside = _quiet_beside_client_work(events, drivers)
        assert beside <= scheduler.stats.quiet_demoted
        if not keeps_turn:
            assert beside == scheduler.stats.quiet_demoted == 0
    assert all(e.resource.startswith("device:") for e in events if e.stage == "profile")
    if not lend:
        assert all(e.resource.startswith("client:") for e in events if e.stage != "profile")
    # No stage starts while its job is paused or after it is cancelled.
    paused: set[str] = set()
    cancelled: set[str] = set()
    for entry in log:
        if entry[0] == "start":
            assert entry[1] not in paused and entry[1] not in cancelled, entry
        elif entry[0] == "pause":
            paused.add(entry[1])
        elif entry[0] == "resume":
            paused.discard(entry[1])
        elif entry[0] == "cancel":
            cancelled.add(entry[1])
    busy = scheduler.busy_time()
    for resource in resources:
        held = [e for e in events if e.resource == resource]
        if create_policy(policy).exclusive:
            assert busy[resource] == pytest.approx(sum(e.end - e.start for e in held))
    assert all(isinstance(e, JobEvent) for e in job_events(sink))


def test_lending_the_idle_device_to_client_stages_never_overlaps_a_profile() -> None:
    def run(lend: bool) -> tuple[float, list[Any]]:
        clock = SimClock()
        sink = make_sink(clock)
        lendable = [D] if lend else []
        scheduler = Scheduler(RESOURCES, "interleaved", clock=clock, sink=sink, lendable=lendable)
        for label in "ABC":
            scheduler.submit_job(ScriptedDriver(label, iterations=3), **_job_info(name=label))
        scheduler.run()
        return clock.now(), stage_events(sink)

    plain_end, plain = run(False)
    lent_end, lent = run(True)
    _assert_exclusive(lent)  # a profile never shares the device with a lent stage
    on_device = [e.stage for e in lent if e.resource == D]
    assert "profile" in on_device and set(on_device) - {"profile"}  # client stages lent
    assert all(e.resource == D for e in lent if e.stage == "profile")
    assert lent_end < plain_end  # the client was the bottleneck
    assert {e.stage for e in plain if e.resource == D} == {"profile"}


def test_only_resources_of_the_scheduler_can_be_lent() -> None:
    with pytest.raises(TunerError, match="cannot lend 'device:llvm:9'"):
        Scheduler(RESOURCES, "interleaved", clock=SimClock(), lendable=["device:llvm:9"])
