"""The scheduler: runs the stages of many jobs on named resources as a policy decides.

Each dispatch pass (a callback on the clock's loop) asks every runnable job whose stages
changed for the stages it may start (``JobDriver.ready``: one per task at most, so the tasks
of one job run side by side), hands the ready stages, the free resources and read-only job
views to the policy, and starts what it assigns. With a ``SimClock`` the driver runs inline and its
``StageResult.duration`` decides when the stage ends; with a ``WallClock`` it runs on a worker
thread per resource and its completion is posted back to the loop. The same code serves both.

Guarantees: a task's stages run in order, one at a time (a serial driver's job runs one stage
at a time); an exclusive resource never holds two stages; a paused job holds no resource once
its running stages end; a cancelled job's driver is closed with ``cancelled=True`` after its
running stages end (simulated stages are abandoned); a quiet profile (``tuner.quiet``) that
starts as one runs with no select, build or update beside it on this machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from collectors.events import JobEvent, StageEvent
from collectors.jobs import TERMINAL_STATES, Catalog, JobInfo, JobSpec, JobState, StageKind
from collectors.sink import StoreWriteError
from tuner._base import (
    CLIENT_POOL,
    NODE_POOL,
    Assignment,
    JobDriver,
    JobView,
    PlannedJob,
    Policy,
    StageRequest,
    StageResult,
    TunerError,
    UnknownJob,
    pool_for,
    resource_pool,
)
from tuner.clock import Clock
from tuner.policies import create_policy, keeps_static_order, lend_idle_devices
from tuner.quiet import QUIET_HOLD_S, QUIET_PATIENCE_S, QuietPlan, plan_quiet
from tuner.ready_queue import ReadyQueue

if TYPE_CHECKING:
    from collectors.sink import EventSink

log = logging.getLogger(__name__)

JobFactory = Callable[[str, JobSpec], PlannedJob]
_NO_QUIET = QuietPlan()
STILL_PAUSED = "still paused after restart"  # a restored paused job's event says so


@dataclass
class SchedulerStats:
    """Dispatch counters and the time spent deciding.

    ``decision_s`` is ``time.perf_counter`` time spent in dispatch passes and completion
    handling (the policy, bookkeeping and event emission), with the drivers' own calls
    (``next_stage``, ``run``, ``trials``, ``close``) left out.
    """

    dispatches: int = 0  # stages started
    passes: int = 0  # dispatch passes (each consults the policy at most once)
    completions: int = 0  # stages ended (finished, failed or abandoned)
    decision_s: float = 0.0
    quiet_profiles: int = 0  # quiet profiles started with no client work beside them
    quiet_demoted: int = 0  # quiet profiles that waited too long and ran as any profile

    @property
    def per_dispatch_s(self) -> float:
        """Mean decision time per stage started (0.0 before the first)."""
        return self.decision_s / self.dispatches if self.dispatches else 0.0


@dataclass(eq=False)
class _Stage:
    """A stage holding a resource."""

    request: StageRequest
    resource: str
    start: float
    result: StageResult | None = None
    work: float = 0.0  # simulated: full-speed seconds still to do
    since: float = 0.0  # simulated: when ``work`` was last brought up to date
    duration: float = 0.0  # simulated: full-speed length of the stage
    token: int = 0  # simulated: invalidates superseded completion callbacks
    over: bool = False


@dataclass(eq=False)
class _Job:
    id: str
    name: str
    target: str
    device_pool: str
    tasks: tuple[str, ...]
    trials_total: int
    priority: int
    model: str | None
    driver: JobDriver
    order: int
    submitted_at: float
    state: JobState = JobState.QUEUED
    started: bool = False
    pending: dict[str, StageRequest] = field(default_factory=dict)  # by task
    running: dict[str, _Stage] = field(default_factory=dict)  # by task
    closed: bool = False
    ended_at: float | None = None
    detail: str | None = None
    spec: str | None = None  # the submitted JobSpec as JSON text (for a restart)
    asked: str | None = None  # its detail while a pause reason is shown instead
    estimates: dict[StageKind, tuple[int, float]] = field(default_factory=dict)
    slot: int = 0  # position among the scheduler's jobs
    # By task, when its last ordinary profile became ready: a quiet profile that follows
    # keeps that batch's turn for the device (``tuner.quiet``).
    profile_turn: dict[str, float] = field(default_factory=dict)


class Scheduler:
    """Runs jobs' stages on exclusive resources under a policy; implements ``Control``.

    ``resources`` name the machines' parts, e.g. ``["client:0", "device:llvm:0"]``. ``sink``
    receives job and stage events (its clock should match ``clock``). ``job_factory`` plans a
    job for ``submit(spec)`` from the new job's id and the spec (``tuner.engine`` gives the
    real one). Job ids look like ``j3-7f2a``: submission number and ``id_prefix`` (random
    unless given, and not used by any job already in the sink's store). ``lendable`` device
    resources may run client stages while idle, when no profile is expected before such a
    stage would end, or at most ``lend_wait_s`` later (``policies.lend_idle_devices``).
    A profile its driver wants quiet (``JobDriver.wants_quiet``) starts only while no client
    work runs on this machine (``tuner.quiet``: free client resources wait for it at most
    ``quiet_hold_s``, and it waits at most ``quiet_patience_s`` before it runs as any
    profile; with ``quiet_keeps_turn`` it keeps its batch's turn for the device and runs as
    any profile rather than let a profile that became ready after that batch go first).
    Cores of cluster nodes (``client:NODE:i``, the ``node`` pool) take the builds once one is
    known; select and update stay on ``client:N``, where the search state lives.

    Every public method is thread-safe: changes happen under one lock and wake the loop by
    posting a dispatch pass onto the clock, so the dashboard and the CLI may call the controls
    from their own threads while ``start_background`` serves.
    """

    def __init__(
        self,
        resources: Sequence[str],
        policy: Policy | str,
        *,
        clock: Clock,
        sink: EventSink | None = None,
        job_factory: JobFactory | None = None,
        id_prefix: str | None = None,
        lendable: Sequence[str] = (),
        lend_wait_s: float = 0.0,
        quiet_hold_s: float = QUIET_HOLD_S,
        quiet_patience_s: float = QUIET_PATIENCE_S,
        quiet_keeps_turn: bool = True,
    ) -> None:
        names = list(resources)
        if not names:
            raise TunerError("a scheduler needs at least one resource, e.g. client:0")
        duplicates = sorted({r for r in names if names.count(r) > 1})
        if duplicates:
            raise TunerError(f"resource {duplicates[0]!r} is listed twice")
        self.resources: tuple[str, ...] = tuple(names)
        self._pools: dict[str, list[str]] = {}
        for resource in names:
            self._pools.setdefault(resource_pool(resource), []).append(resource)
        self._build_pool = NODE_POOL if NODE_POOL in self._pools else CLIENT_POOL
        if isinstance(policy, str):
            policy = create_policy(policy)
        elif not isinstance(policy, Policy):
            raise TunerError(f"policy must be a name or a Policy, got {type(policy).__name__}")
        self.policy = policy
        self.clock = clock
        self.sink = sink
        self.job_factory = job_factory
        unknown = sorted(set(lendable) - set(names))
        if unknown:
            raise TunerError(f"cannot lend {unknown[0]!r}: it is not one of the resources")
        self.lendable = frozenset(lendable)
        self.lend_wait_s = lend_wait_s
        self.id_prefix = id_prefix if id_prefix is not None else _fresh_prefix(sink)
        self.stats = SchedulerStats()
        self._simulated = clock.kind == "sim"
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._job_list: list[_Job] = []  # the same, by position (``_Job.slot``)
        self._done_upto = 0  # jobs before this position are over for good
        self._stale: dict[str, _Job] = {}  # jobs whose drivers may have new stages
        # A policy with a static queue order: the queue is kept here, updated as jobs change.
        self._queue: ReadyQueue | None = None
        if keeps_static_order(policy) and not self.lendable:
            self._queue = ReadyQueue(policy.static_key, rounds=policy.per_job_rounds)
        self._changed_jobs: dict[str, _Job] = {}  # jobs whose ready stages the queue must redo
        self._count = 0
        self._holders: dict[str, list[_Stage]] = {r: [] for r in names}
        self._busy_total: dict[str, float] = dict.fromkeys(names, 0.0)
        self._busy_since: dict[str, float] = {}
        self._estimates: dict[StageKind, tuple[int, float]] = {}
        self._dispatch_posted = False
        self._in_flight = 0
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._background: threading.Thread | None = None
        self._stopping = False
        self._driver_s = 0.0  # driver time inside the current timed section
        # Quiet profiles (``tuner.quiet``): the tasks that wait for one, those running, and
        # since when free client resources are held back for one.
        self._quiet_keys: dict[tuple[str, str], None] = {}  # (job, task), in request order
        self._quiet_running: set[_Stage] = set()
        self._quiet_hold_since: float | None = None
        self.quiet_hold_s, self.quiet_patience_s = quiet_hold_s, quiet_patience_s
        self.quiet_keeps_turn = quiet_keeps_turn

    # --- submitting ---------------------------------------------------------------------

    def submit_job(
        self,
        driver: JobDriver | Callable[[str], JobDriver],
        *,
        name: str,
        target: str,
        device_pool: str,
        tasks: Sequence[str],
        trials_total: int,
        priority: int = 0,
        model: str | None = None,
    ) -> str:
        """Queue a job; returns its id.

        ``driver`` is the job's driver, or a callable that builds it from the new job's id
        (for drivers that emit events under that id).
        """
        if not isinstance(name, str) or not name:
            raise TunerError("a job needs a non-empty name")
        _check_int("priority", priority)
        _check_int("trials_total", trials_total)
        if trials_total < 0:
            raise TunerError(f"trials_total must be >= 0, got {trials_total}")
        self._check_pools(name, device_pool)
        if not isinstance(driver, JobDriver) and not callable(driver):
            raise TunerError(f"driver must be a JobDriver, got {type(driver).__name__}")
        order, job_id = self._reserve_id()
        if not isinstance(driver, JobDriver):
            driver = driver(job_id)
            if not isinstance(driver, JobDriver):
                raise TunerError(f"the driver factory returned {type(driver).__name__}")
        return self._register(
            order,
            job_id,
            driver,
            name=name,
            target=target,
            device_pool=device_pool,
            tasks=tuple(tasks),
            trials_total=trials_total,
            priority=priority,
            model=model,
        )

    def submit(self, spec: JobSpec) -> str:
        """Plan the job with ``job_factory`` and queue it (``Control``)."""
        if not isinstance(spec, JobSpec):
            raise TunerError(f"submit takes a JobSpec, got {type(spec).__name__}")
        self._check_recordable()
        # The factory may import models: call it outside the lock, with a reserved id.
        order, job_id = self._reserve_id()
        job = self._planned(order, job_id, spec, priority=spec.priority)
        with self._lock:
            self._add(job)
            self._emit_job(job, "submitted", job.detail)
            self._kick()
        return job_id

    def restore(
        self,
        job_id: str,
        spec: JobSpec,
        *,
        state: JobState,
        priority: int,
        started: bool,
        paused_for: str | None = None,
    ) -> str:
        """Take back a job a previous scheduler left unfinished (a restarted server), under
        its old id and in its old state: a running job resumes (its ``resumed`` event says
        so), a paused one stays paused (``paused_for``: why it was), a queued one waits its
        turn. The job factory plans it again; its driver picks up from what it had stored."""
        if state in TERMINAL_STATES:
            raise TunerError(f"job {job_id} is {state}; only unfinished jobs are restored")
        with self._lock:
            if job_id in self._jobs:
                raise TunerError(f"job {job_id} is already here")
            self._count += 1
            order = self._count
        job = self._planned(order, job_id, spec, priority=priority)
        job.started = started
        with self._lock:
            self._add(job)
            if state == JobState.RUNNING:
                job.state = JobState.RUNNING
                self._emit_job(job, "resumed", "resumed after restart")
            elif state == JobState.PAUSED:
                job.state = JobState.PAUSED
                if paused_for:
                    job.asked, job.detail = job.detail, paused_for
                why = f": {paused_for}" if paused_for else ""
                self._emit_job(job, "paused", f"{STILL_PAUSED}{why}")
            self._kick()
        return job_id

    def _planned(self, order: int, job_id: str, spec: JobSpec, *, priority: int) -> _Job:
        """A job planned from its spec by the job factory (outside the lock: it may import
        a model), not registered yet."""
        if self.job_factory is None:
            raise TunerError("this scheduler cannot build jobs from a spec (no job factory)")
        plan = self.job_factory(job_id, spec)
        if not isinstance(plan, PlannedJob):
            raise TunerError(f"the job factory returned {type(plan).__name__}")
        try:
            self._check_pools(plan.name, plan.device_pool)
        except TunerError:
            plan.driver.close(cancelled=True)
            raise
        total = plan.trials_total
        return _Job(
            id=job_id,
            driver=plan.driver,
            order=order,
            submitted_at=self.clock.now(),
            name=plan.name,
            target=plan.target,
            device_pool=plan.device_pool,
            tasks=plan.tasks,
            trials_total=plan.driver.trials()[1] if total is None else total,
            priority=priority,
            model=plan.model,
            detail=plan.detail,  # what it was asked, until it ends
            spec=json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")),
        )

    def catalog(self) -> Catalog:
        """The device pools jobs may name (``Control``): ``llvm``, ``rpc:KEY``..."""
        devices = [
            p.removeprefix("device:") for p in self._pools if p not in (CLIENT_POOL, NODE_POOL)
        ]
        return Catalog(devices=tuple(devices))

    def _reserve_id(self) -> tuple[int, str]:
        with self._lock:
            self._count += 1
            return self._count, f"j{self._count}-{self.id_prefix}"

    def _add(self, job: _Job) -> None:
        job.slot = len(self._job_list)
        self._jobs[job.id] = job
        self._job_list.append(job)
        self._stale[job.id] = job

    def _check_pools(self, name: str, device_pool: str) -> None:
        for pool in (CLIENT_POOL, device_pool):
            if pool not in self._pools:
                raise TunerError(
                    f"job {name!r} needs a resource in pool {pool!r}, but this scheduler has "
                    f"only {', '.join(self.resources)}"
                )

    def _register(
        self,
        order: int,
        job_id: str,
        driver: JobDriver,
        submitted: str | None = None,
        **info: Any,
    ) -> str:
        with self._lock:
            job = _Job(
                id=job_id,
                driver=driver,
                order=order,
                submitted_at=self.clock.now(),
                detail=submitted,  # what it was asked, until it ends
                **info,
            )
            self._add(job)
            self._emit_job(job, "submitted", submitted)
            self._kick()
        return job_id

    # --- control --------------------------------------------------------------------------

    def pause(self, job: str, reason: str | None = None) -> None:
        """Stop giving the job stages; its running stage (if any) finishes first.

        ``reason`` (who paused it, or why) goes into the job event's detail.
        """
        with self._lock:
            self._check_recordable()
            j = self._get(job)
            if j.state in TERMINAL_STATES:
                raise TunerError(f"job {job} is {j.state}; only queued or running jobs pause")
            if j.state == JobState.PAUSED:
                raise TunerError(f"job {job} is already paused")
            j.state = JobState.PAUSED
            self._changed(j)
            notes = [reason] if reason else []
            notes += _finishes_first(j)
            if reason:
                j.asked, j.detail = j.detail, reason  # listed while it stays paused
            self._emit_job(j, "paused", "; ".join(notes) or None)

    def resume(self, job: str) -> None:
        """Let a paused job run stages again (it rejoins the back of the queue)."""
        with self._lock:
            self._check_recordable()
            j = self._get(job)
            if j.state != JobState.PAUSED:
                raise TunerError(f"job {job} is {j.state}, not paused; only paused jobs resume")
            j.state = JobState.RUNNING if j.started else JobState.QUEUED
            if j.asked is not None:
                j.detail, j.asked = j.asked, None
            now = self.clock.now()
            j.pending = {task: replace(req, since=now) for task, req in j.pending.items()}
            self._stale[j.id] = j
            self._changed(j)
            self._emit_job(j, "resumed")
            self._kick()

    def reprioritize(self, job: str, priority: int) -> None:
        """Change a job's priority (policies that use it decide with the new value)."""
        _check_int("priority", priority)
        with self._lock:
            self._check_recordable()
            j = self._get(job)
            if j.state in TERMINAL_STATES:
                raise TunerError(f"job {job} is {j.state}; its priority cannot change")
            old, j.priority = j.priority, priority
            self._changed(j)
            self._emit_job(j, "reprioritized", f"priority {old} -> {priority}")
            self._kick()

    def cancel(self, job: str) -> None:
        """Stop a job for good; its driver is closed with ``cancelled=True``."""
        with self._lock:
            self._check_recordable()
            j = self._get(job)
            if j.state in TERMINAL_STATES:
                raise TunerError(f"job {job} is already {j.state}")
            j.state = JobState.CANCELLED
            j.pending = {}
            self._changed(j)
            j.ended_at = self.clock.now()
            notes = []
            if j.running and self._simulated:
                kinds = ", ".join(str(s.request.kind) for s in j.running.values())
                notes.append(f"abandoned its running {kinds} stage{_plural(j.running)}")
                for stage in list(j.running.values()):
                    self._abandon(j, stage)
            else:
                notes += _finishes_first(j)
            self._emit_job(j, "cancelled", "; ".join(notes) or None)
            self._close_when_idle(j)
            self._kick()

    def list(self) -> list[JobInfo]:
        """Every job submitted to this scheduler, in submission order."""
        with self._lock:
            out = []
            for j in self._jobs.values():
                done, total = self._trials(j)
                out.append(
                    JobInfo(
                        id=j.id,
                        name=j.name,
                        state=j.state,
                        priority=j.priority,
                        target=j.target,
                        tasks=j.tasks,
                        trials_done=done,
                        trials_total=total,
                        detail=j.detail,
                        model=j.model,
                    )
                )
            return out

    def job_times(self) -> dict[str, tuple[float, float | None]]:
        """(submitted, ended or None) clock times of every job."""
        with self._lock:
            return {j.id: (j.submitted_at, j.ended_at) for j in self._jobs.values()}

    def stages_running(self) -> bool:
        """Whether a stage holds a resource now."""
        with self._lock:
            return any(self._holders.values())

    def busy_time(self) -> dict[str, float]:
        """Seconds each resource has been held by at least one stage so far."""
        with self._lock:
            now = self.clock.now()
            out = dict(self._busy_total)
            for resource, since in self._busy_since.items():
                out[resource] += now - since
            return out

    # --- resources that come and go (cluster nodes) ----------------------------------------

    def add_resources(self, names: Sequence[str]) -> None:
        """New resources (a cluster node joined) take stages from the next dispatch pass.
        Once a cluster node's core is known, builds planned from then on go to the nodes."""
        with self._lock:
            added = [r for r in dict.fromkeys(names) if r not in self.resources]
            for resource in added:
                self._pools.setdefault(resource_pool(resource), []).append(resource)
                self._holders.setdefault(resource, [])
                self._busy_total.setdefault(resource, 0.0)
            if NODE_POOL in self._pools:
                self._build_pool = NODE_POOL
            self.resources += tuple(added)
            if added:
                self._kick()

    def remove_resources(self, names: Sequence[str]) -> None:
        """Resources that went away (a cluster node left) take no more stages; a stage still
        holding one ends as its driver reports (its pool stays known, so jobs that need it
        wait for resources to come back)."""
        with self._lock:
            gone = set(names)
            self.resources = tuple(r for r in self.resources if r not in gone)
            for members in self._pools.values():
                members[:] = [r for r in members if r not in gone]

    # --- running the loop ----------------------------------------------------------------

    def run(self, until: float | None = None) -> None:
        """Run the loop on this thread until every job is terminal.

        ``until`` is an absolute clock time to stop at (for a ``WallClock``, a ``time.time()``
        value). With a ``SimClock`` it also returns when nothing more can happen (e.g. every
        remaining job is paused); a wall-clock loop keeps waiting for controls instead.
        """
        if self._background is not None:
            raise RuntimeError("the scheduler already runs in the background; use stop() first")
        with self._lock:
            self._kick()
        try:
            self.clock.run(until=until, stop=self._all_done)
        finally:
            if self._in_flight == 0:
                self._shutdown_workers()

    def start_background(self) -> None:
        """Serve forever on a daemon thread (submissions and controls from any thread)."""
        if self._background is not None:
            raise RuntimeError("the scheduler already runs in the background")
        self._stopping = False
        self._background = threading.Thread(
            target=self._serve, name="tuneloom-scheduler", daemon=True
        )
        self._background.start()

    def stop(self) -> None:
        """Stop the background loop (running stages are not interrupted)."""
        thread = self._background
        if thread is None:
            return
        self._stopping = True
        self.clock.wake()
        thread.join()
        self._background = None
        self._shutdown_workers()

    def _serve(self) -> None:
        with self._lock:
            self._kick()
        while not self._stopping:
            try:
                self.clock.run(stop=lambda: self._stopping, block=True)
            except Exception:  # a bug in a policy or a sink: keep serving the other jobs
                log.exception("scheduler loop error")

    def _all_done(self) -> bool:
        # A job that is terminal with no stage running stays so: skip those for good.
        jobs = self._job_list
        while self._done_upto < len(jobs):
            job = jobs[self._done_upto]
            if job.state not in TERMINAL_STATES or job.running:
                return False
            self._done_upto += 1
        return self._in_flight == 0

    # --- dispatching -------------------------------------------------------------------------

    def _kick(self) -> None:
        """Make sure one dispatch pass is queued on the loop (called with the lock held)."""
        if not self._dispatch_posted:
            self._dispatch_posted = True
            self.clock.post(self._dispatch)

    def _dispatch(self) -> None:
        with self._lock:
            self._dispatch_posted = False
            started = time.perf_counter()
            self._driver_s = 0.0
            now = self.clock.now()
            if self.halted is not None:  # nothing starts that could not be recorded
                self.stats.passes += 1
                return
            self._fetch_stale(now)
            quiet = self._plan_quiet(now)
            if self._queue is not None:
                self._dispatch_queued(now, quiet.hold)
            else:
                self._dispatch_assigned(now, quiet)
            self.stats.passes += 1
            self.stats.decision_s += time.perf_counter() - started - self._driver_s

    def _dispatch_assigned(self, now: float, quiet: QuietPlan) -> None:
        """A pass that hands every ready stage (but quiet profiles), the free resources (but
        those held for quiet profiles) and the job views to the policy's ``assign``."""
        waiting = [
            request
            for j in self._jobs.values()
            if j.pending and j.state in (JobState.QUEUED, JobState.RUNNING)
            for request in j.pending.values()
        ]
        ready = [request for request in waiting if not request.quiet]
        if self.policy.exclusive:
            free = [r for r in self.resources if not self._holders[r] and r not in quiet.hold]
        else:
            free = list(self.resources)
        if ready and free:
            ready.sort(key=lambda s: (s.since, self._jobs[s.job].order))
            views = self._views()
            assignments = self.policy.assign(ready, free, views, now)
            self._check(assignments, ready, free)
            lendable = [r for r in free if r not in quiet.no_lend]
            assignments += self._lend(waiting, lendable, assignments, now)
            for assignment in assignments:
                self._start(self._jobs[assignment.stage.job], assignment, now)

    def _fetch_stale(self, now: float) -> None:
        """Ask the drivers of runnable jobs with new stages for them, in submission order."""
        if not self._stale:
            return
        for job in sorted(self._stale.values(), key=lambda j: j.slot):
            del self._stale[job.id]  # a paused job is asked again when it resumes
            if job.state in (JobState.QUEUED, JobState.RUNNING):
                self._fetch_ready(job, now)

    def _changed(self, job: _Job) -> None:
        """The job's ready stages or whether it may run changed (the queue must redo them)."""
        if self._queue is not None:
            self._changed_jobs[job.id] = job

    def _dispatch_queued(self, now: float, held: frozenset[str]) -> None:
        """A pass of a static-order policy on the queue kept here: each pool's free resources
        (but those ``held`` for quiet profiles), in order, take the pool's first waiting
        stages (but quiet profiles); they start in queue order. Decides exactly as the
        policy's ``assign`` would on every such ready stage."""
        queue = self._queue
        assert queue is not None
        for job in self._changed_jobs.values():
            runnable = job.state in (JobState.QUEUED, JobState.RUNNING)
            stages = [r for r in job.pending.values() if not r.quiet] if runnable else []
            queue.update(job.id, job.order, stages)
        self._changed_jobs.clear()
        if not queue:
            return
        chosen: list[tuple[tuple[object, ...], Assignment]] = []
        for pool in queue.pools():
            free = [r for r in self._pools.get(pool, ()) if not self._holders[r] and r not in held]
            if free:
                taken = queue.take(pool, len(free))
                chosen += [
                    (key, Assignment(stage, resource))
                    for (key, stage), resource in zip(taken, free, strict=False)
                ]
        chosen.sort(key=lambda item: item[0])
        for _, assignment in chosen:
            self._start(self._jobs[assignment.stage.job], assignment, now)

    def _plan_quiet(self, now: float) -> QuietPlan:
        """Start the quiet profiles that may start, demote those that waited too long, and
        say which free resources to hold back for them this pass (``tuner.quiet``)."""
        if not self._quiet_keys and not self._quiet_running:
            self._quiet_hold_since = None
            return _NO_QUIET
        waiting = []
        for key in list(self._quiet_keys):
            job = self._jobs.get(key[0])
            request = job.pending.get(key[1]) if job is not None else None
            if job is None or request is None or not request.quiet:
                del self._quiet_keys[key]  # started, cancelled or finished
            elif job.state in (JobState.QUEUED, JobState.RUNNING):
                waiting.append(request)
        waiting.sort(key=lambda s: (s.since or 0.0, self._jobs[s.job].order))
        plan = plan_quiet(
            waiting,
            [r for r in self.resources if not self._holders[r]],
            client_work=self._client_work(),
            quiet_running=bool(self._quiet_running),
            hold_since=self._quiet_hold_since,
            now=now,
            hold_s=self.quiet_hold_s,
            patience_s=self.quiet_patience_s,
            queued=self._queued_profiles() if self.quiet_keeps_turn else None,
        )
        for request in plan.demote:
            job = self._jobs[request.job]
            job.pending[request.task] = replace(request, quiet=False)
            del self._quiet_keys[(request.job, request.task)]
            self.stats.quiet_demoted += 1
            self._changed(job)
        if plan.hold_since is not None and self._quiet_hold_since is None:
            self._wake_at(plan.hold_since + self.quiet_hold_s)
        self._quiet_hold_since = plan.hold_since
        for assignment in plan.start:
            self._start(self._jobs[assignment.stage.job], assignment, now)
        return plan

    def _queued_profiles(self) -> dict[str, list[float]]:
        """Per device pool, when each ordinary profile of a runnable job waiting for it became
        ready (a quiet profile does not let those that came after it pass: ``tuner.quiet``)."""
        queued: dict[str, list[float]] = {}
        for job in self._jobs.values():
            if job.state not in (JobState.QUEUED, JobState.RUNNING):
                continue
            for request in job.pending.values():
                if request.kind == StageKind.PROFILE and not request.quiet:
                    since = -math.inf if request.since is None else request.since
                    queued.setdefault(request.pool, []).append(since)
        return queued

    def _client_work(self) -> bool:
        """Whether a select, build or update runs on this machine (a client resource or a
        device lent to client work; cluster nodes are other machines)."""
        return any(
            stage.request.kind != StageKind.PROFILE and stage.request.pool != NODE_POOL
            for holders in self._holders.values()
            for stage in holders
        )

    def _wake_at(self, when: float) -> None:
        """A dispatch pass at ``when`` (a quiet profile's hold or patience runs out)."""
        if math.isfinite(when):
            self.clock.call_at(when, self._timer_pass)

    def _timer_pass(self) -> None:
        with self._lock:
            self._kick()

    def _lend(
        self,
        ready: list[StageRequest],
        free: list[str],
        assigned: list[Assignment],
        now: float,
    ) -> list[Assignment]:
        """Idle lendable devices for client stages the policy left waiting, when no profile
        is expected before the stage would end (``lend_idle_devices``)."""
        if not self.lendable or not self.policy.exclusive:
            return []
        taken = {a.resource for a in assigned}
        spare = [r for r in free if r in self.lendable and r not in taken]
        started = {a.stage for a in assigned}
        waiting = [s for s in ready if s.pool == CLIENT_POOL and s not in started]
        if not spare or not waiting:
            return []
        next_profile: dict[str, float] = {}

        def expect(pool: str, when: float) -> None:
            next_profile[pool] = min(next_profile.get(pool, math.inf), when)

        def build_ends(job: _Job, since: float) -> float:
            seconds = self._stage_estimates(job).get(StageKind.BUILD)
            return now if seconds is None else max(now, since + seconds)

        for stage in ready:
            if stage.pool != CLIENT_POOL and stage not in started:
                expect(stage.pool, now)  # a profile waits already
        for holders in self._holders.values():
            for held in holders:
                if held.request.kind == StageKind.BUILD:
                    job = self._jobs[held.request.job]
                    expect(job.device_pool, build_ends(job, held.start))
        for a in assigned:
            if a.stage.kind == StageKind.BUILD:
                job = self._jobs[a.stage.job]
                expect(job.device_pool, build_ends(job, now))

        def estimate(stage: StageRequest) -> float | None:
            return self._stage_estimates(self._jobs[stage.job]).get(stage.kind)

        return lend_idle_devices(spare, waiting, estimate, next_profile, now, self.lend_wait_s)

    def _fetch_ready(self, job: _Job, now: float) -> None:
        """Ask the driver for the stages its idle tasks may start; finish a job with none."""
        busy = frozenset(job.pending) | frozenset(job.running)
        try:
            steps = self._call_driver(job.driver.ready, busy)
            requests = []
            for task, iteration, kind in steps or ():
                kind = StageKind(kind)
                if task in busy or any(r.task == task for r in requests):
                    raise RuntimeError(f"a second stage of task {task!r} at once")
                pool = pool_for(kind, job.device_pool, self._build_pool)
                quiet = (
                    kind is StageKind.PROFILE
                    and self.policy.exclusive
                    and bool(self._call_driver(job.driver.wants_quiet, task))
                )
                since = now
                if quiet:
                    since = job.profile_turn.get(task, now)
                elif kind is StageKind.PROFILE:
                    job.profile_turn[task] = now
                requests.append(
                    StageRequest(job.id, task, iteration, kind, pool, since=since, quiet=quiet)
                )
        except Exception as exc:
            self._fail(job, f"planning its next stages raised {type(exc).__name__}: {exc}")
            return
        if steps is None and not busy:
            self._finish(job)
            return
        for request in requests:
            job.pending[request.task] = request
            if request.quiet:
                self._quiet_keys[(job.id, request.task)] = None
                since = now if request.since is None else request.since
                self._wake_at(since + self.quiet_patience_s)
        if requests:
            self._changed(job)

    def _views(self) -> dict[str, JobView]:
        views = {}
        for j in self._jobs.values():
            if j.state in TERMINAL_STATES:
                continue
            done, total = self._trials(j)
            views[j.id] = JobView(
                id=j.id,
                priority=j.priority,
                state=j.state,
                submitted_at=j.submitted_at,
                order=j.order,
                trials_done=done,
                trials_total=total,
                ready_since=min((r.since for r in j.pending.values()), default=None),
                stage_estimates=self._stage_estimates(j),
                running=len(j.running),
            )
        return views

    def _check(
        self, assignments: list[Assignment], ready: list[StageRequest], free: list[str]
    ) -> None:
        """Refuse a policy decision that would break an invariant (a bug in the policy)."""
        ready_set = set(ready)
        free_set = set(free)
        tasks_seen: set[tuple[str, str]] = set()
        resources_seen: set[str] = set()
        for a in assignments:
            problem = None
            if a.stage not in ready_set:
                problem = "a stage that is not ready"
            elif (a.stage.job, a.stage.task) in tasks_seen:
                problem = "two stages of one task"
            elif a.resource not in free_set:
                problem = f"busy or unknown resource {a.resource!r}"
            elif resource_pool(a.resource) != a.stage.pool:
                problem = f"a {a.stage.pool} stage to {a.resource!r}"
            elif self.policy.exclusive and a.resource in resources_seen:
                problem = f"two stages to exclusive resource {a.resource!r}"
            if problem:
                raise RuntimeError(f"policy {self.policy.name!r} assigned {problem}: {a}")
            tasks_seen.add((a.stage.job, a.stage.task))
            resources_seen.add(a.resource)

    def _start(self, job: _Job, assignment: Assignment, now: float) -> None:
        request, resource = assignment.stage, assignment.resource
        del job.pending[request.task]
        self._changed(job)
        if not job.started:
            job.started = True
            job.state = JobState.RUNNING
            self._emit_job(job, "started")
        stage = _Stage(request, resource, start=now)
        if request.quiet:
            self._quiet_keys.pop((job.id, request.task), None)
            self._quiet_running.add(stage)
            self.stats.quiet_profiles += 1
        self.stats.dispatches += 1
        if not self._simulated:
            job.running[request.task] = stage
            self._hold(stage, now)
            self._in_flight += 1
            self._executor(resource).submit(self._work, job, stage)
            return
        try:
            result = self._call_driver(
                job.driver.run, request.task, request.iteration, request.kind, resource
            )
            duration = _sim_duration(result)
        except Exception as exc:
            self._end(job, stage, None, exc, now)
            return
        stage.result = result
        stage.duration = duration
        stage.work = duration
        stage.since = now
        job.running[request.task] = stage
        self._hold(stage, now)

    def _work(self, job: _Job, stage: _Stage) -> None:
        """Worker thread: run one real stage and post its completion to the loop."""
        req = stage.request
        start = self.clock.now()
        result: StageResult | None = None
        error: BaseException | None = None
        try:
            result = job.driver.run(req.task, req.iteration, req.kind, stage.resource)
            if not isinstance(result, StageResult):
                raise TypeError(f"driver.run returned {type(result).__name__}, not StageResult")
        except BaseException as exc:  # even SystemExit: the loop must hear that the stage ended
            error = exc
        end = self.clock.now()
        self.clock.post(partial(self._wall_done, job, stage, start, end, result, error))

    def _wall_done(
        self,
        job: _Job,
        stage: _Stage,
        start: float,
        end: float,
        result: StageResult | None,
        error: BaseException | None,
    ) -> None:
        with self._lock:
            t0 = time.perf_counter()
            self._driver_s = 0.0
            self._in_flight -= 1
            stage.start = start
            self._end(job, stage, result, error, end, held_until=self.clock.now())
            self.stats.decision_s += time.perf_counter() - t0 - self._driver_s

    def _sim_done(self, job: _Job, stage: _Stage, token: int) -> None:
        with self._lock:
            if stage.over or stage.token != token:
                return
            t0 = time.perf_counter()
            self._driver_s = 0.0
            self._end(job, stage, stage.result, None, self.clock.now())
            self.stats.decision_s += time.perf_counter() - t0 - self._driver_s

    def _end(
        self,
        job: _Job,
        stage: _Stage,
        result: StageResult | None,
        error: BaseException | None,
        end: float,
        held_until: float | None = None,
    ) -> None:
        """A stage ended: free its resource, record it, and move its job on."""
        stage.over = True
        self._quiet_running.discard(stage)
        req = stage.request
        if job.running.get(req.task) is stage:
            del job.running[req.task]
            self._release(stage, end if held_until is None else held_until)
        self.stats.completions += 1
        self._stale[job.id] = job
        if error is not None:
            status, message = "error", f"{type(error).__name__}: {error}"
        elif result is not None and not result.ok:
            status, message = "error", result.error or "stage failed"
        else:
            status, message = "ok", None
        self._emit_stage(stage, end, status, message, result)
        if error is not None and job.state not in TERMINAL_STATES:
            self._fail(job, f"{req.kind} stage of {req.task} raised {message}")
        elif job.state in TERMINAL_STATES:
            self._close_when_idle(job)
        elif status == "ok" and not req.quiet:  # a quiet profile times a few candidates only
            took = stage.duration if self._simulated else end - stage.start
            self._learn(job, req.kind, took)
        self._kick()

    def _abandon(self, job: _Job, stage: _Stage) -> None:
        """Drop a simulated stage of a cancelled job now (it never completes)."""
        now = self.clock.now()
        stage.over = True
        self._quiet_running.discard(stage)
        del job.running[stage.request.task]
        self._release(stage, now)
        self.stats.completions += 1
        self._emit_stage(stage, now, "cancelled", None, stage.result)

    # --- resources ----------------------------------------------------------------------------

    def _hold(self, stage: _Stage, now: float) -> None:
        holders = self._holders[stage.resource]
        self._share_update(holders, now)
        if not holders:
            self._busy_since[stage.resource] = now
        holders.append(stage)
        self._share_schedule(holders, now)

    def _release(self, stage: _Stage, now: float) -> None:
        holders = self._holders[stage.resource]
        self._share_update(holders, now)
        holders.remove(stage)
        if not holders:
            since = self._busy_since.pop(stage.resource)
            self._busy_total[stage.resource] += max(0.0, now - since)
        self._share_schedule(holders, now)

    def _share_update(self, holders: list[_Stage], now: float) -> None:
        """Simulated processor sharing: k stages on a resource each progress at 1/k speed."""
        if not self._simulated or not holders:
            return
        k = len(holders)
        for stage in holders:
            stage.work = max(0.0, stage.work - (now - stage.since) / k)
            stage.since = now

    def _share_schedule(self, holders: list[_Stage], now: float) -> None:
        if not self._simulated:
            return
        k = len(holders)
        for stage in holders:
            stage.token += 1
            done = partial(self._sim_done, self._jobs[stage.request.job], stage, stage.token)
            self.clock.call_at(now + stage.work * k, done)

    def _executor(self, resource: str) -> ThreadPoolExecutor:
        executor = self._executors.get(resource)
        if executor is None:
            workers = 1 if self.policy.exclusive else 64
            executor = ThreadPoolExecutor(workers, thread_name_prefix=f"tuneloom-{resource}")
            self._executors[resource] = executor
        return executor

    def _shutdown_workers(self) -> None:
        with self._lock:
            executors, self._executors = self._executors, {}
        for executor in executors.values():
            executor.shutdown(wait=False)

    # --- job lifecycle ------------------------------------------------------------------------

    def _finish(self, job: _Job) -> None:
        job.state = JobState.FINISHED
        job.ended_at = self.clock.now()
        error = self._close(job, cancelled=False)
        if error:
            job.state = JobState.FAILED
            job.detail = f"close raised {error}"
            self._emit_job(job, "failed", job.detail)
            return
        done, _ = self._trials(job)
        notes = [f"{done} trials"]
        try:
            note = self._call_driver(job.driver.finish_note)
        except Exception as exc:
            note = f"no finish note: {type(exc).__name__}: {exc}"
        job.detail = "; ".join([*notes, note] if note else notes)
        self._emit_job(job, "finished", job.detail)

    def _fail(self, job: _Job, detail: str) -> None:
        job.state = JobState.FAILED
        job.pending = {}
        self._changed(job)
        job.ended_at = self.clock.now()
        job.detail = detail
        self._emit_job(job, "failed", detail)
        self._close_when_idle(job)

    def _close_when_idle(self, job: _Job) -> None:
        """Close a failed or cancelled job's driver once none of its stages runs."""
        if not job.running and not job.closed:
            self._close(job, cancelled=job.state == JobState.CANCELLED)

    def _close(self, job: _Job, *, cancelled: bool) -> str | None:
        job.closed = True
        try:
            self._call_driver(job.driver.close, cancelled=cancelled)
        except Exception as exc:
            log.warning("closing job %s failed: %s", job.id, exc)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _trials(self, job: _Job) -> tuple[int, int]:
        try:
            done, total = self._call_driver(job.driver.trials)
        except Exception:
            return (0, job.trials_total)
        return (int(done), int(total) if total else job.trials_total)

    def _learn(self, job: _Job, kind: StageKind, seconds: float) -> None:
        for table in (job.estimates, self._estimates):
            n, mean = table.get(kind, (0, 0.0))
            table[kind] = (n + 1, mean + (seconds - mean) / (n + 1))

    def _stage_estimates(self, job: _Job) -> dict[StageKind, float]:
        merged = {kind: mean for kind, (_, mean) in self._estimates.items()}
        merged.update({kind: mean for kind, (_, mean) in job.estimates.items()})
        return merged

    def _call_driver(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self._driver_s += time.perf_counter() - started

    def _get(self, job: str) -> _Job:
        found = self._jobs.get(job)
        if found is None:
            known = ", ".join(list(self._jobs)[:10]) or "none"
            raise UnknownJob(f"unknown job {job!r} (jobs: {known})")
        return found

    # --- events -----------------------------------------------------------------------------

    @property
    def halted(self) -> str | None:
        """Why no stage starts any more (the store refused a write), or None."""
        return self.sink.broken if self.sink is not None else None

    def _check_recordable(self) -> None:
        if self.halted is not None:
            raise TunerError(f"{self.halted}; no job changes until it can be written again")

    def _emit_job(self, job: _Job, change: str, detail: str | None = None) -> None:
        if self.sink is None:
            return
        with _store_refusal_logged():
            self._emit_job_event(job, change, detail)

    def _emit_job_event(self, job: _Job, change: str, detail: str | None) -> None:
        assert self.sink is not None
        self.sink.emit(
            JobEvent,
            job=job.id,
            change=change,
            priority=job.priority,
            model=job.model,
            target=job.target,
            name=job.name,
            policy=self.policy.name,
            trials=self._trials(job)[1],
            tasks=job.tasks,
            detail=detail,
            spec=job.spec if change == "submitted" else None,
        )

    def _emit_stage(
        self,
        stage: _Stage,
        end: float,
        status: str,
        error: str | None,
        result: StageResult | None,
    ) -> None:
        if self.sink is None:
            return
        req = stage.request
        with _store_refusal_logged():
            self._emit_stage_event(stage, req, end, status, error, result)

    def _emit_stage_event(
        self,
        stage: _Stage,
        req: StageRequest,
        end: float,
        status: str,
        error: str | None,
        result: StageResult | None,
    ) -> None:
        assert self.sink is not None
        self.sink.emit(
            StageEvent,
            ts=end,
            job=req.job,
            task=req.task,
            iteration=req.iteration,
            stage=req.kind.value,
            resource=stage.resource,
            start=stage.start,
            end=end,
            status=status,
            error=error,
            candidates=result.candidates if result is not None else None,
        )


@contextlib.contextmanager
def _store_refusal_logged() -> Iterator[None]:
    """A store that refused a write halts the scheduler (``Scheduler.halted``); the event
    is logged instead, and the loop goes on."""
    try:
        yield
    except StoreWriteError as exc:
        log.error("%s", exc)


def _fresh_prefix(sink: EventSink | None) -> str:
    """A random 4-hex-digit job id prefix that no job in the sink's store uses yet."""
    taken: set[str] = set()
    if sink is not None:
        try:
            taken = {str(job).rpartition("-")[2] for job in sink.store.jobs()["job"]}
        except Exception as exc:  # a store that cannot list jobs: random is still likely fresh
            log.warning("could not read existing job ids: %s", exc)
    for _ in range(1000):
        prefix = secrets.token_hex(2)
        if prefix not in taken:
            return prefix
    return secrets.token_hex(4)


def _finishes_first(job: _Job) -> list[str]:
    """A note for a control that waits for the job's running stages to end."""
    if not job.running:
        return []
    kinds = ", ".join(str(s.request.kind) for s in job.running.values())
    return [f"its running {kinds} stage{_plural(job.running)} finish{_verb_s(job.running)} first"]


def _plural(items: Any) -> str:
    return "s" if len(items) > 1 else ""


def _verb_s(items: Any) -> str:
    return "" if len(items) > 1 else "es"


def _check_int(what: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TunerError(f"{what} must be an integer, got {value!r}")


def _sim_duration(result: Any) -> float:
    if not isinstance(result, StageResult):
        raise TypeError(f"driver.run returned {type(result).__name__}, not StageResult")
    duration = 0.0 if result.duration is None else float(result.duration)
    if not duration >= 0.0 or duration == float("inf"):
        raise ValueError(f"simulated stage duration must be finite and >= 0, got {duration}")
    return duration
