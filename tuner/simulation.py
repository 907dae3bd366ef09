"""Simulated tuning jobs on a discrete-event clock, run by the real scheduler.

Stage durations are drawn from seeded distributions around measured means. The default,
``thesis``, uses the stage times of a 14.5 h ResNet-18 tuning run: build 8.3 s, profile
39.5 s, and 44.0 s for update+select together. That run did not time the two apart; here it
is split as select 40.0 s and update 4.0 s, because the evolutionary search (select) dominates
it: on this project's machines a select took 0.9-4.5 s per 16-candidate batch while an update
took 0.07-0.4 s (5.6 s when the XGBoost model retrains). The client's share of an iteration
(select + build + update = 52.3 s) is the same for any split.

Each simulated job draws its durations from its own random stream in stage order, so a job's
stages take the same simulated time under every policy: policies are compared on equal work.
Every event of a simulated run carries ``clock: "sim"`` and simulated seconds.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collectors.events import RecordEvent, TaskEvent
from collectors.jobs import STAGE_ORDER, StageKind
from tuner._base import CLIENT_POOL, JobDriver, Policy, StageResult, TunerError, pool_for
from tuner.clock import SimClock
from tuner.policies import DEFAULT_POLICY
from tuner.scheduler import Scheduler

if TYPE_CHECKING:
    from collectors._base import BaseStore
    from collectors.sink import EventSink

SIM_DEVICE_POOL = "device:sim"

THESIS_MEANS: Mapping[StageKind, float] = {
    StageKind.SELECT: 40.0,
    StageKind.BUILD: 8.3,
    StageKind.PROFILE: 39.5,
    StageKind.UPDATE: 4.0,
}


@dataclass(frozen=True)
class StageTimes:
    """A distribution of stage durations: mean per stage kind, a shape and a spread.

    ``shape`` is ``lognormal``, ``gamma`` or ``fixed`` (always the mean); ``cv`` is the
    coefficient of variation (standard deviation / mean) of the random shapes.
    """

    means: Mapping[StageKind, float]
    shape: str = "lognormal"
    cv: float = 0.3

    def __post_init__(self) -> None:
        if self.shape not in ("lognormal", "gamma", "fixed"):
            raise TunerError(f"unknown shape {self.shape!r}; valid: lognormal, gamma, fixed")
        if not (math.isfinite(self.cv) and self.cv >= 0):
            raise TunerError(f"cv must be a finite number >= 0, got {self.cv}")
        for kind in STAGE_ORDER:
            mean = self.means.get(kind)
            if mean is None or not (math.isfinite(mean) and mean >= 0):
                raise TunerError(f"stage {kind}: mean must be a finite number >= 0, got {mean}")

    def sample(self, kind: StageKind, rng: random.Random) -> float:
        """One duration in seconds for a stage of ``kind``."""
        mean = self.means[kind]
        if self.shape == "fixed" or self.cv == 0 or mean == 0:
            return mean
        if self.shape == "gamma":
            k = 1.0 / self.cv**2
            return rng.gammavariate(k, mean / k)
        sigma2 = math.log1p(self.cv**2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))

    def scaled(self, factor: float, kind: StageKind | None = None) -> StageTimes:
        """The same distribution with every mean (or only ``kind``'s) multiplied by
        ``factor``. The same random draws then give stage times scaled by ``factor``."""
        means = {k: v * factor if kind in (None, k) else v for k, v in self.means.items()}
        return StageTimes(means, self.shape, self.cv)


@dataclass(frozen=True)
class DeviceKind:
    """``count`` simulated devices of one kind whose profile stages take ``speed`` times the
    distribution's profile time (2.5: two and a half times as long). Each kind is a device
    pool of its own, ``device:sim:NAME``, as devices of one RPC tracker key are."""

    name: str
    count: int
    speed: float

    @property
    def pool(self) -> str:
        return f"{SIM_DEVICE_POOL}:{self.name}"


def parse_device_kinds(text: str) -> tuple[DeviceKind, ...]:
    """``fast:8:1.0,slow:8:2.5`` -> device kinds; a bad part raises TunerError naming it."""
    kinds: list[DeviceKind] = []
    for part in text.split(","):
        label = part.strip()
        fields = [f.strip() for f in label.split(":")]
        if len(fields) != 3:
            raise TunerError(
                f"device kind {label!r} must look like NAME:COUNT:SPEED, e.g. fast:8:1.0"
            )
        name, count_text, speed_text = fields
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
            raise TunerError(
                f"device kind {label!r}: NAME must start with a letter (letters, digits, _, -)"
            )
        try:
            count, speed = int(count_text), float(speed_text)
        except ValueError:
            raise TunerError(
                f"device kind {label!r}: COUNT must be an integer and SPEED a number"
            ) from None
        if count <= 0:
            raise TunerError(f"device kind {label!r}: COUNT must be positive")
        if not (math.isfinite(speed) and speed > 0):
            raise TunerError(f"device kind {label!r}: SPEED must be a finite number > 0")
        if any(k.name == name for k in kinds):
            raise TunerError(f"device kind {name!r} is given twice")
        kinds.append(DeviceKind(name, count, speed))
    return tuple(kinds)


def kinds_of_jobs(jobs: int, kinds: Sequence[DeviceKind]) -> list[DeviceKind]:
    """The device kind each job tunes for: spread in proportion to each kind's capacity
    (count / speed), in a smooth weighted round-robin (deterministic)."""
    weights = [k.count / k.speed for k in kinds]
    total = math.fsum(weights)
    credit = [0.0] * len(kinds)
    out = []
    for _ in range(jobs):
        credit = [c + w for c, w in zip(credit, weights, strict=True)]
        best = max(range(len(kinds)), key=lambda i: (credit[i], -i))
        credit[best] -= total
        out.append(kinds[best])
    return out


DISTRIBUTIONS: dict[str, StageTimes] = {
    "thesis": StageTimes(THESIS_MEANS, "lognormal", 0.3),
    "thesis-gamma": StageTimes(THESIS_MEANS, "gamma", 0.3),
    "thesis-fixed": StageTimes(THESIS_MEANS, "fixed", 0.0),
}


def stage_times(name: str) -> StageTimes:
    """The named stage-time distribution; unknown names raise TunerError listing the valid."""
    found = DISTRIBUTIONS.get(name)
    if found is None:
        raise TunerError(
            f"unknown stage-time distribution {name!r}; valid: {', '.join(DISTRIBUTIONS)}"
        )
    return found


class SimulatedDriver(JobDriver):
    """A job of ``len(tasks)`` tasks x ``iterations`` rounds whose stages only take time.

    Stages come round-robin over tasks (every task's iteration 0, then iteration 1, ...), as
    MetaSchedule's round-robin task scheduler orders them. ``run`` returns a drawn duration
    (or, with ``sleep``, sleeps that long: for exercising a wall clock).
    With a sink it emits one ``task`` event per task (op ``simulated``) when the job starts
    and, with ``records``, one ``record`` event per candidate at each update (origin
    ``simulated``; the latencies are invented, the run is labelled ``clock: "sim"``).
    """

    def __init__(
        self,
        job: str,
        *,
        tasks: Sequence[str],
        iterations: int,
        times: StageTimes,
        seed: int,
        candidates: int = 64,
        sink: EventSink | None = None,
        records: bool = False,
        device_pool: str = SIM_DEVICE_POOL,
        sleep: bool = False,
    ) -> None:
        if not tasks:
            raise TunerError("a simulated job needs at least one task")
        _positive("iterations", iterations)
        _positive("candidates", candidates)
        self.job = job
        self.tasks = tuple(tasks)
        self.iterations = iterations
        self.candidates = candidates
        self.times = times
        self.sink = sink
        self.records = records
        self.device_pool = device_pool
        self.sleep = sleep
        self._rng = random.Random(seed)
        self._latency_rng = random.Random(seed + 1_000_003)
        self._steps = [
            (task, it, kind)
            for it in range(iterations)
            for task in self.tasks
            for kind in STAGE_ORDER
        ]
        self._next = 0
        self._measured = 0
        self._announced = False
        self.closed: bool | None = None  # None while open; then whether it was cancelled
        self.work: dict[str, float] = {}  # simulated seconds drawn, per pool

    def next_stage(self) -> tuple[str, int, StageKind] | None:
        if not self._announced:
            self._announced = True
            self._announce()
        if self._next >= len(self._steps):
            return None
        step = self._steps[self._next]
        self._next += 1
        return step

    def run(self, task: str, iteration: int, kind: StageKind, resource: str) -> StageResult:
        duration = self.times.sample(kind, self._rng)
        pool = pool_for(kind, self.device_pool)
        self.work[pool] = self.work.get(pool, 0.0) + duration
        if kind is StageKind.UPDATE:
            self._measured += self.candidates
            if self.records and self.sink is not None:
                self._emit_records(task, iteration)
        if self.sleep:
            time.sleep(duration)
            return StageResult(candidates=self.candidates)
        return StageResult(duration=duration, candidates=self.candidates)

    def trials(self) -> tuple[int, int]:
        return (self._measured, len(self.tasks) * self.iterations * self.candidates)

    def close(self, cancelled: bool = False) -> None:
        self.closed = cancelled

    def total_work(self) -> float:
        """Simulated seconds of every stage drawn so far."""
        return math.fsum(self.work.values())

    def _announce(self) -> None:
        if self.sink is None:
            return
        for task in self.tasks:
            self.sink.emit(TaskEvent, job=self.job, task=task, op="simulated", detail="simulated")

    def _emit_records(self, task: str, iteration: int) -> None:
        # Invented latencies that improve with iterations, so simulated runs draw a
        # convergence curve; a few candidates fail to build or run.
        rng = self._latency_rng
        base = 1e-3 * (1 + (sum(map(ord, task)) % 7))
        improve = 0.5 + 0.5 * math.exp(-iteration / 4)
        for index in range(self.candidates):
            candidate = iteration * self.candidates + index
            roll = rng.random()
            common: dict[str, Any] = {
                "job": self.job,
                "task": task,
                "candidate": candidate,
                "iteration": iteration,
                "origin": "simulated",
            }
            if roll < 0.03:
                self.sink.emit(  # type: ignore[union-attr]
                    RecordEvent, error="simulated build error", error_class="build", **common
                )
                continue
            secs = base * improve * rng.lognormvariate(0.0, 0.25)
            self.sink.emit(RecordEvent, run_secs=(secs,), **common)  # type: ignore[union-attr]


@dataclass(frozen=True)
class SimulationResult:
    """Figures of one simulated run (simulated seconds)."""

    policy: str
    jobs: int
    clients: int
    devices: int
    seed: int
    distribution: str
    makespan_s: float
    lower_bound_s: float
    utilization: dict[str, float]
    mean_completion_s: float
    completion_s: dict[str, float] = field(default_factory=dict)  # by job name
    dispatches: int = 0
    decision_s: float = 0.0
    device_kinds: tuple[DeviceKind, ...] = ()

    @property
    def per_dispatch_s(self) -> float:
        """The scheduler's measured decision time per stage started (wall seconds)."""
        return self.decision_s / self.dispatches if self.dispatches else 0.0

    @property
    def ratio(self) -> float:
        """Makespan over its lower bound (1.0 is optimal)."""
        return self.makespan_s / self.lower_bound_s if self.lower_bound_s else 1.0

    def to_dict(self) -> dict[str, Any]:
        """The simulated figures (reproducible from the seed; no measured times)."""
        return {
            "clock": "sim",
            "policy": self.policy,
            "jobs": self.jobs,
            "clients": self.clients,
            "devices": self.devices,
            "seed": self.seed,
            "distribution": self.distribution,
            "makespan_s": self.makespan_s,
            "lower_bound_s": self.lower_bound_s,
            "makespan_over_lower_bound": self.ratio,
            "utilization": dict(self.utilization),
            "mean_completion_s": self.mean_completion_s,
            "completion_s": dict(self.completion_s),
            "dispatches": self.dispatches,
            **(
                {
                    "device_kinds": [
                        {"name": k.name, "count": k.count, "speed": k.speed}
                        for k in self.device_kinds
                    ]
                }
                if self.device_kinds
                else {}
            ),
        }


def lower_bound(
    work_per_pool: Mapping[str, float], pool_sizes: Mapping[str, int], longest_job: float
) -> float:
    """Makespan lower bound: max(each pool's work / its resources; the longest job's work)."""
    bound = longest_job
    for pool, work in work_per_pool.items():
        bound = max(bound, work / pool_sizes[pool])
    return bound


def job_sizes(jobs: int, tasks: int, *, mixed: bool, seed: int) -> list[int]:
    """Tasks per job: ``tasks`` each, or (mixed) uniform in 1..2*tasks-1 (mean ``tasks``)."""
    if not mixed:
        return [tasks] * jobs
    rng = random.Random(f"sizes-{seed}")
    return [rng.randint(1, 2 * tasks - 1) for _ in range(jobs)]


def simulate(
    *,
    jobs: int = 4,
    clients: int = 1,
    devices: int = 1,
    policy: str | Policy = DEFAULT_POLICY,
    seed: int = 0,
    tasks: int | Sequence[int] = 4,
    iterations: int = 8,
    candidates: int = 64,
    distribution: str | StageTimes = "thesis",
    store: BaseStore | None = None,
    source: str | None = None,
    records: bool = False,
    policy_args: Mapping[str, Any] | None = None,
    priorities: Sequence[int] | None = None,
    device_kinds: Sequence[DeviceKind] = (),
) -> SimulationResult:
    """Run ``jobs`` simulated jobs on ``clients`` client and ``devices`` device resources.

    ``policy`` is a registered name (built with ``policy_args``) or a policy object.
    ``tasks`` is the task count of every job, or one count per job. ``device_kinds``, when
    given, replaces ``devices``: each kind is a device pool of its own whose profile times
    are scaled by its speed, and each job tunes for one kind (``kinds_of_jobs``). With a
    ``store``, every event goes into it under ``source`` (random unless given), stamped
    ``clock: "sim"`` with simulated seconds, written in batches. Bad input raises TunerError
    before anything runs or is stored.
    """
    from tuner.policies import create_policy

    for what, value in (("jobs", jobs), ("clients", clients), ("devices", devices)):
        _positive(what, value)
    _positive("iterations", iterations)
    _positive("candidates", candidates)
    if isinstance(tasks, int):
        _positive("tasks", tasks)
        sizes = [tasks] * jobs
    else:
        sizes = list(tasks)
        if len(sizes) != jobs:
            raise TunerError(f"tasks: {len(sizes)} counts given for {jobs} jobs")
        for size in sizes:
            _positive("tasks", size)
    if priorities is not None and len(priorities) != jobs:
        raise TunerError(f"priorities: {len(priorities)} given for {jobs} jobs")
    if isinstance(distribution, str):
        times, dist_name = stage_times(distribution), distribution
    else:
        times, dist_name = distribution, "custom"
    if isinstance(policy, Policy):
        chosen = policy
    else:
        chosen = create_policy(policy, **dict(policy_args or {}))
    kinds = tuple(device_kinds)
    if kinds:
        devices = sum(k.count for k in kinds)
        job_kinds: list[DeviceKind | None] = list(kinds_of_jobs(jobs, kinds))
    else:
        job_kinds = [None] * jobs

    clock = SimClock()
    sink = None
    if store is not None:
        from collectors.sink import EventSink

        sink = EventSink(store, source=source or new_source(), now=clock.now, clock="sim")
    resources = [f"{CLIENT_POOL}:{i}" for i in range(clients)]
    pool_sizes = {CLIENT_POOL: clients}
    if kinds:
        for kind in kinds:
            resources += [f"{kind.pool}:{i}" for i in range(kind.count)]
            pool_sizes[kind.pool] = kind.count
    else:
        resources += [f"{SIM_DEVICE_POOL}:{i}" for i in range(devices)]
        pool_sizes[SIM_DEVICE_POOL] = devices
    drivers: dict[str, SimulatedDriver] = {}
    batched = sink.batched() if sink is not None else contextlib.nullcontext()
    with batched:
        scheduler = Scheduler(resources, chosen, clock=clock, sink=sink)
        for index, (size, kind) in enumerate(zip(sizes, job_kinds, strict=True)):
            names = [f"t{t}" for t in range(size)]
            pool = SIM_DEVICE_POOL if kind is None else kind.pool
            job_times = times if kind is None else times.scaled(kind.speed, StageKind.PROFILE)

            def build(
                job_id: str,
                names: list[str] = names,
                index: int = index,
                pool: str = pool,
                job_times: StageTimes = job_times,
            ) -> SimulatedDriver:
                driver = SimulatedDriver(
                    job_id,
                    tasks=names,
                    iterations=iterations,
                    times=job_times,
                    seed=seed * 100_003 + index,
                    candidates=candidates,
                    sink=sink,
                    records=records,
                    device_pool=pool,
                )
                drivers[job_id] = driver
                return driver

            scheduler.submit_job(
                build,
                name=f"sim-{index + 1}",
                target="sim" if kind is None else f"sim:{kind.name}",
                device_pool=pool,
                tasks=names,
                trials_total=size * iterations * candidates,
                priority=0 if priorities is None else priorities[index],
            )
        scheduler.run()

    names = {info.id: info.name for info in scheduler.list()}
    completion = {
        names[job]: (ended if ended is not None else clock.now()) - submitted
        for job, (submitted, ended) in scheduler.job_times().items()
    }
    makespan = max(completion.values())
    work: dict[str, float] = {}
    for driver in drivers.values():
        for pool, seconds in driver.work.items():
            work[pool] = work.get(pool, 0.0) + seconds
    longest = max(d.total_work() for d in drivers.values())
    busy = scheduler.busy_time()
    return SimulationResult(
        policy=chosen.name,
        jobs=jobs,
        clients=clients,
        devices=devices,
        seed=seed,
        distribution=dist_name,
        makespan_s=makespan,
        lower_bound_s=lower_bound(work, pool_sizes, longest),
        utilization={r: (busy[r] / makespan if makespan else 0.0) for r in resources},
        mean_completion_s=math.fsum(completion.values()) / len(completion),
        completion_s=completion,
        dispatches=scheduler.stats.dispatches,
        decision_s=scheduler.stats.decision_s,
        device_kinds=kinds,
    )


def new_source() -> str:
    """A fresh event source name for a simulated run."""
    return f"simulate-{uuid.uuid4().hex[:12]}"


def _positive(what: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TunerError(f"{what} must be a positive integer, got {value!r}")
