"""The queue kept for static-order policies decides exactly as the policy's ``assign``."""

from __future__ import annotations

import random
from typing import Any

import pytest

from collectors.jobs import StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from tuner._base import JobView, StageRequest, TunerError
from tuner.clock import SimClock
from tuner.policies import POLICIES, FeedDevice, Interleaved, create_policy
from tuner.ready_queue import ReadyQueue
from tuner.scheduler import Scheduler
from tuner.simulation import SimulatedDriver, StageTimes

DEVICE_POOL = "device:rpc:k"


class PlainInterleaved(Interleaved):
    """Interleaved decided by ``assign`` on every pass (the straightforward way)."""

    static_order = False


class PlainFeedDevice(FeedDevice):
    static_order = False


def _run(policy: Any, case: random.Random) -> tuple[list[tuple], list[tuple]]:
    """A random small instance with controls at random times: (stage events, job events)."""
    seed = case.randrange(10**6)
    rng = random.Random(seed)
    clock = SimClock()
    store = MemoryStore()
    sink = EventSink(store, source="s", now=clock.now, clock="sim")
    resources = [f"client:{i}" for i in range(rng.randint(1, 3))]
    resources += [f"{DEVICE_POOL}:{i}" for i in range(rng.randint(1, 2))]
    # Whole seconds from a tiny set: many stages end at the same instant (ties decide).
    means = {kind: float(rng.choice([1, 2, 3])) for kind in StageKind}
    times = StageTimes(means, "fixed", 0.0)
    scheduler = Scheduler(resources, policy, clock=clock, sink=sink, id_prefix="p")
    jobs = []
    for index in range(rng.randint(1, 6)):
        tasks = [f"t{t}" for t in range(rng.randint(1, 4))]
        iterations = rng.randint(1, 3)

        def build(
            job: str, tasks: list[str] = tasks, it: int = iterations, index: int = index
        ) -> SimulatedDriver:
            return SimulatedDriver(
                job, tasks=tasks, iterations=it, times=times, seed=index, device_pool=DEVICE_POOL
            )

        jobs.append(
            scheduler.submit_job(
                build,
                name=f"j{index}",
                target="sim",
                device_pool=DEVICE_POOL,
                tasks=tasks,
                trials_total=len(tasks) * iterations,
            )
        )
    for _ in range(rng.randint(0, 6)):
        at = float(rng.randint(0, 12))
        job = rng.choice(jobs)
        action = rng.choice(["pause", "resume", "cancel", "reprioritize"])

        def control(action: str = action, job: str = job) -> None:
            try:
                if action == "reprioritize":
                    scheduler.reprioritize(job, 3)
                else:
                    getattr(scheduler, action)(job)
            except TunerError:
                pass  # e.g. resuming a job that is not paused: nothing changes

        clock.call_at(at, control)
    scheduler.run(until=200.0)
    for job in jobs:  # nothing stays paused forever
        if scheduler._jobs[job].state.value == "paused":
            scheduler.resume(job)
    scheduler.run()
    stages = [
        (e.job, e.task, e.iteration, e.stage, e.resource, e.start, e.end, e.status, e.seq)
        for e in (s.event for s in store.read(0, kinds=["stage"]))
    ]
    changes = [
        (e.job, e.change, e.ts, e.seq) for e in (s.event for s in store.read(0, kinds=["job"]))
    ]
    return stages, changes


@pytest.mark.parametrize(
    ("fast", "plain"), [(Interleaved, PlainInterleaved), (FeedDevice, PlainFeedDevice)]
)
def test_kept_queue_decides_exactly_as_assign_on_random_instances(fast: type, plain: type) -> None:
    for case_seed in range(40):
        fast_run = _run(fast(), random.Random(case_seed))
        plain_run = _run(plain(), random.Random(case_seed))
        assert fast_run == plain_run, f"case {case_seed}"
        assert fast_run[0], f"case {case_seed} ran no stage"


def test_static_key_is_the_policy_key_where_the_order_is_static() -> None:
    rng = random.Random(3)
    static = [name for name, cls in POLICIES.items() if cls.static_order]
    assert set(static) == {"interleaved", "feed-device"}
    for name in static:
        policy = create_policy(name)
        for _ in range(200):
            kind = rng.choice(list(StageKind))
            stage = StageRequest("j", "t", 0, kind, "client", since=float(rng.randint(0, 5)))
            order = rng.randint(1, 9)
            view = JobView(
                id="j", priority=rng.randint(0, 3), state="running", submitted_at=0.0, order=order
            )
            now = stage.since + rng.random() * 10  # type: ignore[operator]
            assert policy.static_key(stage, order) == policy.key(stage, view, now)


def _stage(job: str, task: str, since: float, pool: str = "client") -> StageRequest:
    return StageRequest(job, task, 0, StageKind.SELECT, pool, since=since)


def test_rounds_give_each_job_one_stage_before_any_job_gets_a_second() -> None:
    queue = ReadyQueue(Interleaved().static_key, rounds=True)
    queue.update("a", 1, [_stage("a", "t0", 0.0), _stage("a", "t1", 0.0), _stage("a", "t2", 1.0)])
    queue.update("b", 2, [_stage("b", "t0", 2.0)])
    taken = [(s.job, s.task) for _, s in queue.take("client", 3)]
    assert taken == [("a", "t0"), ("b", "t0"), ("a", "t1")]
    assert queue.take("device", 1) == []


def test_an_update_replaces_a_jobs_stages_and_old_entries_are_dropped() -> None:
    queue = ReadyQueue(Interleaved().static_key, rounds=False)
    for round_ in range(500):
        queue.update("a", 1, [_stage("a", f"t{round_}", float(round_))])
    queue.update("b", 2, [_stage("b", "t", 0.0)])
    assert len(queue) == 2
    assert sum(len(h) for h in queue._heaps.values()) < 300  # compacted as it went
    assert [(s.job, s.task) for _, s in queue.take("client", 5)] == [("b", "t"), ("a", "t499")]
    queue.update("a", 1, [])
    queue.update("b", 2, [])
    assert len(queue) == 0 and queue.take("client", 5) == []


def test_only_policies_whose_static_key_matches_their_key_keep_a_queue() -> None:
    from tuner.policies import keeps_static_order

    class OwnKey(Interleaved):  # changes the order without a static key: assign decides
        def key(self, stage, job, now):  # type: ignore[no-untyped-def]
            return (-job.priority, *super().key(stage, job, now))

    class OwnAssign(Interleaved):
        def assign(self, ready, free, jobs, now):  # type: ignore[no-untyped-def]
            return super().assign(ready, free, jobs, now)[:1]

    kept = {name for name, cls in POLICIES.items() if keeps_static_order(cls())}
    assert kept == {"interleaved", "feed-device"}
    assert not keeps_static_order(OwnKey()) and not keeps_static_order(OwnAssign())
    assert not keeps_static_order(PlainInterleaved())
