"""Interfaces of the tuner: stages, resources, job drivers, policies and job control.

Nothing here imports TVM. A job's tuning work is produced by a ``JobDriver`` (the
MetaSchedule adapter for real jobs, a sampler for simulated ones) one stage at a time; the
``Scheduler`` decides which ready stage runs on which free resource by asking a ``Policy``.
The job vocabulary the dashboard shares (stage kinds, job states, ``JobSpec``, ``Control``)
lives in ``collectors.jobs``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from collectors.jobs import JobState, StageKind


class TunerError(ValueError):
    """A user mistake in a tuning request (bad spec, policy, target, trials...)."""


def one_line(error: BaseException | str, *, last: bool = False, limit: int = 400) -> str:
    """An error as one short line of at most ``limit`` characters.

    ``last`` keeps only the message's last line, after the exception's type: TVM's errors end
    with their message, after a traceback.
    """
    if last:
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        text = (lines[-1] if lines else "").removeprefix("Error message: ")
        kind = type(error).__name__ if isinstance(error, BaseException) else ""
        text = f"{kind}: {text}".rstrip(": ") if kind else text
    else:
        text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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

    def finish_note(self) -> str | None:
        """A line for the ``finished`` job event beside the trial count (e.g. where the
        compiled model went), or None."""
        return None


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
class PlannedJob:
    """A job ready to queue: its driver and what the scheduler says of it in job events.

    ``device_pool`` is the pool its profile stages need; ``target`` the codegen target as
    stored; ``trials_total`` the budget (default: what ``driver.trials()`` says)."""

    driver: JobDriver
    name: str
    device_pool: str
    tasks: tuple[str, ...]
    target: str = ""
    model: str | None = None
    trials_total: int | None = None
