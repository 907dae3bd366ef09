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

from collectors.jobs import JobState, StageKind, UnknownJobError


class TunerError(ValueError):
    """A user mistake in a tuning request (bad spec, policy, target, trials...)."""


class UnknownJob(TunerError, UnknownJobError):
    """A control named a job this tuner does not know."""


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


def duration_text(seconds: float | None) -> str:
    """``90`` -> ``1m30s``; whole units only."""
    total = round(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


CLIENT_POOL = "client"
NODE_POOL = "node"  # the cores of cluster nodes, client:NODE:i: builds only
# Whose tasks' bests a select takes as sibling schedules (``tuner.metaschedule.siblings``):
# those of every job running in one engine on the same target, or the job's own.
SIBLING_SCOPES = ("all-jobs", "job")


def resource_pool(resource: str) -> str:
    """Pool of a resource: ``client:0`` -> ``client``, ``device:rpc:k:2`` -> ``device:rpc:k``.

    A core of a cluster node, ``client:NODE:i``, is in the ``node`` pool: it builds, while
    select and update stay on the client cores of the process that holds the search state."""
    pool, sep, index = resource.rpartition(":")
    if not sep or not index.isdigit() or not pool:
        raise TunerError(f"resource name {resource!r} must look like POOL:INDEX, e.g. client:0")
    return NODE_POOL if pool.startswith(CLIENT_POOL + ":") else pool


def pool_for(kind: StageKind, device_pool: str, build_pool: str = CLIENT_POOL) -> str:
    """The pool a stage needs: profiling runs on the job's device pool, builds on
    ``build_pool`` (the client, or a cluster's nodes), select and update on the client."""
    if kind is StageKind.PROFILE:
        return device_pool
    return build_pool if kind is StageKind.BUILD else CLIENT_POOL


@dataclass(frozen=True, slots=True)
class StageRequest:
    """A task's next stage, ready to run on any free resource of ``pool`` since ``since``
    (clock time; None: the job's ``JobView.ready_since`` says). A ``quiet`` profile runs
    while no client work runs on this machine (``tuner.quiet``); policies never see one, and
    its ``since`` is that of the batch profile it follows."""

    job: str
    task: str
    iteration: int
    kind: StageKind
    pool: str
    since: float | None = None
    quiet: bool = False


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
    ready_since: float | None = None  # when its longest-waiting ready stage became ready
    stage_estimates: Mapping[StageKind, float] = field(default_factory=dict)
    running: int = 0  # stages it runs now (several tasks of one job may run at once)

    @property
    def remaining_fraction(self) -> float:
        if self.trials_total <= 0:
            return 1.0
        return max(0.0, 1.0 - self.trials_done / self.trials_total)


Step = tuple[str, int, StageKind]  # (task, iteration, kind) of a stage


class JobDriver(abc.ABC):
    """Produces one job's stages and runs them.

    A task's stages run in order, one at a time; stages of different tasks of one job may
    run at once. The scheduler asks ``ready`` for the stages that may start, given the tasks
    that already hold a stage; the default runs the job one stage at a time through
    ``next_stage``, which a serial driver implements (a task-parallel driver overrides
    ``ready``). ``run`` executes a stage on the named resource and may block (real jobs call
    it on a worker thread per resource, so the stages of different tasks run concurrently).
    """

    def next_stage(self) -> Step | None:
        """(task, iteration, kind) of a serial job's next stage, or None when it is done."""
        raise NotImplementedError(f"{type(self).__name__} implements neither next_stage nor ready")

    def ready(self, busy: frozenset[str]) -> list[Step] | None:
        """The stages that may start now, at most one per task and none of a task in ``busy``
        (tasks with a stage waiting or running); None once the job has nothing left to do
        (it finishes when its busy stages end). The default: one stage at a time."""
        if busy:
            return []
        step = self.next_stage()
        return None if step is None else [step]

    def wants_quiet(self, task: str) -> bool:
        """Whether ``task``'s ready profile should run while no select, build or update runs
        on this machine (e.g. to time a would-be best again; see ``tuner.quiet``)."""
        return False

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
    #: True when ``assign`` amounts to: each free resource, in the order given, takes the first
    #: ready stage of its pool in the order of ``static_key`` (one stage of each job per round
    #: with ``per_job_rounds``). The scheduler then keeps that queue itself, incrementally,
    #: instead of calling ``assign`` with every ready stage on every pass.
    static_order: bool = False
    per_job_rounds: bool = False

    def static_key(self, stage: StageRequest, order: int) -> tuple[float, ...]:
        """A ready stage's queue position from the stage (its ``since`` set) and its job's
        submission order alone; only policies with ``static_order`` implement it."""
        raise NotImplementedError(f"policy {self.name!r} has no static queue order")

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
    stored; ``trials_total`` the budget (default: what ``driver.trials()`` says); ``detail``
    goes into the ``submitted`` job event."""

    driver: JobDriver
    name: str
    device_pool: str
    tasks: tuple[str, ...]
    target: str = ""
    model: str | None = None
    trials_total: int | None = None
    detail: str | None = None  # what the job was asked (its budget, stop rules)
