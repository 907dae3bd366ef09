"""Interfaces of the tuner: stages, resources, job drivers, policies and job control.

Nothing here imports TVM. A job's tuning work is produced by a ``JobDriver`` (the
MetaSchedule adapter for real jobs, a sampler for simulated ones) one stage at a time; the
``Scheduler`` decides which ready stage runs on which free resource by asking a ``Policy``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class TunerError(ValueError):
    """A user mistake in a tuning request (bad spec, policy, target, trials...)."""


class StageKind(StrEnum):
    SELECT = "select"
    BUILD = "build"
    PROFILE = "profile"
    UPDATE = "update"


STAGE_ORDER: tuple[StageKind, ...] = (
    StageKind.SELECT,
    StageKind.BUILD,
    StageKind.PROFILE,
    StageKind.UPDATE,
)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})

CLIENT_POOL = "client"


def resource_pool(resource: str) -> str:
    """Pool of a resource: ``client:0`` -> ``client``, ``device:rpc:k:2`` -> ``device:rpc:k``."""
    pool, sep, index = resource.rpartition(":")
    if not sep or not index.isdigit() or not pool:
        raise TunerError(f"resource name {resource!r} must look like POOL:INDEX, e.g. client:0")
    return pool


def pool_for(kind: StageKind, device_pool: str) -> str:
    """The pool a stage needs: profiling runs on the job's device pool, the rest on the client."""
    return device_pool if kind is StageKind.PROFILE else CLIENT_POOL


@dataclass(frozen=True, slots=True)
class StageRequest:
    """A job's next stage, ready to run on any free resource of ``pool``."""

    job: str
    task: str
    iteration: int
    kind: StageKind
    pool: str


@dataclass(frozen=True, slots=True)
class StageResult:
    """What running a stage produced.

    ``duration`` is the simulated length of the stage (simulated drivers only; real stages are
    timed by the clock). ``candidates`` is the batch size the stage worked on.
    """

    ok: bool = True
    error: str | None = None
    duration: float | None = None
    candidates: int | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """A policy's decision: run ``stage`` on ``resource`` now."""

    stage: StageRequest
    resource: str


@dataclass(frozen=True, slots=True)
class JobView:
    """Read-only facts about a job that policies may use."""

    id: str
    priority: int
    state: JobState
    submitted_at: float
    order: int  # submission order, a stable tie-break
    trials_done: int = 0
    trials_total: int = 0
    ready_since: float | None = None  # when its current stage became ready
    stage_estimates: Mapping[StageKind, float] = field(default_factory=dict)

    @property
    def remaining_fraction(self) -> float:
        if self.trials_total <= 0:
            return 1.0
        return max(0.0, 1.0 - self.trials_done / self.trials_total)


class JobDriver(abc.ABC):
    """Produces one job's stages in order and runs them.

    The scheduler calls ``next_stage`` when the job holds no stage; it returns None when the
    job has nothing more to do. ``run`` executes the stage on the named resource and may
    block (it is called from a worker thread for real jobs).
    """

    @abc.abstractmethod
    def next_stage(self) -> tuple[str, int, StageKind] | None:
        """(task, iteration, kind) of the job's next stage, or None when the job is done."""

    @abc.abstractmethod
    def run(self, task: str, iteration: int, kind: StageKind, resource: str) -> StageResult:
        """Execute one stage on ``resource``. Must not raise for a failed stage: report it."""

    def trials(self) -> tuple[int, int]:
        """(trials measured so far, trial budget in total)."""
        return (0, 0)

    def close(self, cancelled: bool = False) -> None:  # noqa: B027 - optional hook
        """Release what the job holds (tuning contexts, temp files); databases stay valid."""


class Policy(abc.ABC):
    """Decides which ready stages run on which free resources. Pure: no I/O, no clock reads.

    ``exclusive`` False means the policy deliberately puts several stages on one resource
    (the synchronous worst case); the scheduler then passes busy resources as free too.
    """

    name: str = ""
    exclusive: bool = True

    @abc.abstractmethod
    def assign(
        self,
        ready: Sequence[StageRequest],
        free: Sequence[str],
        jobs: Mapping[str, JobView],
        now: float,
    ) -> list[Assignment]:
        """Assignments to start now; each stage at most once, each resource at most once."""


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as ``Control.list`` reports it."""

    id: str
    name: str
    state: JobState
    priority: int
    target: str
    tasks: tuple[str, ...]
    trials_done: int
    trials_total: int
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user submits: workloads (spec strings) or a model, a budget, a priority.

    ``warm_start`` names a schedule library folder: each task first measures the library's
    schedules applied to it, and the search continues from them (``reuse_only``: it stops
    there, with the untuned workload measured as the fallback)."""

    workloads: tuple[str, ...] = ()
    model: str | None = None
    trials: int = 64
    priority: int = 0
    target: str = "llvm"
    name: str | None = None
    warm_start: str | None = None
    reuse_only: bool = False


class Control(Protocol):
    """Job controls the dashboard and CLI use. Each change emits a ``job`` event."""

    def submit(self, spec: JobSpec) -> str: ...

    def pause(self, job: str, reason: str | None = None) -> None: ...

    def resume(self, job: str) -> None: ...

    def reprioritize(self, job: str, priority: int) -> None: ...

    def cancel(self, job: str) -> None: ...

    def list(self) -> list[JobInfo]: ...
