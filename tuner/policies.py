"""Scheduling policies: pure functions of (ready stages, free resources, job views, now).

``Interleaved`` is the reference: every free resource takes the stage of its pool that has
waited longest (round-robin across jobs, since a job that just ran a stage joins the back of
the queue; a job whose tasks run side by side gets one stage per round, so a job with twenty
ready tasks does not crowd out a job with one). The others refine it by changing the queue
order (``Priority``, ``ShortestRemaining``) or by restricting which stages may run
(``Sequential``, ``Synchronous``). Look policies up by name with ``create_policy``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collectors.jobs import TERMINAL_STATES, JobState, StageKind
from tuner._base import Assignment, JobView, Policy, StageRequest, TunerError, resource_pool


def active_jobs(jobs: Mapping[str, JobView]) -> list[JobView]:
    """Jobs that may run stages (neither paused nor finished), in submission order."""
    return sorted(
        (v for v in jobs.values() if v.state not in TERMINAL_STATES and v.state != JobState.PAUSED),
        key=lambda v: v.order,
    )


class Interleaved(Policy):
    """Round-robin: each free resource takes the longest-waiting ready stage of its pool.

    Ties (stages ready at the same instant) go to the job submitted first. With
    ``per_job_rounds`` the queue is taken in rounds, one stage of each job per round, so jobs
    share the resources whatever number of tasks each has ready. Subclasses change the queue
    order by overriding ``key``; a smaller key runs first.
    """

    name = "interleaved"
    per_job_rounds = True
    static_order = True  # subclasses whose ``key`` reads the time or the job view say False

    def key(self, stage: StageRequest, job: JobView, now: float) -> tuple[float, ...]:
        """Queue position of a ready stage: when it became ready, then submission order."""
        return (_ready_since(stage, job, now), job.order)

    def static_key(self, stage: StageRequest, order: int) -> tuple[float, ...]:
        """``key`` of a stage whose ``since`` is set, from its job's submission order."""
        return (_since(stage), order)

    def assign(
        self,
        ready: Sequence[StageRequest],
        free: Sequence[str],
        jobs: Mapping[str, JobView],
        now: float,
    ) -> list[Assignment]:
        free_by_pool: dict[str, list[str]] = {}
        for resource in free:
            free_by_pool.setdefault(resource_pool(resource), []).append(resource)
        queue = sorted(ready, key=lambda s: self.key(s, jobs[s.job], now))
        if self.per_job_rounds:
            queue = _in_rounds(queue)
        out: list[Assignment] = []
        for stage in queue:
            resources = free_by_pool.get(stage.pool)
            if resources:
                out.append(Assignment(stage, resources.pop(0)))
        return out


class FeedDevice(Interleaved):
    """Interleaved, but build stages go first: a finished build lets a profile start, so
    the device idles less. Otherwise round-robin."""

    name = "feed-device"

    def key(self, stage: StageRequest, job: JobView, now: float) -> tuple[float, ...]:
        return (_feeds_device(stage), *super().key(stage, job, now))

    def static_key(self, stage: StageRequest, order: int) -> tuple[float, ...]:
        return (_feeds_device(stage), *super().static_key(stage, order))


class Sequential(Interleaved):
    """One job at a time: only the earliest-submitted active job runs stages.

    A paused job steps aside for the next one; when it resumes it takes over again once the
    other job's running stage ends.
    """

    name = "sequential"
    static_order = False  # only the first active job's stages run

    def assign(
        self,
        ready: Sequence[StageRequest],
        free: Sequence[str],
        jobs: Mapping[str, JobView],
        now: float,
    ) -> list[Assignment]:
        active = active_jobs(jobs)
        if not active:
            return []
        first = active[0].id
        return super().assign([s for s in ready if s.job == first], free, jobs, now)


class Synchronous(Policy):
    """The worst case, for comparison: the same stage of every job at once on one resource.

    A barrier: nothing starts until every active job has a ready stage; then all ready stages
    of one kind (the kind of the earliest-submitted job) start together on the first resource
    of their pool. Stages share that resource (``exclusive`` is False): in simulation each of
    k stages on one resource progresses at 1/k speed (processor sharing).
    """

    name = "synchronous"
    exclusive = False

    def assign(
        self,
        ready: Sequence[StageRequest],
        free: Sequence[str],
        jobs: Mapping[str, JobView],
        now: float,
    ) -> list[Assignment]:
        active = active_jobs(jobs)
        by_job = {s.job: s for s in ready}
        if not active or any(v.id not in by_job for v in active):
            return []
        kind = by_job[active[0].id].kind
        first_of_pool: dict[str, str] = {}
        for resource in free:
            first_of_pool.setdefault(resource_pool(resource), resource)
        out = []
        for view in active:
            stage = by_job[view.id]
            if stage.kind == kind and stage.pool in first_of_pool:
                out.append(Assignment(stage, first_of_pool[stage.pool]))
        return out


class Priority(Interleaved):
    """Higher priority first; round-robin among equals; waiting raises priority (aging).

    A ready stage's effective priority is ``priority + aging * seconds waited``, so a stage
    that waited ``1 / aging`` seconds counts one level higher and nothing waits forever.
    """

    name = "priority"
    per_job_rounds = False  # the higher priority takes every resource it can use
    static_order = False  # priorities change and age

    def __init__(self, aging: float = 1 / 120) -> None:
        self.aging = _non_negative("priority", "aging", aging)

    def key(self, stage: StageRequest, job: JobView, now: float) -> tuple[float, ...]:
        since = _ready_since(stage, job, now)
        effective = job.priority + self.aging * max(0.0, now - since)
        return (-effective, since, job.order)


class ShortestRemaining(Interleaved):
    """Estimate-driven: the job with the least expected remaining work goes first.

    Expected remaining work is the job's remaining trials times the sum of its stage-time
    estimates (``JobView.stage_estimates``, learned from finished stages), which ranks jobs by
    remaining time when they measure equal batches per iteration. Finishing short jobs first
    lowers mean completion time while the other jobs' stages keep the remaining resources busy.
    With ``feed_device`` build stages go first, as in ``feed-device``, so the device idles
    less. ``aging`` (seconds of estimated work forgiven per second waited) bounds starvation.
    """

    name = "shortest-remaining"
    per_job_rounds = False  # the shortest job takes every resource it can use
    static_order = False  # estimates change and waiting ages

    def __init__(self, aging: float = 0.05, feed_device: bool = True) -> None:
        self.aging = _non_negative("shortest-remaining", "aging", aging)
        if not isinstance(feed_device, bool):
            raise TunerError("policy 'shortest-remaining': feed_device must be true or false")
        self.feed_device = feed_device

    def key(self, stage: StageRequest, job: JobView, now: float) -> tuple[float, ...]:
        since = _ready_since(stage, job, now)
        remaining = max(0, job.trials_total - job.trials_done)
        per_trial = sum(job.stage_estimates.values()) or 1.0
        work = remaining * per_trial - self.aging * max(0.0, now - since)
        first = _feeds_device(stage) if self.feed_device else 0
        return (first, work, since, job.order)


# The policy ``tune``, the server, the demo, ``simulate`` and ``bench sweep`` use unless told:
# builds first keeps the device fed, and on real jobs it left the device idle less than plain
# round-robin (benchmarks/scheduler_real.py).
DEFAULT_POLICY = "feed-device"

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (Interleaved, Sequential, Synchronous, Priority, FeedDevice, ShortestRemaining)
}


def create_policy(name: str, **kwargs: Any) -> Policy:
    """The policy registered as ``name``, built with ``kwargs``.

    Unknown names and arguments raise TunerError listing what is valid.
    """
    cls = POLICIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise TunerError(f"unknown policy {name!r}; valid policies: {', '.join(POLICIES)}")
    accepted = [
        p.name for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"
    ]
    accepted = [a for a in accepted if a not in ("args", "kwargs")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no arguments"
        raise TunerError(f"policy {name!r}: unknown argument {unknown[0]!r} (it takes {takes})")
    return cls(**kwargs)


def keeps_static_order(policy: Policy) -> bool:
    """Whether the scheduler may keep the policy's queue itself (``Policy.static_order``):
    the policy says so, is exclusive, and its ``static_key`` is defined where its ``key`` and
    ``assign`` are or below (a subclass that changes either without ``static_key`` is
    decided by ``assign``)."""
    if not (policy.static_order and policy.exclusive):
        return False
    mro = type(policy).__mro__

    def owner(name: str) -> type:
        return next(cls for cls in mro if name in vars(cls))

    static = owner("static_key")
    return all(issubclass(static, owner(name)) for name in ("key", "assign"))


def lend_idle_devices(
    spare: Sequence[str],
    waiting: Sequence[StageRequest],
    estimate: Callable[[StageRequest], float | None],
    next_profile: Mapping[str, float],
    now: float,
    wait_s: float = 0.0,
) -> list[Assignment]:
    """Client stages to run on idle device resources (pure; the scheduler applies it after
    the policy). ``spare`` are free local device resources the policy left idle; ``waiting``
    the client stages it left waiting, in queue order; ``estimate(stage)`` a stage's expected
    seconds (None: unknown); ``next_profile[pool]`` when a profile of that device pool is
    expected to become ready at the earliest (``now``: one waits already; missing: none is
    coming). A device is lent to a stage only when the stage is expected to end before the
    next profile needs the device, or at most ``wait_s`` later: no profile ever shares a core
    with it, and a profile waits at most about ``wait_s`` for one (``inf``: the device is a
    second client whenever no profile waits, for runs where client work is the bottleneck)."""
    out: list[Assignment] = []
    queue = list(waiting)
    for resource in spare:
        pool = resource_pool(resource)
        deadline = next_profile.get(pool, math.inf)
        for stage in queue:
            seconds = estimate(stage)
            if seconds is not None and now + seconds <= deadline + wait_s:
                out.append(Assignment(stage, resource))
                queue.remove(stage)
                break
    return out


def _feeds_device(stage: StageRequest) -> int:
    """0 for a build (a profile follows it), 1 otherwise: sorts builds first."""
    return 0 if stage.kind == StageKind.BUILD else 1


def _ready_since(stage: StageRequest, job: JobView, now: float) -> float:
    """When the stage became ready (its own time, else its job's, else now)."""
    if stage.since is not None:
        return stage.since
    return now if job.ready_since is None else job.ready_since


def _since(stage: StageRequest) -> float:
    if stage.since is None:
        raise TunerError(f"a static queue order needs the time each stage became ready: {stage}")
    return stage.since


def _in_rounds(queue: Sequence[StageRequest]) -> list[StageRequest]:
    """The queue reordered into rounds: each job's first stage, then each job's second...
    (stable within a round)."""
    taken: dict[str, int] = {}
    ranked = []
    for position, stage in enumerate(queue):
        rank = taken.get(stage.job, 0)
        taken[stage.job] = rank + 1
        ranked.append((rank, position, stage))
    return [stage for _, _, stage in sorted(ranked, key=lambda r: (r[0], r[1]))]


def _non_negative(policy: str, arg: str, value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value >= 0):
        raise TunerError(f"policy {policy!r}: {arg} must be a finite number >= 0, got {value!r}")
    return float(value)
